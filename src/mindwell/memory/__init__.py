"""Storage and conversation memory: per-user SQLite (default) or PostgreSQL + pgvector."""

from mindwell.memory.recall import Memory
from mindwell.memory.store import Store, User

__all__ = ["Memory", "Store", "User"]
