"""The DuckDB store: the only package that talks to the database. See db.py and migrations.py."""

from store.db import StoreUnavailable, connect, migrate, transaction

__all__ = ["StoreUnavailable", "connect", "migrate", "transaction"]
