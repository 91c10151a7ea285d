"""The per-user store on SQLite and on PostgreSQL with pgvector: accounts and keys, diary,
sessions, memories and their search, isolation between users, erasure, and (SQLite) what is
left on disk after erasure, survival of a hard kill and refusal to touch a damaged file."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from mindwell.errors import MindwellError
from mindwell.memory import store as store_module
from mindwell.memory.store import EMBEDDING_DIM, KEY_PREFIX, SQLiteStore, Store, hash_key


def vec(**weights: float) -> np.ndarray:
    """A 512-d vector from a few named axes (``x0=1, x1=0.5``): cosine scores are known."""
    vector = np.zeros(EMBEDDING_DIM, np.float32)
    for axis, weight in weights.items():
        vector[int(axis[1:])] = weight
    return vector


def raw(store: Store, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows straight from the tables, past the per-user methods."""
    return store._execute(sql, params)


@pytest.fixture
def alice(store):
    return store.ensure_user("alice")


@pytest.fixture
def bob(store):
    return store.ensure_user("bob")


def fill(store: Store, user_id: int, tag: str) -> dict:
    """A diary entry with its memory, a session with turns, events and memories."""
    entry = store.add_diary(user_id, f"{tag} diary", created_at=1000.0)
    store.complete_diary(user_id, entry, {"mood": tag}, f"{tag} reply", escalated=False)
    diary_memory = store.add_memory(user_id, "diary", str(entry), f"{tag} diary memory",
                                    vec(x0=1))
    session = store.create_session(user_id, "journal")["id"]
    store.add_turn(user_id, session, "user", f"{tag} asks", {"risk": 0}, at=1001.0)
    store.add_turn(user_id, session, "assistant", f"{tag} answer", at=1002.0)
    store.add_event(user_id, session, "escalation", {"level": 1}, at=1003.0)
    session_memory = store.add_memory(user_id, "turn", "1", f"{tag} session memory",
                                      vec(x0=1, x1=1), session_id=session)
    key = store.create_key(user_id, label=f"{tag}-key")
    return {"entry": entry, "session": session, "diary_memory": diary_memory,
            "session_memory": session_memory, "key": key}


def snapshot(store: Store, user_id: int, data: dict) -> dict:
    """Everything the user can see of their data, to compare before and after."""
    return {
        "diary": store.diary(user_id),
        "sessions": store.sessions(user_id),
        "session": store.session(user_id, data["session"]),
        "turns": store.turns(user_id, data["session"]),
        "events": store.events(user_id, data["session"]),
        "memories": store.search_memories(user_id, vec(x0=1), k=10),
        "memory_count": store.memory_count(user_id),
        "key_user": store.user_by_key(data["key"]),
    }


# -- users and keys ------------------------------------------------------------------------
def test_ensure_user_is_idempotent(store):
    first = store.ensure_user("alice")
    assert store.ensure_user("alice") == first
    assert store.ensure_user("  alice ") == first
    assert store.user_by_name("alice") == first
    assert (first.name, first.mode, first.locale) == ("alice", "journal", None)
    assert store.ensure_user("bob").id != first.id
    assert raw(store, "SELECT COUNT(*) FROM users")[0][0] == 2
    with pytest.raises(MindwellError, match="cannot be empty"):
        store.ensure_user("   ")
    assert store.user_by_name("nobody") is None


def test_update_settings(store, alice):
    store.update_settings(alice.id, mode="ephemeral", locale="ko")
    assert store.user_by_name("alice").mode == "ephemeral"
    assert store.user_by_name("alice").locale == "ko"
    store.update_settings(alice.id, locale="")
    assert store.user_by_name("alice").locale is None
    with pytest.raises(MindwellError, match="Unknown mode 'loud'") as err:
        store.update_settings(alice.id, mode="loud")
    assert "journal" in err.value.hint
    assert store.user_by_name("alice").mode == "ephemeral"


