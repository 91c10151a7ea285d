"""Per-user storage for the companion: accounts and API keys, diary entries, chat sessions,
their turns and events, and embedded memories.

One class, two databases. SQLite (WAL, one file in the data directory) is the default and
needs no service; PostgreSQL with pgvector is for deployments with many users. The SQL is
written once with ``?`` placeholders and a handful of dialect words.

Rules every method keeps:
- every query on personal data filters on ``user_id`` (one user can never read, search or
  erase another's rows; tests try);
- a write is committed before the method returns, so an acknowledged diary entry survives
  the server being killed (SQLite: ``synchronous=FULL``);
- erasure deletes rows for real: SQLite overwrites freed pages (``secure_delete``) and the
  WAL is truncated afterwards, PostgreSQL vacuums the tables;
- erasure wins a race with a write in flight: a memory is inserted only while its diary entry
  or session still exists, in one statement (SQLite: under the write lock; PostgreSQL: with
  the parent row locked), so an erase never reports done and then finds a row written after;
- a full disk is a clear ``StorageFull``, and erasure still works then: SQLite keeps a small
  reserve file beside the database, given up to let an erase write its journal, and an erase
  that still does not fit goes in small committed batches;
- SQLite files are private: the data directory is 0700, the database and its -wal and -shm
  files 0600 (SQLite creates the last two with the database file's mode).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qsl, unquote, urlsplit

import numpy as np

from mindwell.errors import MindwellError

EMBEDDING_DIM = 512  # the embedded multilingual Universal Sentence Encoder
MODES = ("journal", "ephemeral")
LANGUAGES = ("en", "ko")  # of the app's words; none set: the browser's
MOODS = range(1, 6)  # a check-in's mood: 1 (awful) to 5 (great)
KEY_PREFIX = "mw_"
SQLITE_HEADER = b"SQLite format 3\x00"
DAMAGED_HINT = "If the file is damaged, move it aside; mindwell never overwrites it."
RESERVE_BYTES = 2 * 1024 * 1024  # freed on a full disk so that an erase can still commit
ERASE_BATCH = 16  # rows per transaction when an erase must go in pieces (full disk)
MAX_IDEMPOTENCY_KEY = 200

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id {pk}, name TEXT NOT NULL UNIQUE, mode TEXT NOT NULL DEFAULT 'journal',
    locale TEXT, created_at {float} NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (
    id {pk}, user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key_hash TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL, label TEXT NOT NULL,
    created_at {float} NOT NULL);
CREATE TABLE IF NOT EXISTS diary_entries (
    id {pk}, user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at {float} NOT NULL, text TEXT NOT NULL, analysis TEXT, reply TEXT,
    escalated INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS diary_user ON diary_entries(user_id, created_at);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    mode TEXT NOT NULL, started_at {float} NOT NULL, ended_at {float}, state TEXT);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user_id, started_at);
CREATE TABLE IF NOT EXISTS turns (
    id {pk}, session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL, time {float} NOT NULL, role TEXT NOT NULL, text TEXT NOT NULL,
    analysis TEXT);
CREATE INDEX IF NOT EXISTS turns_session ON turns(session_id, id);
CREATE TABLE IF NOT EXISTS events (
    id {pk}, session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL, time {float} NOT NULL, type TEXT NOT NULL, data TEXT);
CREATE INDEX IF NOT EXISTS events_session ON events(session_id, id);
CREATE TABLE IF NOT EXISTS memories (
    id {pk}, user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL, ref_id TEXT NOT NULL,
    session_id TEXT REFERENCES sessions(id) ON DELETE CASCADE,
    created_at {float} NOT NULL, text TEXT NOT NULL, embedding {vector} NOT NULL);
CREATE INDEX IF NOT EXISTS memories_user ON memories(user_id);
CREATE TABLE IF NOT EXISTS checkins (
    id {pk}, user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at {float} NOT NULL, mood INTEGER NOT NULL, tags TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS checkins_user ON checkins(user_id, created_at);
"""
# Columns added after the first release, for databases created before them.
_ADDED_COLUMNS = (("diary_entries", "idem_key", "TEXT"), ("turns", "idem_key", "TEXT"),
                  ("users", "language", "TEXT"))
_ADDED_INDEXES = """
CREATE UNIQUE INDEX IF NOT EXISTS diary_idem ON diary_entries(user_id, idem_key);
CREATE UNIQUE INDEX IF NOT EXISTS turns_idem ON turns(session_id, idem_key);
"""


class StorageFull(MindwellError):
    """The disk (or the database server's disk) has no room left for a write."""

    def __init__(self, where: str = "the data directory") -> None:
        super().__init__(
            f"The disk holding {where} is full: nothing was saved.",
            "Free some space on that disk, then try again. Erasing data (DELETE /api/v1/data, "
            "a diary entry or a session) still works while the disk is full.")



@dataclass(frozen=True)
class User:
    id: int
    name: str
    mode: str
    locale: str | None
    language: str | None = None  # "en", "ko"; None: the browser's language


def hash_key(key: str) -> str:
    """API keys are random 256-bit strings, so a plain SHA-256 is enough (no salt or slow
    hash needed: nothing to brute-force), and lookups stay one indexed query."""
    return hashlib.sha256(key.encode()).hexdigest()


