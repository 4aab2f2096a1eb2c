"""The call log: CallRecord (record), the group-commit writer thread (writer), the SQLite and
PostgreSQL stores (stores) and their numbered schema migrations (migrations)."""