def test_api_keys_store_only_a_hash(store, alice, bob):
    key = store.create_key(alice.id, label="phone")
    other = store.create_key(alice.id, label="laptop")
    assert key.startswith(KEY_PREFIX) and len(key) > 40 and key != other
    rows = raw(store, "SELECT * FROM api_keys")
    assert len(rows) == 2
    assert all(key not in str(value) and other not in str(value)
               for row in rows for value in row)
    hashes = {r[0] for r in raw(store, "SELECT key_hash FROM api_keys")}
    assert hashes == {hashlib.sha256(k.encode()).hexdigest() for k in (key, other)}
    assert hash_key(key) in hashes

    assert store.user_by_key(key) == alice
    assert store.user_by_key(key + "x") is None
    assert store.user_by_key("mw_" + "A" * 43) is None
    assert store.user_by_key("") is None
    listed = store.list_keys(alice.id)
    assert [(k["user"], k["label"], k["prefix"]) for k in listed] == [
        ("alice", "phone", key[:10]), ("alice", "laptop", other[:10])]
    assert store.list_keys(bob.id) == []
    assert len(store.list_keys()) == 2

    assert store.revoke_keys(bob.id) == 0  # not bob's keys
    assert store.revoke_keys(alice.id, prefix=key[:10]) == 1
    assert store.user_by_key(key) is None
    assert store.user_by_key(other) == alice
    assert store.revoke_keys(alice.id, label="laptop") == 1
    assert store.user_by_key(other) is None
    assert store.list_keys(alice.id) == []


def test_revoke_by_prefix_takes_the_prefix_literally(store, alice, monkeypatch):
    # Key text may hold "_", a LIKE wildcard: "mw_a_bcdef" must not revoke "mw_aXbcdef".
    tokens = iter(["aXbcdefgh" + "k" * 34, "a_bcdefgh" + "k" * 34])
    monkeypatch.setattr(store_module.secrets, "token_urlsafe", lambda n: next(tokens))
    plain = store.create_key(alice.id)
    underscore = store.create_key(alice.id)
    assert store.revoke_keys(alice.id, prefix=underscore[:10]) == 1
    assert store.user_by_key(plain) == alice
    assert store.user_by_key(underscore) is None


# -- diary ---------------------------------------------------------------------------------
def test_diary_add_complete_list_delete(store, alice):
    first = store.add_diary(alice.id, "first", created_at=100.0)
    second = store.add_diary(alice.id, "second", created_at=200.0)
    third = store.add_diary(alice.id, "third, 한국어도", created_at=300.0)
    assert len({first, second, third}) == 3
    entries = store.diary(alice.id)
    assert [e["id"] for e in entries] == [third, second, first]  # newest first
    assert entries[0]["text"] == "third, 한국어도"
    assert entries[0]["analysis"] is None and entries[0]["reply"] is None
    assert entries[0]["stored"] is True and entries[0]["escalated"] is False

    store.complete_diary(alice.id, second, {"mood": "슬픔", "score": 0.5}, "I hear you.",
                         escalated=True)
    done = {e["id"]: e for e in store.diary(alice.id)}[second]
    assert done["analysis"] == {"mood": "슬픔", "score": 0.5}
    assert done["reply"] == "I hear you." and done["escalated"] is True
    assert done["created_at"] == 200.0

    assert [e["id"] for e in store.diary(alice.id, limit=2)] == [third, second]
    assert [e["id"] for e in store.diary(alice.id, since=150.0)] == [third, second]

    memory = store.add_memory(alice.id, "diary", str(second), "second", vec(x0=1))
    kept = store.add_memory(alice.id, "diary", str(first), "first", vec(x1=1))
    assert store.delete_diary(alice.id, second) == 1
    assert [e["id"] for e in store.diary(alice.id)] == [third, first]
    assert [r[0] for r in raw(store, "SELECT id FROM memories")] == [kept]
    assert memory not in [m["id"] for m in store.search_memories(alice.id, vec(x0=1))]
    assert store.delete_diary(alice.id, second) == 0


