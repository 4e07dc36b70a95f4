# The try-on Discord bot. Build: `docker build -t tryon-bot .`
# Run:   docker run -e DISCORD_TOKEN=... [-e ODYSSEY_API_KEY=...] -v tryon-data:/data tryon-bot
# Settings: environment variables, or mount a config.toml: `-v "$PWD/config.toml:/app/config.toml:ro"`.
# Without ODYSSEY_API_KEY the bot runs the embedded Odyssey emulator on loopback inside the container.
FROM python:3.13-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TRYON_DATABASE=/data/tryon.db

WORKDIR /app

RUN useradd --create-home --uid 10001 tryon \
    && mkdir -p /data \
    && chown tryon:tryon /data

# Dependencies first (their wheels bundle FFmpeg/libvpx/libopus), installed from pyproject.toml alone with
# empty stand-in packages, so a code edit reuses this layer; then the package itself without dependencies.
COPY pyproject.toml README.md ./
RUN mkdir bot cogs && touch bot/__init__.py cogs/__init__.py \
    && pip install . \
    && pip uninstall --yes tryon-bot \
    && rm -rf bot cogs build *.egg-info
COPY bot ./bot
COPY cogs ./cogs
RUN pip install --no-deps . && rm -rf build *.egg-info

COPY config.example.toml ./

USER tryon
# The SQLite database (and its WAL files) live here; mount a volume to keep them across restarts.
VOLUME ["/data"]

# SIGTERM (docker stop) ends and settles every session before exiting; allow it time, e.g.
# `docker run --stop-timeout 60 ...` (the default is 10 s).
STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot", "run"]
