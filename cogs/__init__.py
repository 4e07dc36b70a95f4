"""Discord front end: slash commands, buttons and modals that call the try-on engine."""