# -- sessions ------------------------------------------------------------------------------
def test_sessions_turns_and_events(store, alice):
    created = store.create_session(alice.id, "journal")
    sid = created["id"]
    assert created["state"] == {} and created["ended_at"] is None
    other = store.create_session(alice.id, "ephemeral")["id"]
    assert store.session(alice.id, sid)["mode"] == "journal"
    assert store.session(alice.id, "s_missing") is None

    store.add_turn(alice.id, sid, "user", "hello", {"risk": 0.1}, at=10.0)
    store.add_turn(alice.id, sid, "assistant", "hi there", at=11.0)
    store.add_turn(alice.id, sid, "user", "bye", at=12.0)
    store.add_event(alice.id, sid, "escalation", {"level": 2}, at=12.5)
    store.add_event(alice.id, sid, "face", {"label": "sad"}, at=13.0)
    turns = store.turns(alice.id, sid)
    assert [(t["role"], t["text"]) for t in turns] == [
        ("user", "hello"), ("assistant", "hi there"), ("user", "bye")]
    assert turns[0]["analysis"] == {"risk": 0.1} and turns[1]["analysis"] is None
    assert turns[0]["time"] == 10.0
    assert store.events(alice.id, sid) == [
        {"time": 12.5, "type": "escalation", "level": 2},
        {"time": 13.0, "type": "face", "label": "sad"}]

    listed = {s["id"]: s for s in store.sessions(alice.id)}
    assert listed[sid]["turns"] == 2 and listed[sid]["escalations"] == 1
    assert listed[other]["turns"] == 0 and listed[other]["mode"] == "ephemeral"

    store.save_session(alice.id, sid, {"summary": "요약"})
    assert store.session(alice.id, sid)["state"] == {"summary": "요약"}
    assert store.session(alice.id, sid)["ended_at"] is None
    store.save_session(alice.id, sid, {"summary": "done"}, ended_at=99.0)
    store.save_session(alice.id, sid, {"summary": "done"})  # keeps ended_at
    assert store.session(alice.id, sid)["ended_at"] == 99.0
    assert (alice.id, other) in store.ephemeral_sessions()
    assert (alice.id, sid) not in store.ephemeral_sessions()


def test_turns_and_events_need_an_existing_session(store, alice):
    with pytest.raises(MindwellError, match="session"):
        store.add_turn(alice.id, "s_missing", "user", "hello")
    with pytest.raises(MindwellError, match="session"):
        store.add_event(alice.id, "s_missing", "face", {})
    with pytest.raises(MindwellError, match="session"):
        store.add_memory(alice.id, "turn", "1", "text", vec(x0=1), session_id="s_missing")
    assert raw(store, "SELECT COUNT(*) FROM turns")[0][0] == 0
    assert raw(store, "SELECT COUNT(*) FROM memories")[0][0] == 0


def test_delete_session_removes_turns_events_and_memories(store, alice):
    data = fill(store, alice.id, "a")
    other = store.create_session(alice.id, "journal")["id"]
    store.add_turn(alice.id, other, "user", "stays")
    kept_memory = store.add_memory(alice.id, "turn", "2", "stays", vec(x2=1), session_id=other)

    assert store.delete_session(alice.id, data["session"]) is True
    assert store.session(alice.id, data["session"]) is None
    for table in ("turns", "events", "memories"):
        assert raw(store, f"SELECT COUNT(*) FROM {table} WHERE session_id = ?",
                   (data["session"],))[0][0] == 0
    assert [t["text"] for t in store.turns(alice.id, other)] == ["stays"]
    remaining = {m["id"] for m in store.search_memories(alice.id, vec(x0=1), k=10)}
    assert remaining == {kept_memory, data["diary_memory"]}
    assert store.memory_count(alice.id) == 2  # the diary memory and the other session's
    assert len(store.diary(alice.id)) == 1
    assert store.delete_session(alice.id, data["session"]) is False


