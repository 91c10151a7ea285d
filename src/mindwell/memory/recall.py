"""Conversation memory: diary entries and chat messages are embedded with the multilingual
sentence encoder and recalled, strictly within one user's data, to ground replies
("last week you wrote that...").

Crisis messages are never stored as memories: the safety protocol keeps a person's crisis
words out of later prompts.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from mindwell.memory.store import Store

# Cosine similarity below which a memory is not offered to the model: the multilingual
# encoder scores unrelated everyday sentences around 0.1-0.3.
MIN_SCORE = 0.4
MAX_MEMORY_CHARS = 300  # a recalled text is cut to this, so memories cannot crowd the prompt


class Memory:
    def __init__(self, store: Store, embed: Callable[[list[str]], np.ndarray] | None = None):
        self.store = store
        if embed is None:
            from mindwell.models.embedder import embed_texts as embed
        self.embed = embed

    def remember(self, user_id: int, kind: str, ref_id: str | int, text: str,
                 session_id: str | None = None, created_at: float | None = None,
                 if_entry_exists: bool = False) -> int | None:
        """The memory's id; None when ``if_entry_exists`` and the diary entry is gone (or
        already has its memory)."""
        vector = self.embed([text])[0]
        return self.store.add_memory(user_id, kind, str(ref_id), text, vector,
                                     session_id=session_id, created_at=created_at,
                                     if_entry_exists=if_entry_exists)

    def recall(self, user_id: int, query: str, k: int = 3, exclude_session: str | None = None,
               min_score: float = MIN_SCORE) -> list[dict]:
        vector = self.embed([query])[0]
        found = self.store.search_memories(user_id, vector, k=k, exclude_session=exclude_session)
        return [m for m in found if m["score"] >= min_score]

    @staticmethod
    def as_context(memories: list[dict], now: float | None = None) -> str:
        """A short note for the model; empty when nothing relevant was recalled."""
        if not memories:
            return ""
        now = now or time.time()
        lines = []
        for memory in memories:
            text = " ".join(memory["text"].split())
            if len(text) > MAX_MEMORY_CHARS:
                text = text[:MAX_MEMORY_CHARS].rsplit(" ", 1)[0] + "..."
            where = "in my diary" if memory["kind"] == "diary" else "in an earlier chat"
            lines.append(f"{_ago(now - memory['created_at'])} I wrote {where}: \"{text}\"")
        return "For context, things I said before: " + " ".join(lines)


def _ago(seconds: float) -> str:
    days = int(seconds // 86400)
    if days <= 0:
        return "Earlier today"
    if days == 1:
        return "Yesterday"
    if days < 14:
        return f"{days} days ago"
    return f"{days // 7} weeks ago"