class Store:
    """Open with ``Store.open(url_or_dir)``: a directory or ``sqlite:///file`` for SQLite,
    ``postgresql://...`` for PostgreSQL."""

    dialect = "sqlite"

    def __init__(self) -> None:
        self._local = threading.local()
        self._connections: list = []
        self._lock = threading.Lock()

    # -- opening -----------------------------------------------------------------------
    @staticmethod
    def open(target: str | Path) -> Store:
        text = str(target)
        if text.startswith(("postgresql://", "postgres://")):
            return PostgresStore(text)
        if text.startswith("sqlite:///"):
            return SQLiteStore(Path(text.removeprefix("sqlite:///")))
        path = Path(text).expanduser()
        if path.suffix in {".db", ".sqlite", ".sqlite3"}:
            return SQLiteStore(path)
        return SQLiteStore(path / "mindwell.db", private_dir=True)

    def _connect(self):
        raise NotImplementedError

    @property
    def conn(self):
        """One connection per thread: the server answers requests from a thread pool."""
        connection = getattr(self._local, "connection", None)
        if connection is not None and self._broken(connection):
            # The server went away (a PostgreSQL restart): the next call connects again.
            with self._lock, contextlib.suppress(ValueError):
                self._connections.remove(connection)
            with contextlib.suppress(Exception):
                connection.close()
            connection = None
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(Exception):  # a connection of a dead thread
                    connection.close()
            self._connections.clear()
        self._local = threading.local()

    def _broken(self, connection) -> bool:
        return False

    def _sql(self, sql: str) -> str:
        return sql

    @contextmanager
    def _tx(self, write: bool = False) -> Iterator:
        """One transaction. ``write``: it reads before it writes and the two must see the
        same data (SQLite takes the write lock at the start; PostgreSQL locks rows with
        ``FOR SHARE`` where it checks them)."""
        connection = self.conn
        cursor = connection.cursor()
        try:
            if write:
                self._begin_write(cursor)
            yield cursor
            connection.commit()
        except BaseException as err:
            with contextlib.suppress(Exception):  # a dead connection cannot roll back
                connection.rollback()
            translated = self._translate(err)
            if translated is not None:
                raise translated from err
            raise
        finally:
            cursor.close()

    def _begin_write(self, cursor) -> None:
        """Hook: SQLite starts an IMMEDIATE transaction."""

    def _translate(self, err: BaseException) -> Exception | None:
        """The database's error as a ``MindwellError`` a person can act on, or None."""
        return None

    _share = ""  # PostgreSQL: " FOR SHARE" locks a checked parent row until commit

    def _execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._tx() as cursor:
            cursor.execute(self._sql(sql), params)
            return cursor.fetchall() if cursor.description else []

    def _count(self, cursor, sql: str, params: tuple) -> int:
        cursor.execute(self._sql(sql), params)
        return cursor.rowcount

    def _own_session(self, cursor, user_id: int, session_id: str) -> None:
        """Turns, events and memories go only into a session of the same user (checked in a
        write transaction: the session cannot be erased before the row is in)."""
        cursor.execute(self._sql("SELECT 1 FROM sessions WHERE id = ? AND user_id = ?"
                                 + self._share), (session_id, user_id))
        if not cursor.fetchall():
            raise MindwellError(f"There is no session '{session_id}' for this user.",
                                "Start a new session.")

    # -- users and keys ------------------------------------------------------------------
    def ensure_user(self, name: str) -> User:
        name = name.strip()
        if not name:
            raise MindwellError("A user name cannot be empty.", "Pass --user NAME.")
        found = self.user_by_name(name)
        if found:
            return found
        self._execute("INSERT INTO users (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                      (name, time.time()))
        return self.user_by_name(name)

    def user_by_name(self, name: str) -> User | None:
        rows = self._execute("SELECT id, name, mode, locale, language FROM users WHERE name = ?",
                             (name,))
        return User(*rows[0]) if rows else None

    def user_by_id(self, user_id: int) -> User | None:
        rows = self._execute("SELECT id, name, mode, locale, language FROM users WHERE id = ?",
                             (user_id,))
        return User(*rows[0]) if rows else None

    def user_by_key(self, key: str) -> User | None:
        rows = self._execute(
            "SELECT u.id, u.name, u.mode, u.locale, u.language FROM api_keys k JOIN users u "
            "ON u.id = k.user_id WHERE k.key_hash = ?", (hash_key(key),))
        return User(*rows[0]) if rows else None

    def update_settings(self, user_id: int, mode: str | None = None,
                        locale: str | None = None, language: str | None = None) -> None:
        """``locale`` or ``language`` "" clears it (the server's default locale, the
        browser's language)."""
        if language is not None and language and language not in LANGUAGES:
            raise MindwellError(f"Unknown language '{language}'.",
                                f"Choose one of: {', '.join(LANGUAGES)}, or \"\" for the "
                                "browser's.")
        if mode is not None:
            if mode not in MODES:
                raise MindwellError(f"Unknown mode '{mode}'.",
                                    f"Choose one of: {', '.join(MODES)}.")
            with self._tx(write=True) as cursor:
                self._count(cursor, "UPDATE users SET mode = ? WHERE id = ?", (mode, user_id))
                if mode == "ephemeral":
                    # Chats open now follow the switch: nothing more of them is remembered,
                    # what was is forgotten, and they are erased when they end.
                    self._count(cursor, "UPDATE sessions SET mode = 'ephemeral' WHERE "
                                "user_id = ? AND ended_at IS NULL", (user_id,))
                    forgotten = self._count(
                        cursor, "DELETE FROM memories WHERE user_id = ? AND session_id IN "
                        "(SELECT id FROM sessions WHERE user_id = ? AND mode = 'ephemeral')",
                        (user_id, user_id))
            if mode == "ephemeral" and forgotten:
                self._forget_vectors(user_id)
                self._compact()
        if locale is not None:
            self._execute("UPDATE users SET locale = ? WHERE id = ?", (locale or None, user_id))
        if language is not None:
            self._execute("UPDATE users SET language = ? WHERE id = ?",
                          (language or None, user_id))

    def create_key(self, user_id: int, label: str = "cli") -> str:
        """A new key; only its hash is stored, so this is the one time it can be shown."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        self._execute("INSERT INTO api_keys (user_id, key_hash, prefix, label, created_at) "
                      "VALUES (?, ?, ?, ?, ?)", (user_id, hash_key(key), key[:10], label,
                                                 time.time()))
        return key

    def list_keys(self, user_id: int | None = None) -> list[dict]:
        sql = ("SELECT u.name, k.prefix, k.label, k.created_at FROM api_keys k JOIN users u "
               "ON u.id = k.user_id")
        rows = self._execute(sql + (" WHERE u.id = ?" if user_id else "") + " ORDER BY k.id",
                             (user_id,) if user_id else ())
        return [{"user": r[0], "prefix": r[1], "label": r[2], "created_at": r[3]} for r in rows]

    def revoke_keys(self, user_id: int, prefix: str | None = None,
                    label: str | None = None) -> int:
        sql, params = "DELETE FROM api_keys WHERE user_id = ?", [user_id]
        if prefix:
            # Keys hold "_", a LIKE wildcard: match the given prefix literally.
            literal = "".join("!" + c if c in "!%_" else c for c in prefix[:10])
            sql, params = sql + " AND prefix LIKE ? ESCAPE '!'", [*params, literal + "%"]
        if label:
            sql, params = sql + " AND label = ?", [*params, label]
        with self._tx() as cursor:
            return self._count(cursor, sql, tuple(params))

    # -- diary ---------------------------------------------------------------------------
    def add_diary(self, user_id: int, text: str, created_at: float | None = None,
                  idem_key: str | None = None) -> int:
        """Stored (and committed) before anything slow happens: analysis and the reply are
        added by ``complete_diary``, so an acknowledged entry is never lost. With
        ``idem_key``, an entry already stored under that key is returned instead of a
        second one (a client's retry)."""
        with self._tx(write=True) as cursor:
            cursor.execute(self._sql(
                "INSERT INTO diary_entries (user_id, created_at, text, idem_key) "
                "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id"),
                (user_id, created_at or time.time(), text, idem_key))
            rows = cursor.fetchall()
            if not rows:
                cursor.execute(self._sql("SELECT id FROM diary_entries WHERE user_id = ? "
                                         "AND idem_key = ?"), (user_id, idem_key))
                rows = cursor.fetchall()
        return int(rows[0][0])

    def diary_by_key(self, user_id: int, idem_key: str) -> dict | None:
        """The entry stored under a client's idempotency key, if any."""
        rows = self._execute(
            "SELECT id, created_at, text, analysis, reply, escalated FROM diary_entries "
            "WHERE user_id = ? AND idem_key = ?", (user_id, idem_key))
        return self._diary_rows(rows)[0] if rows else None

    def incomplete_diary(self, before: float | None = None) -> list[dict]:
        """Entries stored but never analysed (the server stopped in between), all users:
        ``user_id`` is in each dict."""
        rows = self._execute(
            "SELECT id, created_at, text, analysis, reply, escalated, user_id FROM "
            "diary_entries WHERE analysis IS NULL AND created_at < ? ORDER BY id",
            (time.time() + 1 if before is None else before,))
        return [{**entry, "user_id": row[6]}
                for entry, row in zip(self._diary_rows(rows), rows, strict=True)]

    def complete_diary(self, user_id: int, entry_id: int, analysis: dict, reply: str | None,
                       escalated: bool) -> bool:
        """False when the entry no longer exists (erased while it was being answered)."""
        with self._tx() as cursor:
            return bool(self._count(
                cursor, "UPDATE diary_entries SET analysis = ?, reply = ?, escalated = ? "
                "WHERE id = ? AND user_id = ?",
                (json.dumps(analysis, ensure_ascii=False), reply, int(escalated), entry_id,
                 user_id)))

    def diary(self, user_id: int, limit: int = 50, since: float | None = None) -> list[dict]:
        rows = self._execute(
            "SELECT id, created_at, text, analysis, reply, escalated FROM diary_entries "
            "WHERE user_id = ? AND created_at >= ? ORDER BY created_at DESC, id DESC LIMIT ?",
            (user_id, since or 0.0, limit))
        return self._diary_rows(rows)

    @staticmethod
    def _diary_rows(rows) -> list[dict]:
        return [{"id": r[0], "created_at": r[1], "text": r[2],
                 "analysis": json.loads(r[3]) if r[3] else None, "reply": r[4],
                 "escalated": bool(r[5]), "stored": True} for r in rows]

    def delete_diary(self, user_id: int, entry_id: int) -> int:
        def delete() -> int:
            with self._tx(write=True) as cursor:
                # The entry first: a memory being added for it waits for (PostgreSQL) or
                # cannot interleave with (SQLite) this, and the next statement sees it.
                deleted = self._count(cursor, "DELETE FROM diary_entries WHERE user_id = ? "
                                      "AND id = ?", (user_id, entry_id))
                self._count(cursor, "DELETE FROM memories WHERE user_id = ? AND kind = 'diary' "
                            "AND ref_id = ?", (user_id, str(entry_id)))
            return deleted

        deleted = self._erasing(delete)
        self._forget_vectors(user_id)
        self._compact()
        return deleted

    # -- mood check-ins ------------------------------------------------------------------
    def add_checkin(self, user_id: int, mood: int, tags: list[str],
                    created_at: float | None = None) -> dict:
        """A one-tap mood (1 to 5) with optional tags, committed before returning."""
        if mood not in MOODS:
            raise MindwellError(f"A mood is 1 to 5, not {mood}.")
        created = created_at or time.time()
        with self._tx() as cursor:
            cursor.execute(self._sql(
                "INSERT INTO checkins (user_id, created_at, mood, tags) VALUES (?, ?, ?, ?) "
                "RETURNING id"), (user_id, created, mood, json.dumps(tags, ensure_ascii=False)))
            checkin_id = int(cursor.fetchall()[0][0])
        return {"id": checkin_id, "created_at": created, "mood": mood, "tags": list(tags),
                "stored": True}

    def checkins(self, user_id: int, limit: int = 50, since: float | None = None
                 ) -> list[dict]:
        rows = self._execute(
            "SELECT id, created_at, mood, tags FROM checkins WHERE user_id = ? AND "
            "created_at >= ? ORDER BY created_at DESC, id DESC LIMIT ?",
            (user_id, since or 0.0, limit))
        return [{"id": r[0], "created_at": r[1], "mood": r[2], "tags": json.loads(r[3]),
                 "stored": True} for r in rows]

    def update_checkin(self, user_id: int, checkin_id: int, tags: list[str]) -> dict | None:
        """New tags for a check-in (the person tapped them just after the mood); None when
        it is not this user's."""
        with self._tx() as cursor:
            cursor.execute(self._sql(
                "UPDATE checkins SET tags = ? WHERE user_id = ? AND id = ? "
                "RETURNING id, created_at, mood, tags"),
                (json.dumps(tags, ensure_ascii=False), user_id, checkin_id))
            rows = cursor.fetchall()
        if not rows:
            return None
        r = rows[0]
        return {"id": r[0], "created_at": r[1], "mood": r[2], "tags": json.loads(r[3]),
                "stored": True}

    def delete_checkin(self, user_id: int, checkin_id: int) -> int:
        def delete() -> int:
            with self._tx() as cursor:
                return self._count(cursor, "DELETE FROM checkins WHERE user_id = ? AND id = ?",
                                   (user_id, checkin_id))

        deleted = self._erasing(delete)
        self._compact()
        return deleted

    # -- sessions ------------------------------------------------------------------------
    def create_session(self, user_id: int, mode: str) -> dict:
        session_id = "s_" + secrets.token_hex(8)
        started = time.time()
        self._execute("INSERT INTO sessions (id, user_id, mode, started_at, state) "
                      "VALUES (?, ?, ?, ?, ?)", (session_id, user_id, mode, started, "{}"))
        return {"id": session_id, "started_at": started, "ended_at": None, "mode": mode,
                "state": {}}

    def session(self, user_id: int, session_id: str) -> dict | None:
        rows = self._execute("SELECT id, mode, started_at, ended_at, state FROM sessions "
                             "WHERE user_id = ? AND id = ?", (user_id, session_id))
        if not rows:
            return None
        r = rows[0]
        return {"id": r[0], "mode": r[1], "started_at": r[2], "ended_at": r[3],
                "state": json.loads(r[4] or "{}")}

    def sessions(self, user_id: int) -> list[dict]:
        rows = self._execute(
            "SELECT s.id, s.mode, s.started_at, s.ended_at, "
            "(SELECT COUNT(*) FROM turns t WHERE t.session_id = s.id AND t.role = 'user'), "
            "(SELECT COUNT(*) FROM events e WHERE e.session_id = s.id AND e.type = 'escalation') "
            "FROM sessions s WHERE s.user_id = ? ORDER BY s.started_at DESC", (user_id,))
        return [{"id": r[0], "mode": r[1], "started_at": r[2], "ended_at": r[3], "turns": r[4],
                 "escalations": r[5]} for r in rows]

    def save_session(self, user_id: int, session_id: str, state: dict,
                     ended_at: float | None = None) -> None:
        self._execute("UPDATE sessions SET state = ?, ended_at = COALESCE(?, ended_at) "
                      "WHERE user_id = ? AND id = ?",
                      (json.dumps(state, ensure_ascii=False), ended_at, user_id, session_id))

    def add_turn(self, user_id: int, session_id: str, role: str, text: str,
                 analysis: dict | None = None, at: float | None = None,
                 idem_key: str | None = None) -> int:
        with self._tx(write=True) as cursor:
            self._own_session(cursor, user_id, session_id)
            cursor.execute(self._sql(
                "INSERT INTO turns (session_id, user_id, time, role, text, analysis, idem_key) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id"),
                (session_id, user_id, at or time.time(), role, text,
                 json.dumps(analysis, ensure_ascii=False) if analysis else None, idem_key))
            return int(cursor.fetchall()[0][0])

    def turn_by_key(self, user_id: int, session_id: str, idem_key: str) -> dict | None:
        """The person's turn stored under a client's idempotency key, with ``reply``: the
        assistant turn that followed it, or None when none was saved."""
        rows = self._execute("SELECT id, time, text, analysis FROM turns WHERE user_id = ? "
                             "AND session_id = ? AND idem_key = ?",
                             (user_id, session_id, idem_key))
        if not rows:
            return None
        turn_id, at, text, analysis = rows[0]
        following = self._execute(
            "SELECT role, text FROM turns WHERE user_id = ? AND session_id = ? AND id > ? "
            "ORDER BY id LIMIT 1", (user_id, session_id, turn_id))
        reply = following[0][1] if following and following[0][0] == "assistant" else None
        return {"id": turn_id, "time": at, "text": text,
                "analysis": json.loads(analysis) if analysis else None, "reply": reply}

    def turns(self, user_id: int, session_id: str) -> list[dict]:
        rows = self._execute("SELECT id, time, role, text, analysis FROM turns "
                             "WHERE user_id = ? AND session_id = ? ORDER BY id",
                             (user_id, session_id))
        return [{"id": r[0], "time": r[1], "role": r[2], "text": r[3],
                 "analysis": json.loads(r[4]) if r[4] else None} for r in rows]

    def add_event(self, user_id: int, session_id: str, kind: str, data: dict,
                  at: float | None = None) -> None:
        with self._tx(write=True) as cursor:
            self._own_session(cursor, user_id, session_id)
            cursor.execute(self._sql("INSERT INTO events (session_id, user_id, time, type, data) "
                                     "VALUES (?, ?, ?, ?, ?)"),
                           (session_id, user_id, at or time.time(), kind,
                            json.dumps(data, ensure_ascii=False)))

    def events(self, user_id: int, session_id: str) -> list[dict]:
        rows = self._execute("SELECT time, type, data FROM events WHERE user_id = ? AND "
                             "session_id = ? ORDER BY id", (user_id, session_id))
        return [{"time": r[0], "type": r[1], **json.loads(r[2] or "{}")} for r in rows]

    def delete_session(self, user_id: int, session_id: str) -> bool:
        def delete() -> int:
            with self._tx(write=True) as cursor:
                # The session first (a turn or memory being added waits for it, or cannot
                # interleave), then its children: the foreign keys cascade too, but explicit
                # deletes keep the per-user filter visible and do not depend on the
                # database's FK setting.
                deleted = self._count(cursor, "DELETE FROM sessions WHERE user_id = ? AND "
                                      "id = ?", (user_id, session_id))
                for table in ("memories", "events", "turns"):
                    self._count(cursor, f"DELETE FROM {table} WHERE user_id = ? AND "
                                "session_id = ?", (user_id, session_id))
            return deleted

        deleted = self._erasing(delete)
        self._forget_vectors(user_id)
        self._compact()
        return bool(deleted)

    def ephemeral_sessions(self) -> list[tuple[int, str]]:
        """Sessions of ephemeral mode that never ended (the server stopped): erased at start."""
        return [(r[0], r[1]) for r in self._execute(
            "SELECT user_id, id FROM sessions WHERE mode = 'ephemeral'")]

    # -- memories ------------------------------------------------------------------------
    def add_memory(self, user_id: int, kind: str, ref_id: str, text: str, vector: np.ndarray,
                   session_id: str | None = None, created_at: float | None = None,
                   if_entry_exists: bool = False) -> int | None:
        """``if_entry_exists`` (a diary memory): added only while diary entry ``ref_id``
        exists and has no memory yet, else None; an erase of the entry running meanwhile
        either comes first (nothing is added) or deletes the memory too."""
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if vector.shape[0] != EMBEDDING_DIM:
            raise MindwellError(f"A memory vector has {vector.shape[0]} dimensions, "
                                f"expected {EMBEDDING_DIM}.")
        values = (user_id, kind, str(ref_id), session_id, created_at or time.time(), text,
                  self._encode_vector(vector))
        with self._tx(write=True) as cursor:
            if session_id is not None:
                self._own_session(cursor, user_id, session_id)
            if if_entry_exists:
                entry_id = int(ref_id)
                if self._share:  # lock the entry: an erase waits until this commits
                    cursor.execute(self._sql("SELECT 1 FROM diary_entries WHERE id = ? AND "
                                             "user_id = ?" + self._share), (entry_id, user_id))
                cursor.execute(self._sql(
                    "INSERT INTO memories (user_id, kind, ref_id, session_id, created_at, text, "
                    f"embedding) SELECT ?, ?, ?, ?, ?, ?, {self._vector_param} WHERE EXISTS ("
                    "SELECT 1 FROM diary_entries WHERE id = ? AND user_id = ?) AND NOT EXISTS ("
                    "SELECT 1 FROM memories WHERE user_id = ? AND kind = ? AND ref_id = ?) "
                    "RETURNING id"), (*values, entry_id, user_id, user_id, kind, str(ref_id)))
            else:
                cursor.execute(self._sql(
                    "INSERT INTO memories (user_id, kind, ref_id, session_id, created_at, text, "
                    f"embedding) VALUES (?, ?, ?, ?, ?, ?, {self._vector_param}) RETURNING id"),
                    values)
            rows = cursor.fetchall()
        if not rows:
            return None
        memory_id = int(rows[0][0])
        self._vector_added(user_id, memory_id, vector, session_id)
        return memory_id

    def search_memories(self, user_id: int, vector: np.ndarray, k: int = 5,
                        exclude_session: str | None = None) -> list[dict]:
        raise NotImplementedError

    def memory_count(self, user_id: int) -> int:
        return int(self._execute("SELECT COUNT(*) FROM memories WHERE user_id = ?",
                                 (user_id,))[0][0])

    _vector_param = "?"

    def _encode_vector(self, vector: np.ndarray):
        return vector.tobytes()

    def _vector_added(self, user_id: int, memory_id: int, vector: np.ndarray,
                      session_id: str | None) -> None:
        """Hook for the SQLite in-process index."""

    def _forget_vectors(self, user_id: int) -> None:
        """Hook for the SQLite in-process index."""

    # -- erasure -------------------------------------------------------------------------
    # Memories are deleted first (to count them) and last: rows of the parents go in
    # between, so a memory added for an entry or session that was still there (PostgreSQL
    # waits for it to commit) is gone too.
    _ERASE_ORDER = (("memories", "user_id"), ("diary_entries", "user_id"),
                    ("sessions", "user_id"), ("events", "user_id"), ("turns", "user_id"),
                    ("checkins", "user_id"), ("memories", "user_id"))
    _ERASE_COUNTS: ClassVar[dict[str, str]] = {
        "memories": "memories", "diary_entries": "diary", "sessions": "sessions",
        "checkins": "checkins"}

    def erase_user_data(self, user_id: int, account: bool = False) -> dict:
        try:
            counts = self._erase_at_once(user_id, account)
        except StorageFull:
            # No room for the erase's journal: give up the reserve and go in small
            # committed batches, each checkpointed, so the journal never grows past one.
            self._release_reserve()
            counts = self._erase_in_batches(user_id, account)
        self._forget_vectors(user_id)
        self._compact()
        self._keep_reserve()
        return counts

    def _erase_at_once(self, user_id: int, account: bool) -> dict:
        names = self._ERASE_COUNTS
        counts = dict.fromkeys(names.values(), 0)
        with self._tx(write=True) as cursor:
            for table, column in self._ERASE_ORDER:
                deleted = self._count(cursor, f"DELETE FROM {table} WHERE {column} = ?",
                                      (user_id,))
                if table in names:
                    counts[names[table]] += deleted
            if account:
                self._count(cursor, "DELETE FROM api_keys WHERE user_id = ?", (user_id,))
                self._count(cursor, "DELETE FROM users WHERE id = ?", (user_id,))
        return counts

    def _erase_in_batches(self, user_id: int, account: bool) -> dict:
        names = self._ERASE_COUNTS
        counts = dict.fromkeys(names.values(), 0)
        for table, column in self._ERASE_ORDER:
            while True:
                with self._tx(write=True) as cursor:
                    deleted = self._count(
                        cursor, f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} "
                        f"WHERE {column} = ? LIMIT {ERASE_BATCH})", (user_id,))
                if table in names:
                    counts[names[table]] += deleted
                self._compact()
                if deleted < ERASE_BATCH:
                    break
        if account:
            with self._tx(write=True) as cursor:
                self._count(cursor, "DELETE FROM api_keys WHERE user_id = ?", (user_id,))
                self._count(cursor, "DELETE FROM users WHERE id = ?", (user_id,))
        return counts

    def _erasing(self, delete):
        """Run an erase; on a full disk, once more with the reserve given up."""
        try:
            result = delete()
        except StorageFull:
            if not self._release_reserve():
                raise
            result = delete()
        self._keep_reserve()
        return result

    def _release_reserve(self) -> bool:
        """Hook (SQLite): delete the reserve file; True if there was one."""
        return False

    def _keep_reserve(self) -> None:
        """Hook (SQLite): write the reserve file again if it is missing and there is room."""

    def _compact(self) -> None:
        """Make deleted content unrecoverable from the database files."""


class SQLiteStore(Store):
    dialect = "sqlite"

    def __init__(self, path: Path, private_dir: bool = False) -> None:
        """``private_dir``: the directory is mindwell's data directory (made 0700); a
        database file named on its own leaves its folder's mode alone."""
        super().__init__()
        self.path = Path(path)
        self.reserve = self.path.with_name(self.path.name + ".reserve")
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if private_dir:
                os.chmod(self.path.parent, 0o700)
        except OSError as err:
            raise MindwellError(f"Cannot create the data directory {self.path.parent}: {err}.",
                                "Pass --data-dir to a writable directory.") from err
        # The vector index lives in memory, per user, loaded on first search: this Python's
        # sqlite3 cannot load extensions such as sqlite-vec, and an exact numpy search over
        # 10,000 vectors of 512 floats takes about a millisecond.
        self._vectors: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._vectors_lock = threading.Lock()
        self._check_header()
        self._private_files()
        try:
            with self._tx() as cursor:
                cursor.executescript(_SCHEMA.format(pk="INTEGER PRIMARY KEY", float="REAL",
                                                    vector="BLOB"))
                for table, column, kind in _ADDED_COLUMNS:
                    cursor.execute(f"PRAGMA table_info({table})")
                    if column not in {row[1] for row in cursor.fetchall()}:
                        cursor.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                cursor.executescript(_ADDED_INDEXES)
        except MindwellError:
            self.close()
            raise
        except sqlite3.DatabaseError as err:  # a damaged file with a valid header
            self.close()
            raise MindwellError(f"Cannot open the database {self.path}: {err}.",
                                DAMAGED_HINT) from err
        self._keep_reserve()

    def _private_files(self) -> None:
        """The database file exists with mode 0600 before SQLite opens it: SQLite creates
        the -wal and -shm files with the database's mode. Files of an older version, made
        with the umask's mode, are tightened."""
        try:
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            for name in ("", "-wal", "-shm", "-journal"):
                file = self.path.with_name(self.path.name + name)
                if file.exists():
                    os.chmod(file, 0o600)
        except OSError as err:
            raise MindwellError(f"Cannot open the database {self.path}: {err}.",
                                "Pass --data-dir to a writable directory.") from err

    def _begin_write(self, cursor) -> None:
        # The write lock from the start: what the transaction reads stays true until it
        # commits (a deferred transaction could check a session, then insert after another
        # connection erased it).
        cursor.execute("BEGIN IMMEDIATE")

    def _translate(self, err: BaseException) -> Exception | None:
        full = (isinstance(err, sqlite3.OperationalError)
                and (getattr(err, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
                     or "disk is full" in str(err))) or (
            isinstance(err, OSError) and err.errno == errno.ENOSPC)
        return StorageFull(f"the data directory {self.path.parent}") if full else None

    def _release_reserve(self) -> bool:
        try:
            self.reserve.unlink()
        except FileNotFoundError:
            return False
        return True

    def _keep_reserve(self) -> None:
        """A file of zeros the size of ``RESERVE_BYTES`` beside the database, written for
        real (not sparse), so a full disk can give that room to an erase."""
        try:
            if self.reserve.exists() and self.reserve.stat().st_size >= RESERVE_BYTES:
                return
            fd = os.open(self.reserve, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                block = b"\0" * 65536
                for _ in range(RESERVE_BYTES // len(block)):
                    os.write(fd, block)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:  # no room: the next erase or start tries again
            with contextlib.suppress(OSError):
                self.reserve.unlink()

    def _check_header(self) -> None:
        # SQLite takes some damaged files (one byte long, say) for a new database and would
        # write over them: refuse any non-empty file that does not start as a database.
        try:
            with self.path.open("rb") as file:
                header = file.read(len(SQLITE_HEADER))
        except FileNotFoundError:
            return
        except OSError as err:
            raise MindwellError(f"Cannot open the database {self.path}: {err}.",
                                "Pass --data-dir to a readable directory.") from err
        if header and header != SQLITE_HEADER:
            raise MindwellError(f"Cannot open the database {self.path}: the file is not a "
                                "SQLite database.", DAMAGED_HINT)

    def _connect(self):
        connection = None
        try:
            connection = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as err:
            if connection is not None:
                connection.close()
            raise MindwellError(f"Cannot open the database {self.path}: {err}.",
                                DAMAGED_HINT) from err
        connection.execute("PRAGMA synchronous=FULL")  # a commit is on disk when it returns
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("PRAGMA secure_delete=ON")  # deleted text is overwritten, not left
        connection.execute("PRAGMA busy_timeout=30000")
        return connection

    def search_memories(self, user_id: int, vector: np.ndarray, k: int = 5,
                        exclude_session: str | None = None) -> list[dict]:
        if k <= 0:
            return []
        ids, sessions, matrix = self._user_vectors(user_id)
        if exclude_session:
            # Drop the session's rows before ranking, so k others still come back.
            keep = sessions != exclude_session
            ids, matrix = ids[keep], matrix[keep]
        if not len(ids):
            return []
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        query = query / (np.linalg.norm(query) or 1.0)
        scores = matrix @ query
        top = np.argsort(-scores, kind="stable")[:k]
        rank = {int(ids[i]): n for n, i in enumerate(top)}
        score_of = {int(ids[i]): float(scores[i]) for i in top}
        marks = ",".join("?" * len(rank))
        rows = self._execute(
            f"SELECT id, kind, ref_id, session_id, created_at, text FROM memories "
            f"WHERE user_id = ? AND id IN ({marks})", (user_id, *rank))
        return [{"id": r[0], "kind": r[1], "ref_id": r[2], "session_id": r[3],
                 "created_at": r[4], "text": r[5], "score": round(score_of[r[0]], 4)}
                for r in sorted(rows, key=lambda r: rank[r[0]])]

    def _user_vectors(self, user_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Memory ids, their session ids and unit vectors of one user, cached. Loading holds
        the lock, so a memory added meanwhile is either in the loaded rows or appended after
        (and a deletion's ``_forget_vectors`` waits for the load to finish)."""
        with self._vectors_lock:
            cached = self._vectors.get(user_id)
            if cached is not None:
                return cached
            rows = self._execute("SELECT id, session_id, embedding FROM memories "
                                 "WHERE user_id = ? ORDER BY id", (user_id,))
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            sessions = np.array([r[1] for r in rows], dtype=object)
            matrix = (np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32)
                      .reshape(len(rows), EMBEDDING_DIM) if rows
                      else np.zeros((0, EMBEDDING_DIM), np.float32))
            matrix = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
            self._vectors[user_id] = (ids, sessions, matrix)
            return self._vectors[user_id]

    def _vector_added(self, user_id: int, memory_id: int, vector: np.ndarray,
                      session_id: str | None) -> None:
        with self._vectors_lock:
            cached = self._vectors.get(user_id)
            if cached is None or memory_id in cached[0]:
                return
            unit = vector / (np.linalg.norm(vector) or 1.0)
            sessions = np.empty(len(cached[1]) + 1, dtype=object)
            sessions[:-1], sessions[-1] = cached[1], session_id
            self._vectors[user_id] = (np.append(cached[0], memory_id), sessions,
                                      np.vstack([cached[2], unit[None, :]]))

    def _forget_vectors(self, user_id: int) -> None:
        with self._vectors_lock:
            self._vectors.pop(user_id, None)

    def _compact(self) -> None:
        # secure_delete already zeroed the freed pages in the database; the WAL still holds
        # the old page images until a checkpoint copies the new ones and truncates it. A
        # reader of another thread can make it give up (busy): try again shortly.
        for _ in range(20):
            busy = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            if not busy:
                return
            time.sleep(0.05)


_SCHEMA_LOCK = 0x6D696E6477656C6C  # "mindwell": pg_advisory_xact_lock's key


class PostgresStore(Store):
    dialect = "postgresql"
    _vector_param = "?::vector"
    _share = " FOR SHARE"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        try:
            import psycopg  # noqa: F401
        except ImportError as err:
            raise MindwellError("PostgreSQL storage needs psycopg.",
                                "pip install 'mindwell[postgres]'") from err
        with self._tx() as cursor:
            # Workers of one server start together: one creates the schema at a time
            # (concurrent CREATE ... IF NOT EXISTS can still collide).
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            try:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except Exception as err:  # psycopg's error types vary by server
                raise MindwellError(
                    f"PostgreSQL at {self._safe_url()} has no pgvector extension: "
                    f"{self._scrub(str(err))}".strip(),
                    "Install pgvector on the server (Debian 13: postgresql-17-pgvector; or the "
                    "pgvector/pgvector Docker image) and connect as a user who may create it."
                ) from err
            schema = _SCHEMA.format(pk="BIGSERIAL PRIMARY KEY", float="DOUBLE PRECISION",
                                    vector=f"vector({EMBEDDING_DIM})")
            for statement in filter(str.strip, schema.split(";")):
                cursor.execute(statement)
            # A 512-float vector (2 KB) is just over PostgreSQL's TOAST threshold: stored
            # out of line, every search detoasted each row (p95 89 ms at 10,000 memories vs
            # 17 ms inline; benchmarks/serve.py). Inline storage applies to rows written after.
            cursor.execute("ALTER TABLE memories ALTER COLUMN embedding SET STORAGE PLAIN")
            for table, column, kind in _ADDED_COLUMNS:
                cursor.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {kind}")
            for statement in filter(str.strip, _ADDED_INDEXES.split(";")):
                cursor.execute(statement)

    def _translate(self, err: BaseException) -> Exception | None:
        import psycopg

        if isinstance(err, psycopg.errors.DiskFull):
            return StorageFull("the PostgreSQL database")
        return None

    def _safe_url(self) -> str:
        # Never print a password from the URL (nor its query, which may hold one). The host
        # part is taken as written: a malformed port must not raise here.
        parts = urlsplit(self.url)
        user = parts.netloc.rpartition("@")[0].partition(":")[0]
        host = parts.netloc.rpartition("@")[2] or "localhost"
        return f"{parts.scheme}://{user + '@' if user else ''}{host}{parts.path}"

    def _scrub(self, text: str) -> str:
        """The driver's message with any password of the URL blanked out (libpq quotes
        parts of a malformed URL, such as a bad percent-encoding in the password)."""
        parts = urlsplit(self.url)
        secrets_ = [parts.netloc.rpartition("@")[0].partition(":")[2]]
        secrets_ += [value for key, value in parse_qsl(parts.query) if key == "password"]
        for secret in filter(None, secrets_):
            for form in (secret, unquote(secret)):
                text = text.replace(form, "***")
        return text

    def _connect(self):
        import psycopg

        options = {} if "connect_timeout" in self.url else {"connect_timeout": 10}
        try:
            return psycopg.connect(self.url, **options)
        except psycopg.Error as err:
            raise MindwellError(f"Cannot connect to PostgreSQL at {self._safe_url()}: "
                                f"{self._scrub(str(err).strip())}",
                                "Check that the server runs and the URL, user and password "
                                "are right.") from None

    def _broken(self, connection) -> bool:
        return connection.closed or connection.broken

    def _sql(self, sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def _encode_vector(self, vector: np.ndarray):
        return "[" + ",".join(f"{x:.7g}" for x in vector.tolist()) + "]"

    def search_memories(self, user_id: int, vector: np.ndarray, k: int = 5,
                        exclude_session: str | None = None) -> list[dict]:
        query = self._encode_vector(np.asarray(vector, dtype=np.float32).reshape(-1))
        # Exact search over this user's rows (no ANN index: a filtered HNSW scan can
        # return fewer than k rows, and one person's memories are few enough to scan).
        rows = self._execute(
            "SELECT id, kind, ref_id, session_id, created_at, text, 1 - distance FROM ("
            "SELECT id, kind, ref_id, session_id, created_at, text, "
            "embedding <=> ?::vector AS distance FROM memories WHERE user_id = ? "
            "AND (?::text IS NULL OR session_id IS NULL OR session_id <> ?::text) "
            "ORDER BY distance LIMIT ?) AS nearest ORDER BY distance",
            (query, user_id, exclude_session, exclude_session, k))
        return [{"id": r[0], "kind": r[1], "ref_id": r[2], "session_id": r[3],
                 "created_at": r[4], "text": r[5], "score": round(float(r[6]), 4)}
                for r in rows]

    def _compact(self) -> None:
        # VACUUM removes the deleted row versions from the table files (it cannot run in a
        # transaction block, hence autocommit).
        connection = self.conn
        previous = connection.autocommit
        connection.autocommit = True
        try:
            for table in ("memories", "turns", "events", "sessions", "diary_entries",
                          "api_keys", "users"):
                connection.execute(f"VACUUM {table}")
        finally:
            connection.autocommit = previous