# -- memories ------------------------------------------------------------------------------
def test_search_memories_ranks_by_cosine(store, alice):
    assert store.search_memories(alice.id, vec(x0=1)) == []
    session = store.create_session(alice.id, "journal")["id"]
    ids = {
        "far": store.add_memory(alice.id, "diary", "1", "far", vec(x1=1)),
        "close": store.add_memory(alice.id, "diary", "2", "close", vec(x0=1, x1=0.5)),
        "exact": store.add_memory(alice.id, "turn", "3", "exact", vec(x0=3), session_id=session),
        "half": store.add_memory(alice.id, "diary", "4", "half", vec(x0=1, x1=1),
                                 created_at=5.0),
    }
    found = store.search_memories(alice.id, vec(x0=1), k=10)
    assert [m["text"] for m in found] == ["exact", "close", "half", "far"]
    assert [m["score"] for m in found] == pytest.approx([1.0, 0.8944, 0.7071, 0.0], abs=2e-4)
    half = found[2]
    assert half == {"id": ids["half"], "kind": "diary", "ref_id": "4", "session_id": None,
                    "created_at": 5.0, "text": "half", "score": half["score"]}
    assert found[0]["session_id"] == session

    assert [m["text"] for m in store.search_memories(alice.id, vec(x0=1), k=2)] == [
        "exact", "close"]
    assert store.search_memories(alice.id, vec(x0=1), k=0) == []
    assert [m["text"] for m in store.search_memories(alice.id, vec(x1=1), k=1)] == ["far"]
    assert [m["text"] for m in store.search_memories(
        alice.id, vec(x0=1), k=2, exclude_session=session)] == ["close", "half"]
    assert store.memory_count(alice.id) == 4

    # The index follows additions and deletions after the first search.
    new = store.add_memory(alice.id, "diary", "9", "newest", vec(x0=1, x3=0.1))
    assert store.search_memories(alice.id, vec(x0=1), k=1)[0]["id"] == ids["exact"]
    assert store.search_memories(alice.id, vec(x3=1), k=1)[0]["id"] == new
    store.delete_session(alice.id, session)
    assert [m["text"] for m in store.search_memories(alice.id, vec(x0=1), k=2)] == [
        "newest", "close"]


def test_excluding_a_session_still_fills_k(store, alice):
    # The current session holds the most similar memories; k others must still come back.
    session = store.create_session(alice.id, "journal")["id"]
    for i in range(40):
        store.add_memory(alice.id, "turn", str(i), f"now {i}", vec(x0=1, x1=i / 1000),
                         session_id=session)
    for i in range(3):
        store.add_memory(alice.id, "diary", str(i), f"past {i}", vec(x0=1, x2=1 + i))
    found = store.search_memories(alice.id, vec(x0=1), k=3, exclude_session=session)
    assert [m["text"] for m in found] == ["past 0", "past 1", "past 2"]


def test_memory_vectors_must_have_the_embedding_size(store, alice):
    with pytest.raises(MindwellError, match="expected 512"):
        store.add_memory(alice.id, "diary", "1", "short", np.ones(3, np.float32))
    assert store.memory_count(alice.id) == 0


