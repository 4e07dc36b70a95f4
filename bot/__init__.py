"""Try-on bot: live outfit try-on video for Discord members, built on the Odyssey platform."""
