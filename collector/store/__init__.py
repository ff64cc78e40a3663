"""Storage: one interface, SQLite (aiosqlite) by default, PostgreSQL (asyncpg) at scale."""