# -- isolation -----------------------------------------------------------------------------
def test_a_user_cannot_reach_another_users_data(store, alice, bob):
    a = fill(store, alice.id, "alice")
    before = snapshot(store, alice.id, a)

    assert store.diary(bob.id) == []
    assert store.sessions(bob.id) == []
    assert store.session(bob.id, a["session"]) is None
    assert store.turns(bob.id, a["session"]) == []
    assert store.events(bob.id, a["session"]) == []
    assert store.search_memories(bob.id, vec(x0=1), k=10) == []
    assert store.memory_count(bob.id) == 0
    assert store.list_keys(bob.id) == []

    store.complete_diary(bob.id, a["entry"], {"mood": "bob"}, "bob's reply", escalated=True)
    store.save_session(bob.id, a["session"], {"hacked": True}, ended_at=1.0)
    assert store.delete_diary(bob.id, a["entry"]) == 0
    assert store.delete_session(bob.id, a["session"]) is False
    assert store.revoke_keys(bob.id) == 0
    assert store.revoke_keys(bob.id, prefix=a["key"][:10]) == 0
    with pytest.raises(MindwellError, match="session"):
        store.add_turn(bob.id, a["session"], "user", "bob writes into alice's session")
    with pytest.raises(MindwellError, match="session"):
        store.add_event(bob.id, a["session"], "escalation", {})
    with pytest.raises(MindwellError, match="session"):
        store.add_memory(bob.id, "turn", "1", "bob", vec(x0=1), session_id=a["session"])
    assert store.erase_user_data(bob.id) == {"memories": 0, "diary": 0, "sessions": 0,
                                             "checkins": 0}
    store.erase_user_data(bob.id, account=True)

    assert snapshot(store, alice.id, a) == before
    assert before["diary"][0]["reply"] == "alice reply"
    assert before["memory_count"] == 2 and before["key_user"] == alice
    assert store.user_by_name("bob") is None


# -- erasure -------------------------------------------------------------------------------
def test_erase_user_data(store, alice, bob):
    a = fill(store, alice.id, "alice")
    store.add_diary(alice.id, "another")
    store.add_checkin(alice.id, 2, ["sleep"])
    b = fill(store, bob.id, "bob")
    store.add_checkin(bob.id, 4, ["work"])
    bob_before = snapshot(store, bob.id, b)

    counts = store.erase_user_data(alice.id)
    assert counts == {"memories": 2, "diary": 2, "sessions": 1, "checkins": 1}
    assert store.checkins(alice.id) == []
    assert [c["tags"] for c in store.checkins(bob.id)] == [["work"]]
    for table in ("diary_entries", "sessions", "turns", "events", "memories", "checkins"):
        assert raw(store, f"SELECT COUNT(*) FROM {table} WHERE user_id = ?",
                   (alice.id,))[0][0] == 0, table
    assert store.diary(alice.id) == [] and store.sessions(alice.id) == []
    assert store.search_memories(alice.id, vec(x0=1)) == []
    assert store.user_by_key(a["key"]) == alice  # the account stays
    assert snapshot(store, bob.id, b) == bob_before

    store.add_diary(alice.id, "after")
    assert store.erase_user_data(alice.id, account=True)["diary"] == 1
    assert store.user_by_name("alice") is None
    assert store.user_by_key(a["key"]) is None
    assert raw(store, "SELECT COUNT(*) FROM api_keys WHERE user_id = ?", (alice.id,)) == [(0,)]
    assert snapshot(store, bob.id, b) == bob_before


def test_data_survives_reopening(store_target):
    first = Store.open(store_target)
    user = first.ensure_user("alice")
    entry = first.add_diary(user.id, "kept")
    first.add_memory(user.id, "diary", str(entry), "kept", vec(x0=1))
    first.close()
    second = Store.open(store_target)
    try:
        assert second.ensure_user("alice") == user
        assert [e["text"] for e in second.diary(user.id)] == ["kept"]
        assert second.search_memories(user.id, vec(x0=1))[0]["text"] == "kept"
    finally:
        second.close()


def test_threads_share_one_store(store, alice):
    # The server calls the store from a thread pool: one connection per thread.
    errors, added = [], []

    def writer(n: int) -> None:
        try:
            for i in range(10):
                entry = store.add_diary(alice.id, f"thread {n} entry {i}")
                added.append(store.add_memory(alice.id, "diary", str(entry), "m",
                                              vec(x0=1, x1=n + i / 100)))
                store.search_memories(alice.id, vec(x0=1), k=3)
        except Exception as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store.diary(alice.id, limit=1000)) == 60
    found = [m["id"] for m in store.search_memories(alice.id, vec(x0=1), k=1000)]
    assert sorted(found) == sorted(added)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_postgres_connects_again_after_losing_its_connection(store, alice):
    import psycopg

    store.add_diary(alice.id, "before")
    with psycopg.connect(store.url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (store.conn.info.backend_pid,))
    with pytest.raises(psycopg.OperationalError):  # the call that finds it gone
        store.diary(alice.id)
    assert [e["text"] for e in store.diary(alice.id)] == ["before"]
    store.add_diary(alice.id, "after")
    assert len(store.diary(alice.id)) == 2


