"""The SQLite store of scans, attempts, observations, findings and waivers, with its migrations."""

from scanner.store.database import Store
from scanner.store.migrations import MIGRATIONS, SCHEMA_VERSION

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Store"]
