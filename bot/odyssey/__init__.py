"""Odyssey platform client: REST (httpx), signaling websocket and WebRTC (aiortc)."""