# -- SQLite on disk ------------------------------------------------------------------------
@pytest.fixture
def sqlite_store(tmp_path):
    opened = Store.open(tmp_path)
    assert isinstance(opened, SQLiteStore)
    yield opened
    opened.close()


def disk_bytes(path: Path) -> bytes:
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-journal")]
    return b"".join(f.read_bytes() for f in files if f.exists())


@pytest.mark.parametrize("erase", ["delete_diary", "delete_session", "erase_user_data"])
def test_erased_text_is_gone_from_the_files(sqlite_store, erase):
    # secure_delete zeroes the freed bytes and the WAL is truncated after a checkpoint: no
    # copy of the erased text stays in mindwell.db or mindwell.db-wal.
    store = sqlite_store
    marker = "MARKER-" + os.urandom(6).hex()
    keep = "KEEPME-" + os.urandom(6).hex()
    user, other = store.ensure_user("alice"), store.ensure_user("bob")
    store.add_diary(other.id, keep)
    if erase in ("delete_diary", "erase_user_data"):
        entry = store.add_diary(user.id, f"today {marker}")
        store.complete_diary(user.id, entry, {"note": marker}, f"reply {marker}", False)
        store.add_memory(user.id, "diary", str(entry), f"memory {marker}", vec(x0=1))
        long_entry = store.add_diary(user.id, f"{marker} " * 2000)  # overflow pages
    if erase in ("delete_session", "erase_user_data"):
        session = store.create_session(user.id, "journal")["id"]
        store.add_turn(user.id, session, "user", f"turn {marker} " * 300)
        store.add_event(user.id, session, "note", {"text": marker})
        store.add_memory(user.id, "turn", "1", f"session memory {marker}", vec(x1=1),
                         session_id=session)
    assert marker.encode() in disk_bytes(store.path)

    if erase == "delete_diary":
        assert store.delete_diary(user.id, entry) == 1
        assert store.delete_diary(user.id, long_entry) == 1
    elif erase == "delete_session":
        assert store.delete_session(user.id, session)
    else:
        store.erase_user_data(user.id, account=True)

    on_disk = disk_bytes(store.path)
    assert marker.encode() not in on_disk
    assert keep.encode() in on_disk
    assert store.diary(other.id)[0]["text"] == keep


KILL_SCRIPT = """
import sys
from mindwell.memory.store import Store
store = Store.open(sys.argv[1])
user = store.ensure_user("alice")
i = 0
while True:
    i += 1
    print(store.add_diary(user.id, f"entry {i}"), flush=True)
"""


