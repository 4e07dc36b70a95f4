"""Media work, with no session logic: the frame buffer, GIF snippets, their worker pool, stills."""
