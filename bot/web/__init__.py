"""The bot's small web server: the Watch live viewer page for shared try-ons (aiohttp, no framework).

`ViewerServer` serves `/watch/<id>` (one static HTML/JS file) and the event stream that page follows;
its `WatchRegistry` is what the engine feeds (bot/tryon/watch.py defines the narrow interface it uses).
Nothing here knows Discord; the cogs only render the link and the viewer count the engine reports.
"""

from bot.web.registry import Watch, WatchRegistry, WatchState
from bot.web.server import ViewerServer
from bot.web.settings import WebSettings

__all__ = ["ViewerServer", "Watch", "WatchRegistry", "WatchState", "WebSettings"]
