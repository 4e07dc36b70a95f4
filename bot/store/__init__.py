"""SQLite state via aiosqlite: versioned migrations, WAL, small repositories."""