def test_acknowledged_entries_survive_a_hard_kill(tmp_path):
    process = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(tmp_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    acknowledged = []
    try:
        while len(acknowledged) < 40:
            line = process.stdout.readline()
            if not line:
                pytest.fail(f"the writer stopped: {process.stderr.read()}")
            acknowledged.append(int(line))
    finally:
        os.kill(process.pid, signal.SIGKILL)
        rest, _ = process.communicate(timeout=30)
    acknowledged += [int(line) for line in rest.split()]
    assert process.returncode == -signal.SIGKILL

    reopened = Store.open(tmp_path)
    try:
        user = reopened.user_by_name("alice")
        stored = {e["id"] for e in reopened.diary(user.id, limit=100_000)}
    finally:
        reopened.close()
    assert set(acknowledged) <= stored


@pytest.mark.parametrize("garbage", [os.urandom(4096), b"x", b"\0" * 100 + b"junk",
                                     b"SQLite format 3\0" + os.urandom(8176)],
                         ids=["random", "one-byte", "zeros", "damaged-after-header"])
def test_a_damaged_database_is_reported_and_left_alone(tmp_path, garbage):
    path = tmp_path / "mindwell.db"
    path.write_bytes(garbage)
    with pytest.raises(MindwellError, match="Cannot open the database") as err:
        Store.open(tmp_path)
    assert str(path) in str(err.value)
    assert "never overwrites" in err.value.hint
    assert path.read_bytes() == garbage
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mindwell.db"]


# -- PostgreSQL connection problems ----------------------------------------------------------
@pytest.mark.parametrize("password", ["s3cret-Pa55", "p%zz-s3cret", "p%40ss-s3cret"])
def test_unreachable_postgres_names_the_problem_without_the_password(password):
    pytest.importorskip("psycopg")
    from tests.postgres import free_port

    port = free_port()  # nothing listens there
    url = f"postgresql://mindwell:{password}@127.0.0.1:{port}/mindwell?connect_timeout=5"
    with pytest.raises(MindwellError) as err:
        Store.open(url)
    text = f"{err.value}\n{err.value.hint}\n{err.value!r}"
    assert "Cannot connect to PostgreSQL at postgresql://mindwell@127.0.0.1" in text
    assert "s3cret" not in text


def test_a_malformed_postgres_url_is_a_clear_error():
    pytest.importorskip("psycopg")
    with pytest.raises(MindwellError) as err:
        Store.open("postgresql://mindwell:s3cret@127.0.0.1:notaport/mindwell")
    assert "s3cret" not in str(err.value)


# -- issue 20: writes racing erasure, retries --------------------------------------------------
def test_a_diary_memory_needs_its_entry_and_comes_once(store, alice):
    entry = store.add_diary(alice.id, "kept for now")
    first = store.add_memory(alice.id, "diary", str(entry), "kept", vec(x0=1),
                             if_entry_exists=True)
    assert first is not None
    assert store.add_memory(alice.id, "diary", str(entry), "kept", vec(x0=1),
                            if_entry_exists=True) is None  # a retry adds no second one
    store.erase_user_data(alice.id)
    # The memory of an entry erased while it was being embedded is refused.
    assert store.add_memory(alice.id, "diary", str(entry), "late", vec(x0=1),
                            if_entry_exists=True) is None
    assert store.memory_count(alice.id) == 0


def test_an_idempotency_key_stores_a_diary_entry_once(store, alice, bob):
    first = store.add_diary(alice.id, "once", idem_key="k1")
    assert store.add_diary(alice.id, "once", idem_key="k1") == first
    assert store.add_diary(bob.id, "bob's", idem_key="k1") != first  # keys are per user
    assert store.diary_by_key(alice.id, "k1")["id"] == first
    assert store.diary_by_key(bob.id, "k2") is None
    assert [e["id"] for e in store.incomplete_diary()].count(first) == 1  # not analysed yet
    store.complete_diary(alice.id, first, {"mood": "ok"}, None, False)
    assert first not in [e["id"] for e in store.incomplete_diary()]
    assert len(store.diary(alice.id)) == 1


def test_switching_to_ephemeral_makes_open_chats_ephemeral(store, alice):
    open_chat = store.create_session(alice.id, "journal")["id"]
    ended = store.create_session(alice.id, "journal")["id"]
    store.save_session(alice.id, ended, {}, ended_at=5.0)
    store.add_memory(alice.id, "turn", open_chat, "said in the open chat", vec(x0=1),
                     session_id=open_chat)
    store.add_memory(alice.id, "turn", ended, "said before", vec(x1=1), session_id=ended)
    store.update_settings(alice.id, mode="ephemeral")
    assert store.session(alice.id, open_chat)["mode"] == "ephemeral"
    assert store.session(alice.id, ended)["mode"] == "journal"
    assert [m["text"] for m in store.search_memories(alice.id, vec(x0=1), k=5)] == [
        "said before"]
