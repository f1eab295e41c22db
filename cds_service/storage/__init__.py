"""Durable state through SQLAlchemy: feedback, the audit trail, issued cards (SQLite or PostgreSQL)."""
