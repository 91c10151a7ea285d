"""What the server does, without HTTP: diary entries, chat sessions, session logs, memory and
erasure for one user at a time, wired to the safety gate, the analysis models and one
queued model instance.

Every method takes the ``User`` the request authenticated as, and every store call filters
on that user's id: nothing here can reach another person's data.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mindwell.app.worker import QueuedBackend
from mindwell.chat.prompts import AI_DISCLOSURE
from mindwell.chat.session import WITHHELD_CRISIS_MESSAGE, ChatSession
from mindwell.errors import MindwellError
from mindwell.inference.base import Backend, GenerationStats, Message, SamplingParams
from mindwell.memory import Memory, Store, User
from mindwell.memory.store import StorageFull
from mindwell.safety import SafetyGate, crisis_reply, detect_language
from mindwell.safety.crisis import (
    ABUSE_HELPLINES,
    CHECK_IN,
    CRISIS_CHECK_IN,
    GROUNDING,
    HELPLINES,
    INTERNATIONAL,
    SAFETY_PLAN_STEPS,
    Helpline,
    helplines_for,
    says_safe,
)
from mindwell.safety.guardrails import OutputGuardrail

MAX_CACHED_CHATS = 256  # open chats kept in memory; older ones reload from the store
MAX_TEXT_CHARS = 64 * 1024  # requests with more text than this are refused (413)
# A shared database (PostgreSQL, several workers): an entry this young may still be being
# answered by another worker, so only older ones are completed at start.
RECOVER_AFTER_S = 600
log = logging.getLogger("mindwell.serve")
DIARY_PROMPT = (
    "Here is my diary entry for today. Please answer it as a short, warm note: reflect what I "
    "feel and ask one gentle question.\n\n{text}"
)


class NotFound(MindwellError):
    """An id that does not exist for this user (whether or not another user has it)."""


class TooLarge(MindwellError):
    """A text over the size limit."""


class Busy(MindwellError):
    """The chat is still answering an earlier message."""


class KeyReused(MindwellError):
    """An idempotency key sent again with a different text."""

    def __init__(self) -> None:
        super().__init__("This Idempotency-Key was already used for a different text.",
                         "Send a new key with each new entry or message; send a key again "
                         "only to retry the same request.")


def clean_text(text: str) -> str:
    """``text`` with any unpaired UTF-16 surrogate (JSON's "\\ud800" alone) replaced by
    U+FFFD: such text cannot be encoded, stored or tokenized, and a crisis message that
    carries one must still get the crisis reply."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


@dataclass
class ServeConfig:
    data_dir: Path
    database: str | None = None  # postgresql://... for PostgreSQL; default SQLite in data_dir
    model: str | None = None
    backend: str = "auto"
    url: str | None = None  # a remote OpenAI-compatible server does the generation
    remote_api_key: str | None = None
    user: str = "me"
    locale: str | None = None
    ctx_size: int = 4096
    threads: int | None = None
    max_tokens: int = 256
    temperature: float = 0.3  # the counselor's measured default (SamplingParams)
    seed: int | None = None


LOCALES = (None, "US", "KR", "GB", "IE")


def _fixed_replies() -> frozenset[str]:
    """Every fixed crisis-mode message in full, for every locale, to recognise crisis mode
    in conversations that stateless API clients send back. Compared whole: a client turn
    that only starts like one ("Thank you for telling me..." and then anything) is not
    taken for mindwell's."""
    texts = {crisis_reply(locale, korean=korean, categories=kind) for locale in LOCALES
             for korean in (False, True) for kind in ((), ("abuse",))}
    for lang in ("en", "ko"):
        texts |= {CRISIS_CHECK_IN[lang], GROUNDING[lang]}
        for locale in LOCALES:
            main = helplines_for(locale)[0]
            texts |= {step.format(line=main.line(lang == "ko"))
                      for step in SAFETY_PLAN_STEPS[lang]}
    return frozenset(text.strip() for text in texts)


FIXED_REPLIES = _fixed_replies()


_NUMBER = re.compile(r"\+?\d[\d -]*\d|\d")
_TEXT_TO = re.compile(r"text (\w+) to\s*$|^로 (\w+) 문자", re.I)


def _links(contact: str) -> list[dict]:
    """The tap targets in a helpline's contact words: numbers to call (tel:), a number to
    text a keyword to (sms:), a web address (https:)."""
    if "." in contact and " " not in contact.strip():
        return [{"text": contact, "href": f"https://{contact}"}]
    links = []
    for match in _NUMBER.finditer(contact):
        number = re.sub(r"[ -]", "", match.group())
        before = _TEXT_TO.search(contact[:match.start()])
        after = _TEXT_TO.search(contact[match.end():])
        keyword = (before and before.group(1)) or (after and after.group(2))
        href = f"sms:{number}?body={keyword}" if keyword else f"tel:{number}"
        links.append({"text": match.group(), "href": href})
    return links


def _helpline_dict(helpline: Helpline) -> dict:
    return {"en": helpline.line(False), "ko": helpline.line(True),
            "links": _links(helpline.contact)}


def _dial_links() -> list[dict]:
    """Every number and address a fixed reply names (helplines in both languages, and the
    emergency numbers the Korean replies name in their sentences), longest first."""
    found: dict[str, str] = {"112": "tel:112", "119": "tel:119"}
    every = [*(h for group in HELPLINES.values() for h in group),
             *(h for group in ABUSE_HELPLINES.values() for h in group), INTERNATIONAL]
    for helpline in every:
        for contact in (helpline.contact, helpline.contact_ko):
            for link in _links(contact) if contact else []:
                found.setdefault(link["text"], link["href"])
    return [{"text": text, "href": href}
            for text, href in sorted(found.items(), key=lambda item: -len(item[0]))]


DIAL_LINKS = _dial_links()
# A client-supplied assistant turn that starts handing out steps or amounts ("Sure, here are
# the amounts:") is a prefill for the model to continue, not a reply mindwell wrote.
PREFILL = re.compile(
    r"\b(here (are|is) (the|a|some)|step \d|first,? (you|crush|take|mix|tie)|the (amounts?|doses?|"
    r"steps?|method|instructions)|you('ll| will) need|exact (quantit|amount|dose)|"
    r"always (give|answer|provide))\b|:\s*$|알려\s*(드릴게|줄게)|방법은|단계", re.I)


class CompanionService:
    def __init__(self, store: Store, backend: Backend, analyzer=None, memory: Memory | None = None,
                 safety: SafetyGate | None = None, sampling: SamplingParams | None = None,
                 default_locale: str | None = None, model_name: str | None = None) -> None:
        self.store = store
        self.model_name = model_name or _model_name(backend)
        self.backend = backend if isinstance(backend, QueuedBackend) else QueuedBackend(backend)
        if analyzer is None:
            from mindwell.analysis.analyzer import default_analyzer

            analyzer = default_analyzer()
        self.analyzer = analyzer
        self.memory = memory or Memory(store)
        self.safety = safety or SafetyGate(analyzer.risk)
        self.sampling = sampling or SamplingParams()
        self.default_locale = default_locale
        self.guardrail = OutputGuardrail()  # counts replacements over the server's life
        self._chats: dict[str, tuple[int, ChatSession]] = {}  # session id -> (owner, chat)
        self._chat_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._face_analyzer = None
        self.started_at = time.time()
        for user_id, session_id in store.ephemeral_sessions():
            # An ephemeral session the server never saw end (it was stopped): keep nothing.
            store.delete_session(user_id, session_id)
        self._recover_diary()

    @classmethod
    def from_config(cls, config: ServeConfig) -> CompanionService:
        """Open the store, load the model once and the analysis models once."""
        from mindwell.inference import load_backend

        store = Store.open(config.database or config.data_dir)
        backend = load_backend(config.model, config.backend, url=config.url,
                               n_ctx=config.ctx_size, threads=config.threads,
                               api_key=config.remote_api_key)
        sampling = SamplingParams(max_tokens=config.max_tokens, temperature=config.temperature,
                                  seed=config.seed)
        name = config.model
        if not config.url:
            from mindwell.models.registry import resolve

            name = resolve(config.model).name
        return cls(store, backend, sampling=sampling, default_locale=config.locale,
                   model_name=name)

    def close(self) -> None:
        self.backend.close()
        self.store.close()

    # -- helpers -------------------------------------------------------------------------
    def locale(self, user: User) -> str | None:
        return user.locale or self.default_locale

    def profile(self, user: User) -> dict:
        """The account's settings, the AI disclosure, and the crisis lines for its locale
        (``helplines``: each in English and Korean with its ``links``, tel:, sms: or https:)
        and ``dial``: every number or address mindwell's fixed replies can name, for the
        app to turn into links wherever such a reply shows one."""
        user = self.store.user_by_name(user.name) or user
        return {"user": user.name, "mode": user.mode, "locale": user.locale,
                "language": user.language, "disclosure": AI_DISCLOSURE,
                "helplines": [_helpline_dict(h) for h in helplines_for(self.locale(user))],
                "dial": DIAL_LINKS}

    @staticmethod
    def korean(user: User, text: str) -> bool:
        """Whether fixed replies (crisis, check-in, declines) are in Korean: the person chose
        Korean for the app, or wrote in Korean."""
        return user.language == "ko" or detect_language(text) == "ko"

    @staticmethod
    def check_text(text, field: str = "text") -> str:
        if not isinstance(text, str):
            raise MindwellError(f"'{field}' must be a string.")
        text = clean_text(text)
        if len(text) > MAX_TEXT_CHARS:
            raise TooLarge(f"'{field}' has {len(text)} characters; the limit is "
                                f"{MAX_TEXT_CHARS}.", "Split the text into smaller parts.")
        if "\x00" in text:
            raise MindwellError(f"'{field}' contains a NUL character.",
                                "Send plain text (a binary file was perhaps pasted).")
        text = text.strip()
        if not text:
            raise MindwellError(f"'{field}' is empty.", "Write something first.")
        return text

    def _analyze(self, text: str) -> dict:
        """Emotion and depression; the risk is the gate's, read with the conversation (the
        caller adds it), so a message is assessed once."""
        return self.analyzer.analyze([text], assess_risk=False)[0]

    # -- diary ---------------------------------------------------------------------------
    def diary_entry(self, user: User, text: str, reply: bool = True,
                    idem_key: str | None = None) -> dict:
        """Store, analyse and answer one entry. ``idem_key``: a client's retry of a request
        whose answer it never got returns the entry stored the first time, completed if
        the server stopped half-way, instead of storing it twice."""
        text = self.check_text(text)
        user = self.store.user_by_name(user.name) or user
        stored = user.mode == "journal"
        created = time.time()
        entry_id = None
        if stored and idem_key:
            existing = self.store.diary_by_key(user.id, idem_key)
            if existing is not None:
                if existing["text"] != text:
                    raise KeyReused()
                if existing["analysis"] is not None and (
                        existing["reply"] is not None or not reply or existing["escalated"]):
                    return existing  # done the first time: the same answer again
                entry_id, created = existing["id"], existing["created_at"]
        if stored and entry_id is None:
            # Committed before analysis and generation: an acknowledged entry is never lost
            # (and one the server stopped on is analysed when it starts again).
            entry_id = self.store.add_diary(user.id, text, created, idem_key=idem_key)
        analysis, turn = self._diary_turn(user, entry_id, text, created, reply)
        risk = turn.risk
        fixed = None if turn.generated else "".join(turn.pieces).strip() or None
        notices, storage_full = list(turn.notices), False
        if stored:
            # The analysis (and a fixed crisis reply) are saved before any generation, and
            # the memory only while the entry exists: an erase meanwhile leaves nothing.
            try:
                still_there = self.store.complete_diary(user.id, entry_id, analysis, fixed,
                                                        risk.escalate)
                if still_there and not risk.escalate:  # crisis words are never recalled
                    self.memory.remember(user.id, "diary", entry_id, text, created_at=created,
                                         if_entry_exists=True)
            except StorageFull as err:
                # The entry itself is saved; its analysis is completed at the next start.
                notices.append(f"{err.message} The entry itself was saved. {err.hint}")
                storage_full = True
        answer = fixed
        if turn.generated:  # the check-in question, if asked, closes the generated note
            answer = "".join(turn.pieces).strip()
        if stored and answer is not None and answer != fixed and not storage_full:
            # Zero rows: the entry was erased while the reply was written.
            try:
                self.store.complete_diary(user.id, entry_id, analysis, answer, risk.escalate)
            except StorageFull as err:
                notices.append(f"{err.message} The entry itself was saved. {err.hint}")
        result = {"id": entry_id, "created_at": created, "text": text, "analysis": analysis,
                  "reply": answer, "escalated": risk.escalate, "stored": stored}
        return {**result, "notices": notices} if notices else result

    def _diary_turn(self, user: User, entry_id: int | None, text: str, created: float,
                    reply: bool = True):
        """The entry as a one-message chat: the gate reads it with the last days' entries
        as separate occasions, then the fixed reply (crisis, declined amount) or a note to
        generate. Returns (analysis with the gate's risk, turn); the turn's pieces are not
        generated until read."""
        analysis = self._analyze(text)
        recent = [e["text"] for e in self.store.diary(user.id, limit=3, since=created - 3 * 86400)
                  if e["id"] != entry_id and e["created_at"] <= created]
        chat = ChatSession(self.backend, safety=self.safety, sampling=self.sampling,
                           locale=self.locale(user), max_message_chars=max(len(text), 1),
                           separate_entries=True, message_frame=DIARY_PROMPT)
        chat.guardrail = self.guardrail
        chat.language = user.language
        chat.said = list(reversed(recent))
        if reply:  # recalled memories travel with the entry to the note
            chat.context = lambda: Memory.as_context(self._recall(user, text,
                                                                  exclude_ref=entry_id))
        turn = chat.ask(text, reply=reply)
        analysis["risk"] = turn.risk.as_dict()
        return analysis, turn

    def _recover_diary(self) -> None:
        """Entries stored by a server that stopped before analysing them get their analysis
        (and memory) now: no entry stays half-written."""
        before = time.time() - RECOVER_AFTER_S if self.store.dialect != "sqlite" else None
        for entry in self.store.incomplete_diary(before):
            user_id = entry["user_id"]
            owner = self.store.user_by_id(user_id) or User(user_id, "", "journal", None)
            analysis, turn = self._diary_turn(owner, entry["id"], entry["text"],
                                              entry["created_at"], reply=False)
            risk, fixed = turn.risk, "".join(turn.pieces).strip() or None
            if self.store.complete_diary(user_id, entry["id"], analysis, fixed,
                                         risk.escalate) and not risk.escalate:
                self.memory.remember(user_id, "diary", entry["id"], entry["text"],
                                     created_at=entry["created_at"], if_entry_exists=True)

    def _recall(self, user: User, text: str, exclude_session: str | None = None,
                exclude_ref=None) -> list[dict]:
        found = self.memory.recall(user.id, text, k=3, exclude_session=exclude_session)
        return [m for m in found if not (m["kind"] == "diary" and m["ref_id"] == str(exclude_ref))]

    def mood(self, user: User, days: int = 30) -> list[dict]:
        """One point per day with a diary entry or a mood check-in, oldest first: the
        diary's mean depression signal and most frequent emotion, the check-ins' mean mood
        (1 to 5) and most used tags."""
        since = time.time() - days * 86400
        by_day: dict[str, dict[str, list]] = {}

        def day_of(at: float) -> dict[str, list]:
            day = time.strftime("%Y-%m-%d", time.localtime(at))
            return by_day.setdefault(day, {"entries": [], "checkins": []})

        for entry in self.store.diary(user.id, limit=10_000, since=since):
            day_of(entry["created_at"])["entries"].append(entry)
        for checkin in self.store.checkins(user.id, limit=10_000, since=since):
            day_of(checkin["created_at"])["checkins"].append(checkin)
        points = []
        for day in sorted(by_day):
            entries, checkins = by_day[day]["entries"], by_day[day]["checkins"]
            analysed = [e["analysis"] for e in entries
                        if e["analysis"] and "emotion" in e["analysis"]]
            emotions = [a["emotion"]["label"] for a in analysed]
            tags = [tag for c in checkins for tag in c["tags"]]
            points.append({
                "date": day,
                "depression": round(sum(a["depression"]["score"] for a in analysed)
                                    / len(analysed), 4) if analysed else None,
                "emotion": max(set(emotions), key=emotions.count) if emotions else None,
                "entries": len(entries),
                "escalations": sum(e["escalated"] for e in entries),
                "mood": round(sum(c["mood"] for c in checkins) / len(checkins), 2)
                if checkins else None,
                "checkins": len(checkins),
                "tags": sorted(set(tags), key=lambda t: (-tags.count(t), t))[:3],
            })
        return points

    # -- mood check-ins ------------------------------------------------------------------
    def checkin(self, user: User, mood: int, tags: list[str]) -> dict:
        """A one-tap mood, kept in journal mode (ephemeral: acknowledged, not kept)."""
        user = self.store.user_by_name(user.name) or user
        tags = list(dict.fromkeys(tag.strip() for tag in tags if tag.strip()))
        if user.mode != "journal":
            return {"id": None, "created_at": time.time(), "mood": mood, "tags": tags,
                    "stored": False}
        return self.store.add_checkin(user.id, mood, tags)

    def retag_checkin(self, user: User, checkin_id: int, tags: list[str]) -> dict:
        tags = list(dict.fromkeys(tag.strip() for tag in tags if tag.strip()))
        checkin = self.store.update_checkin(user.id, checkin_id, tags)
        if checkin is None:
            raise NotFound(f"No mood check-in {checkin_id}.")
        return checkin

    # -- chat ----------------------------------------------------------------------------
    def start_session(self, user: User) -> dict:
        user = self.store.user_by_name(user.name) or user
        session = self.store.create_session(user.id, user.mode)
        return {"id": session["id"], "started_at": session["started_at"],
                "disclosure": AI_DISCLOSURE, "mode": user.mode}

    def _session_row(self, user: User, session_id: str) -> dict:
        row = self.store.session(user.id, session_id)
        if row is None:
            raise NotFound(f"No chat session '{session_id}'.",
                           "Start one with POST /api/v1/sessions.")
        return row

    def _chat(self, user: User, session_id: str) -> ChatSession:
        owner, chat = self._chats.get(session_id, (None, None))
        if chat is not None and owner == user.id:
            return chat
        row = self._session_row(user, session_id)
        chat = ChatSession(self.backend, safety=self.safety, sampling=self.sampling,
                           locale=self.locale(user))
        chat.guardrail = self.guardrail
        chat.from_state(row["state"], started_at=row["started_at"])
        chat.said = [t["text"] for t in self.store.turns(user.id, session_id)
                     if t["role"] == "user"][-12:]
        self._chats[session_id] = (user.id, chat)
        while len(self._chats) > MAX_CACHED_CHATS:
            # The oldest open chat leaves memory; its state is in the store and reloads.
            oldest = next(iter(self._chats))
            self._chats.pop(oldest, None)
            with self._locks_guard:
                lock = self._chat_locks.get(oldest)
                if lock is not None and not lock.locked():
                    self._chat_locks.pop(oldest, None)
        return chat

    def _lock(self, session_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._chat_locks.setdefault(session_id, threading.Lock())

    def chat_turn(self, user: User, session_id: str, text: str,
                  idem_key: str | None = None) -> Iterator[dict]:
        """Events of one exchange: notices, reply pieces, then ``done``. Checks (session,
        text, a reply already in progress) happen before the first event, so errors become
        a 4xx, not a broken stream.

        The reply is produced by a thread of its own, which saves it and frees the chat when
        it ends, whatever the client does: one that goes away (its stream closed or merely
        abandoned) stops the generation, and what was said so far is kept. ``idem_key``: a
        retry of a message already answered gets the saved reply again; one the server
        stopped on is answered now, without storing the message twice."""
        text = self.check_text(text)
        row = self._session_row(user, session_id)
        if row["ended_at"]:
            raise MindwellError(f"Chat session '{session_id}' has ended.",
                                "Start a new one with POST /api/v1/sessions.")
        lock = self._lock(session_id)
        # One message at a time per session (the history is shared). Refused rather than
        # queued: a waiting request would hold one of the server's threads.
        if not lock.acquire(blocking=False):
            raise Busy("This chat is still answering an earlier message.",
                       "Wait for that reply, then send again.")
        try:
            earlier = None
            if idem_key:
                earlier = self.store.turn_by_key(user.id, session_id, idem_key)
                if earlier is not None and earlier["text"] != text:
                    raise KeyReused()
                if earlier is not None and earlier["reply"] is not None:
                    lock.release()
                    return iter(self._replayed(row, earlier))
            chat = self._chat(user, session_id)
            chat.locale = self.locale(user)
            chat.language = user.language
            analysis = self._analyze(text)
            events_before = len(chat.events)
            context = ""
            if not chat.crisis_mode:
                context = Memory.as_context(self._recall(user, text, exclude_session=session_id))
            chat.context = (lambda: context) if context else None
            asked_at = time.time() if earlier is None else earlier["time"]
            turn = chat.ask(text)
            analysis["risk"] = turn.risk.as_dict()
            if earlier is None:
                # Saved before the reply streams: a client that goes away mid-reply must not
                # take the person's message or an escalation event with it.
                self.store.add_turn(user.id, session_id, "user", text, analysis, at=asked_at,
                                    idem_key=idem_key)
                for event in chat.events[events_before:]:
                    self.store.add_event(user.id, session_id, event["type"],
                                         {k: v for k, v in event.items()
                                          if k not in {"type", "time"}}, at=event["time"])
        except BaseException:
            if lock.locked():
                lock.release()
            raise
        events: queue.Queue = queue.Queue()
        stop = threading.Event()
        threading.Thread(target=self._answer, name="mindwell-reply", daemon=True, args=(
            user, session_id, chat, turn, analysis, asked_at, lock, events, stop)).start()
        return _drain(events, stop)

    def _replayed(self, row: dict, earlier: dict) -> list[dict]:
        risk = (earlier["analysis"] or {}).get("risk") or {}
        crisis_mode = bool(row["state"].get("crisis_mode"))
        return [{"type": "delta", "text": earlier["reply"]},
                {"type": "done", "reply": earlier["reply"],
                 "escalated": bool(risk.get("escalate")) or crisis_mode,
                 "crisis_mode": crisis_mode, "risk": risk,
                 "emotion": (earlier["analysis"] or {}).get("emotion"), "notices": [],
                 "replayed": True}]

    def _answer(self, user: User, session_id: str, chat: ChatSession, turn, analysis: dict,
                asked_at: float, lock: threading.Lock, events: queue.Queue,
                stop: threading.Event) -> None:
        """The reply thread: streams ``turn`` into ``events``, then saves the reply, the
        chat's state and the memory, and frees the chat, in every case."""
        pieces, failure, notices = [], None, list(turn.notices)
        try:
            for notice in turn.notices:
                events.put({"type": "notice", "text": notice})
            try:
                for piece in turn.pieces:
                    if piece:  # byte-level tokens can finish a character later
                        pieces.append(piece)
                        events.put({"type": "delta", "text": piece})
                    if stop.is_set():  # the client went away: stop the model
                        break
            finally:
                turn.pieces.close()  # the chat's history takes the reply as it was shown
        except BaseException as err:  # handed to the request below
            failure = err
        try:
            reply = "".join(pieces).strip()
            # Whether the reply was the fixed crisis reply (or a step of crisis mode): a
            # reloaded page shows it as one, with its helplines to tap.
            self.store.add_turn(user.id, session_id, "assistant", reply,
                                {"escalated": turn.escalated})
            self.store.save_session(user.id, session_id, chat.to_state())
            row = self.store.session(user.id, session_id)
            if row and row["mode"] == "journal" and not turn.escalated:
                # An erased session refuses the memory (MindwellError below); a chat switched
                # to ephemeral keeps none.
                self.memory.remember(user.id, "turn", session_id, turn.user_text,
                                     session_id=session_id, created_at=asked_at)
        except StorageFull as err:
            notice = f"{err.message} {err.hint}"
            notices.append(notice)
            events.put({"type": "notice", "text": notice})
        except MindwellError:
            pass  # the session was erased meanwhile: nothing to keep
        except Exception as err:  # logged without text; the reply was shown
            log.error("saving a reply failed: %s", type(err).__name__)
        finally:
            lock.release()
        if failure is not None:
            events.put(_Failed(failure))
        else:
            events.put({"type": "done", "reply": reply, "escalated": turn.escalated,
                        "crisis_mode": chat.crisis_mode, "risk": turn.risk.as_dict(),
                        "emotion": analysis.get("emotion"), "notices": notices})
        events.put(_END)

    def face(self, user: User, session_id: str, image: bytes) -> dict:
        self._session_row(user, session_id)
        from mindwell.vision.faces import decode_image

        # Checked and decoded before the face models load: a bad or oversized frame is
        # refused from its header alone.
        frame = decode_image(image, "the uploaded frame")
        if self._face_analyzer is None:
            from mindwell.vision.faces import FaceAnalyzer

            self._face_analyzer = FaceAnalyzer()
        faces = self._face_analyzer.analyze(frame)
        if not faces:
            return {"faces": 0, "label": None, "scores": None}
        largest = max(faces, key=lambda f: f.box[2] * f.box[3])
        label, score = largest.top3[0]
        # Only the label is kept: frames are analysed in memory and never stored.
        self.store.add_event(user.id, session_id, "face", {"label": label,
                                                           "score": round(float(score), 4)})
        return {"faces": len(faces), "label": label,
                "scores": {k: round(float(v), 4) for k, v in largest.emotions.items()}}

    def session_detail(self, user: User, session_id: str) -> dict:
        row = self._session_row(user, session_id)
        return {"id": row["id"], "mode": row["mode"], "started_at": row["started_at"],
                "ended_at": row["ended_at"],
                "crisis_mode": bool(row["state"].get("crisis_mode")),
                "turns": [{k: t[k] for k in ("role", "text", "time", "analysis")}
                          for t in self.store.turns(user.id, session_id)],
                "events": self.store.events(user.id, session_id)}

    def session_log(self, user: User, session_id: str, transcript: bool = False) -> dict:
        """The plain data the session log is rendered from (see ``app/sessionlog.py``)."""
        row = self._session_row(user, session_id)
        turns = self.store.turns(user.id, session_id)
        events = self.store.events(user.id, session_id)
        emotions = [{"time": t["time"], "source": "text",
                     "label": t["analysis"]["emotion"]["label"],
                     "score": max(t["analysis"]["emotion"]["scores"].values())}
                    for t in turns if t["role"] == "user" and t["analysis"]
                    and t["analysis"].get("emotion")]
        emotions += [{"time": e["time"], "source": "face", "label": e["label"],
                      "score": e.get("score")} for e in events if e["type"] == "face"]
        return {
            "user": user.name, "session_id": session_id, "started_at": row["started_at"],
            "ended_at": row["ended_at"], "mode": row["mode"],
            "emotions": sorted(emotions, key=lambda e: e["time"]),
            "risk_events": [{"time": e["time"], "type": e["type"], "level": e.get("level"),
                             "reasons": e.get("reasons", [])}
                            for e in events if e["type"] in {"escalation", "crisis_mode_ended"}],
            "transcript": [{"time": t["time"], "role": t["role"], "text": t["text"]}
                           for t in turns] if transcript else None,
            "turns": sum(t["role"] == "user" for t in turns),
            "disclosure": AI_DISCLOSURE,
        }

    def end_session(self, user: User, session_id: str, transcript: bool = False) -> dict:
        """End a chat. ``log_markdown`` is the session log, with the transcript only when
        asked for (as ``/log``). An ephemeral session is erased now and its log cannot be
        fetched later, so it also comes as ``log_markdown_transcript``, the log with the
        transcript: the app offers either copy, as the person chooses."""
        from mindwell.app import sessionlog

        row = self._session_row(user, session_id)
        ended = row["ended_at"] or time.time()
        self.store.save_session(user.id, session_id, row["state"], ended_at=ended)
        full = self.session_log(user, session_id, transcript=True)
        summary = sessionlog.summarize(full)
        erased = row["mode"] == "ephemeral"
        markdown = sessionlog.render_markdown(full if transcript else {**full,
                                                                       "transcript": None})
        result = {"summary": summary, "ended_at": ended, "log_markdown": markdown,
                  "erased": erased}
        if erased:
            result["log_markdown_transcript"] = sessionlog.render_markdown(full)
            self.erase_session(user, session_id)
        self._chats.pop(session_id, None)
        return result

    # -- erasure -------------------------------------------------------------------------
    def erase_session(self, user: User, session_id: str) -> bool:
        self._session_row(user, session_id)
        self._chats.pop(session_id, None)
        return self.store.delete_session(user.id, session_id)

    def update_settings(self, user: User, mode: str | None = None,
                        locale: str | None = None, language: str | None = None) -> dict:
        """Switching to ephemeral applies to the chats open now as well (see the store)."""
        self.store.update_settings(user.id, mode=mode, locale=locale, language=language)
        return self.profile(user)

    def erase_everything(self, user: User, account: bool = False) -> dict:
        for session_id, (owner, _) in list(self._chats.items()):
            if owner == user.id:
                self._chats.pop(session_id, None)
        return self.store.erase_user_data(user.id, account=account)

    # -- stateless chat for the OpenAI- and Ollama-compatible routes -------------------------
    def complete(self, user: User, messages: list[Message], sampling: SamplingParams
                 ) -> tuple[Iterator[str], dict]:
        """Reply to a whole conversation sent by a client. The same safety layer as the
        app: the last user message is assessed with the conversation before generation, a
        conversation in crisis mode (recognised by mindwell's own fixed replies) stays in
        it, and generated text passes the output guardrails. Returns the pieces and a dict:
        ``escalated``, ``risk`` and ``disclosure`` (the AI disclosure on a conversation's
        first reply, None after: the client shows it, the reply does not start with it), then,
        once the pieces are consumed, ``finish_reason`` ("length" when max_tokens cut the
        reply), ``prompt_tokens`` and ``completion_tokens`` of this request's generation."""
        if not messages or messages[-1].get("role") != "user":
            raise MindwellError("The last message must have role 'user'.")
        # The counselor's instructions always apply: a client's system message is ignored,
        # so no client can switch off "never diagnose, never name doses". Empty assistant
        # turns (tool calls) carry nothing to keep.
        dialogue = [m for m in messages if m["role"] == "user" or (
            m["role"] == "assistant" and m.get("content", "").strip())]
        for message in dialogue:
            message["content"] = self.check_text(message.get("content", ""), "content")
        dialogue = _alternating(dialogue)
        recorder = _Recorder(self.backend)  # this request's own generation stats
        chat = ChatSession(recorder, safety=self.safety, sampling=sampling,
                           locale=self.locale(user))
        chat.guardrail = self.guardrail
        history = []
        for index, message in enumerate(dialogue[:-1]):
            content = message["content"]
            if message["role"] == "assistant":
                content = _without_disclosure(content)
            elif is_fixed_reply(dialogue[index + 1]["content"]) and not says_safe(content):
                # What the person said before one of mindwell's crisis replies stays out of
                # the prompt, as in the app.
                content = WITHHELD_CRISIS_MESSAGE
            history.append({"role": message["role"], "content": content})
        chat.history = history
        replies = [m["content"] for m in history if m["role"] == "assistant"]
        if replies and is_fixed_reply(replies[-1]):
            chat.crisis_mode = True
            chat.crisis_step = sum(is_fixed_reply(text) for text in replies[-6:]) - 1
        # Everything a client sends is untrusted: its system, developer and tool turns and
        # any assistant turn mindwell did not write are read by the gate like the person's
        # own words, and one that asks for method information or amounts means nothing is
        # generated ("Sure, here are the amounts:" is not continued).
        injected = [m.get("content") for m in messages[:-1] if isinstance(m.get("content"), str)
                    and m["content"].strip() and (m["role"] in ("system", "developer", "tool") or (
                        m["role"] == "assistant" and not is_fixed_reply(m["content"])))]
        chat.said = [m["content"] if isinstance(m.get("content"), str) else ""
                     for m in messages[:-1] if m["role"] != "assistant" or not
                     is_fixed_reply(m.get("content") or "")][-12:]
        seeks = any(_asks_for_method(self.safety.assess(text)) for text in injected) or any(
            PREFILL.search(m["content"]) for m in messages[:-1] if m["role"] == "assistant"
            and isinstance(m.get("content"), str) and not is_fixed_reply(m["content"]))
        chat.check_in_pending = bool(replies) and _asked_check_in(replies[-1])
        first = sum(m["role"] == "user" for m in dialogue) == 1
        turn = chat.ask(dialogue[-1]["content"], decline=seeks)
        # The disclosure opens every conversation, on every route, once.
        info = {"escalated": turn.escalated, "risk": turn.risk.as_dict(),
                "disclosure": AI_DISCLOSURE if first else None, "finish_reason": "stop",
                "prompt_tokens": 0, "completion_tokens": 0}

        def pieces() -> Iterator[str]:
            yield from turn.pieces
            stats = recorder.last_stats
            info.update(finish_reason="length" if stats.finish_reason == "length" else "stop",
                        prompt_tokens=stats.prompt_tokens,
                        completion_tokens=stats.completion_tokens)

        return pieces(), info

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Sentence vectors of the memory encoder (Ollama's /api/embed); nothing is kept."""
        texts = [self.check_text(text, "input") for text in texts]
        return [[round(float(x), 7) for x in row] for row in self.memory.embed(texts)]


class _Recorder(Backend):
    """The shared queued backend, seen by one request: ``last_stats`` are this request's
    (the queue's own are whichever request finished last)."""

    def __init__(self, queued: QueuedBackend) -> None:
        super().__init__()
        self.inner = queued
        self.name = queued.name
        self.context_length = queued.context_length

    def _stream(self, messages: list[Message], params: SamplingParams) -> Iterator[str]:
        stats = yield from self.inner.stream_with_stats(messages, params)
        self.last_stats = stats or GenerationStats()

    def count_tokens(self, messages: list[Message]) -> int:
        return self.inner.count_tokens(messages)

    def prompt_bytes(self, messages: list[Message]) -> int | None:
        return self.inner.prompt_bytes(messages)


def _asks_for_method(risk) -> bool:
    return risk.decline or bool({"method_lethal", "method_location"} & set(risk.categories))


def _alternating(messages: list[Message]) -> list[Message]:
    """Chat templates such as Gemma's need user and assistant turns to alternate, starting
    with the user: turns in a row from one side are joined, leading assistant turns dropped."""
    merged: list[Message] = []
    for message in messages:
        if not merged and message["role"] != "user":
            continue
        if merged and merged[-1]["role"] == message["role"]:
            merged[-1] = {**merged[-1],
                          "content": merged[-1]["content"] + "\n\n" + message["content"]}
        else:
            merged.append(dict(message))
    return merged


def _without_disclosure(text: str) -> str:
    return text.strip().removeprefix(AI_DISCLOSURE).strip()


def is_fixed_reply(text: str) -> bool:
    """One of mindwell's crisis-mode replies (not the "glad you're safe" one that ends it)."""
    return _without_disclosure(text) in FIXED_REPLIES


def _asked_check_in(text: str) -> bool:
    """The reply ended with mindwell's check-in question (the yes or no comes next)."""
    return any(question.split("{line}")[0][:60] in text for question in CHECK_IN.values())


_END = object()


class _Failed:
    """The reply thread's exception, raised again in the request that reads the events."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _drain(events: queue.Queue, stop: threading.Event) -> Iterator[dict]:
    """The events of a reply thread as they come. Closing this early (the client left)
    tells the thread to stop the model; the thread saves and frees the chat either way."""
    try:
        while True:
            event = events.get()
            if event is _END:
                return
            if isinstance(event, _Failed):
                raise event.error
            yield event
    finally:
        stop.set()


def _model_name(backend: Backend) -> str:
    """The served model's own name: a GGUF's file name, a checkpoint's folder, a remote
    server's model; the backend's kind only when none is known."""
    inner = getattr(backend, "inner", backend)
    path = getattr(inner, "model_path", None)
    if path:
        return Path(path).stem
    model = getattr(inner, "model", None)
    if isinstance(model, str) and model != "default":
        return model
    name_or_path = getattr(getattr(model, "config", None), "name_or_path", None)
    if name_or_path:
        return Path(str(name_or_path)).name
    return inner.name
