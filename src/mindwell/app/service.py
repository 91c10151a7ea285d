"""What the server does, without HTTP: diary entries, chat sessions, session logs, memory and
erasure for one user at a time, wired to the safety gate, the analysis models and one
queued model instance.

Every method takes the ``User`` the request authenticated as, and every store call filters
on that user's id: nothing here can reach another person's data.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mindwell.app.worker import QueuedBackend
from mindwell.chat.prompts import AI_DISCLOSURE, COUNSELOR_SYSTEM_PROMPT
from mindwell.chat.session import WITHHELD_CRISIS_MESSAGE, ChatSession
from mindwell.errors import MindwellError
from mindwell.inference.base import Backend, Message, SamplingParams
from mindwell.memory import Memory, Store, User
from mindwell.safety import SafetyGate, crisis_reply, detect_language
from mindwell.safety.crisis import (
    CHECK_IN,
    CRISIS_CHECK_IN,
    DECLINE_DOSE,
    GROUNDING,
    SAFETY_PLAN_STEPS,
    check_in_question,
    helplines_for,
    says_safe,
)
from mindwell.safety.guardrails import OutputGuardrail, guarded_stream

MAX_CACHED_CHATS = 256  # open chats kept in memory; older ones reload from the store
MAX_TEXT_CHARS = 64 * 1024  # requests with more text than this are refused (413)
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
            texts |= {step.format(line=f"{main.name}: {main.contact}")
                      for step in SAFETY_PLAN_STEPS[lang]}
    return frozenset(text.strip() for text in texts)


FIXED_REPLIES = _fixed_replies()
# A client-supplied assistant turn that starts handing out steps or amounts ("Sure, here are
# the amounts:") is a prefill for the model to continue, not a reply mindwell wrote.
PREFILL = re.compile(
    r"\b(here (are|is) (the|a|some)|step \d|first,? (you|crush|take|mix|tie)|the (amounts?|doses?|"
    r"steps?|method|instructions)|you('ll| will) need|exact (quantit|amount|dose)|"
    r"always (give|answer|provide))\b|:\s*$|알려\s*(드릴게|줄게)|방법은|단계", re.I)


class CompanionService:
    def __init__(self, store: Store, backend: Backend, analyzer=None, memory: Memory | None = None,
                 safety: SafetyGate | None = None, sampling: SamplingParams | None = None,
                 default_locale: str | None = None) -> None:
        self.store = store
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
        return cls(store, backend, sampling=sampling, default_locale=config.locale)

    def close(self) -> None:
        self.backend.close()
        self.store.close()

    # -- helpers -------------------------------------------------------------------------
    def locale(self, user: User) -> str | None:
        return user.locale or self.default_locale

    def profile(self, user: User) -> dict:
        user = self.store.user_by_name(user.name) or user
        return {"user": user.name, "mode": user.mode, "locale": user.locale,
                "disclosure": AI_DISCLOSURE}

    @staticmethod
    def check_text(text, field: str = "text") -> str:
        if not isinstance(text, str):
            raise MindwellError(f"'{field}' must be a string.")
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
        return self.analyzer.analyze([text])[0]

    def _generate_guarded(self, messages: list[Message], korean: bool) -> Iterator[str]:
        pieces = self.backend.generate(messages, stream=True, **vars(self.sampling))
        return guarded_stream(pieces, self.guardrail, korean=korean)

    # -- diary ---------------------------------------------------------------------------
    def diary_entry(self, user: User, text: str, reply: bool = True) -> dict:
        text = self.check_text(text)
        user = self.store.user_by_name(user.name) or user
        stored = user.mode == "journal"
        created = time.time()
        # Committed before analysis and generation: an acknowledged entry is never lost.
        entry_id = self.store.add_diary(user.id, text, created) if stored else None
        analysis = self._analyze(text)
        recent = [e["text"] for e in self.store.diary(user.id, limit=3, since=created - 3 * 86400)
                  if e["id"] != entry_id]
        risk = self.safety.assess(text, list(reversed(recent)), separate_entries=True)
        analysis["risk"] = risk.as_dict()
        korean = detect_language(text) == "ko"
        answer = None
        if risk.escalate:
            answer = crisis_reply(self.locale(user), korean=korean, categories=risk.categories)
        elif risk.decline:
            answer = DECLINE_DOSE["ko" if korean else "en"]
        elif reply:
            context = Memory.as_context(self._recall(user, text, exclude_ref=entry_id))
            prompt = DIARY_PROMPT.format(text=text) + (f"\n\n({context})" if context else "")
            answer = "".join(self._generate_guarded(
                [{"role": "system", "content": COUNSELOR_SYSTEM_PROMPT},
                 {"role": "user", "content": prompt}], korean)).strip()
        if risk.check_in:
            # The person's words get an answer, then a direct question about safety.
            question = check_in_question(self.locale(user), korean)
            answer = f"{answer}\n\n{question}" if answer else question
        if stored:
            # Zero rows: the entry was erased while the reply was written; then nothing of
            # it may come back as a memory.
            still_there = self.store.complete_diary(user.id, entry_id, analysis, answer,
                                                    risk.escalate)
            if still_there and not risk.escalate:  # crisis words are never recalled
                self.memory.remember(user.id, "diary", entry_id, text, created_at=created)
        return {"id": entry_id, "created_at": created, "text": text, "analysis": analysis,
                "reply": answer, "escalated": risk.escalate, "stored": stored}

    def _recall(self, user: User, text: str, exclude_session: str | None = None,
                exclude_ref=None) -> list[dict]:
        found = self.memory.recall(user.id, text, k=3, exclude_session=exclude_session)
        return [m for m in found if not (m["kind"] == "diary" and m["ref_id"] == str(exclude_ref))]

    def mood(self, user: User, days: int = 30) -> list[dict]:
        since = time.time() - days * 86400
        by_day: dict[str, list[dict]] = {}
        for entry in reversed(self.store.diary(user.id, limit=10_000, since=since)):
            day = time.strftime("%Y-%m-%d", time.localtime(entry["created_at"]))
            by_day.setdefault(day, []).append(entry)
        points = []
        for day, entries in by_day.items():
            analysed = [e["analysis"] for e in entries
                        if e["analysis"] and "emotion" in e["analysis"]]
            emotions = [a["emotion"]["label"] for a in analysed]
            points.append({
                "date": day,
                "depression": round(sum(a["depression"]["score"] for a in analysed)
                                    / len(analysed), 4) if analysed else None,
                "emotion": max(set(emotions), key=emotions.count) if emotions else None,
                "entries": len(entries),
                "escalations": sum(e["escalated"] for e in entries),
            })
        return points

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
        state = row["state"]
        chat.history = state.get("history", [])
        chat.said = [t["text"] for t in self.store.turns(user.id, session_id)
                     if t["role"] == "user"][-12:]
        chat.check_in_pending = state.get("check_in_pending", False)
        chat.calm_turns = state.get("calm_turns", 0)
        chat.crisis_mode = state.get("crisis_mode", False)
        chat.crisis_step = state.get("crisis_step", 0)
        chat.disclosed_at = state.get("disclosed_at", row["started_at"])
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

    def chat_turn(self, user: User, session_id: str, text: str) -> Iterator[dict]:
        """Events of one exchange: notices, reply pieces, then ``done``. Checks (session,
        text, a reply already in progress) happen before the first event, so errors become
        a 4xx, not a broken stream."""
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
            chat = self._chat(user, session_id)
            chat.locale = self.locale(user)
            analysis = self._analyze(text)
            events_before = len(chat.events)
            context = ""
            if not chat.crisis_mode:
                context = Memory.as_context(self._recall(user, text, exclude_session=session_id))
            chat.context = (lambda: context) if context else None
            asked_at = time.time()
            turn = chat.ask(text)
            analysis["risk"] = turn.risk.as_dict()
            # Saved before the reply streams: a client that goes away mid-reply must not take
            # the person's message or an escalation event with it.
            self.store.add_turn(user.id, session_id, "user", text, analysis, at=asked_at)
            for event in chat.events[events_before:]:
                self.store.add_event(user.id, session_id, event["type"],
                                     {k: v for k, v in event.items() if k not in {"type", "time"}},
                                     at=event["time"])
        except BaseException:
            lock.release()
            raise
        remember = row["mode"] == "journal" and not turn.escalated
        return self._reply_events(user, session_id, chat, turn, analysis, asked_at, lock,
                                  remember)

    def _reply_events(self, user: User, session_id: str, chat: ChatSession, turn, analysis: dict,
                      asked_at: float, lock: threading.Lock, remember: bool) -> Iterator[dict]:
        pieces = []
        try:
            for notice in turn.notices:
                yield {"type": "notice", "text": notice}
            for piece in turn.pieces:
                if piece:  # byte-level tokens can finish a character later
                    pieces.append(piece)
                    yield {"type": "delta", "text": piece}
        finally:
            # Runs when the reply ends or the client leaves (the generator is closed).
            try:
                reply = "".join(pieces).strip()
                self.store.add_turn(user.id, session_id, "assistant", reply)
                self.store.save_session(user.id, session_id, {
                    "history": chat.history, "crisis_mode": chat.crisis_mode,
                    "crisis_step": chat.crisis_step, "disclosed_at": chat.disclosed_at,
                    "check_in_pending": chat.check_in_pending,
                    "calm_turns": chat.calm_turns})
                if remember:  # an erased session refuses the memory (MindwellError below)
                    self.memory.remember(user.id, "turn", session_id, turn.user_text,
                                         session_id=session_id, created_at=asked_at)
            except MindwellError:
                pass  # the session was erased meanwhile: nothing to keep
            finally:
                lock.release()
        yield {"type": "done", "reply": reply, "escalated": turn.escalated,
               "crisis_mode": chat.crisis_mode, "risk": turn.risk.as_dict(),
               "emotion": analysis.get("emotion"), "notices": turn.notices}

    def face(self, user: User, session_id: str, image: bytes) -> dict:
        self._session_row(user, session_id)
        if self._face_analyzer is None:
            from mindwell.vision.faces import FaceAnalyzer

            self._face_analyzer = FaceAnalyzer()
        from mindwell.vision.faces import decode_image

        faces = self._face_analyzer.analyze(decode_image(image, "the uploaded frame"))
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

    def end_session(self, user: User, session_id: str) -> dict:
        from mindwell.app import sessionlog

        row = self._session_row(user, session_id)
        ended = row["ended_at"] or time.time()
        self.store.save_session(user.id, session_id, row["state"], ended_at=ended)
        log = self.session_log(user, session_id, transcript=True)
        summary = sessionlog.summarize(log)
        erased = row["mode"] == "ephemeral"
        markdown = sessionlog.render_markdown(log)
        if erased:
            self.erase_session(user, session_id)
        self._chats.pop(session_id, None)
        return {"summary": summary, "ended_at": ended, "log_markdown": markdown,
                "erased": erased}

    # -- erasure -------------------------------------------------------------------------
    def erase_session(self, user: User, session_id: str) -> bool:
        self._session_row(user, session_id)
        self._chats.pop(session_id, None)
        return self.store.delete_session(user.id, session_id)

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
        it, and generated text passes the output guardrails. Returns the pieces and a dict
        filled with ``escalated`` and ``risk`` once the pieces are consumed."""
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
        chat = ChatSession(self.backend, safety=self.safety, sampling=sampling,
                           locale=self.locale(user))
        chat.guardrail = self.guardrail
        history = []
        for index, message in enumerate(dialogue[:-1]):
            content = message["content"]
            if message["role"] == "assistant":
                content = _without_disclosure(content)
            elif _is_fixed_reply(dialogue[index + 1]["content"]) and not says_safe(content):
                # What the person said before one of mindwell's crisis replies stays out of
                # the prompt, as in the app.
                content = WITHHELD_CRISIS_MESSAGE
            history.append({"role": message["role"], "content": content})
        chat.history = history
        replies = [m["content"] for m in history if m["role"] == "assistant"]
        if replies and _is_fixed_reply(replies[-1]):
            chat.crisis_mode = True
            chat.crisis_step = sum(_is_fixed_reply(text) for text in replies[-6:]) - 1
        # Everything a client sends is untrusted: its system, developer and tool turns and
        # any assistant turn mindwell did not write are read by the gate like the person's
        # own words, and one that asks for method information or amounts means nothing is
        # generated ("Sure, here are the amounts:" is not continued).
        injected = [m.get("content") for m in messages[:-1] if isinstance(m.get("content"), str)
                    and m["content"].strip() and (m["role"] in ("system", "developer", "tool") or (
                        m["role"] == "assistant" and not _is_fixed_reply(m["content"])))]
        chat.said = [m["content"] if isinstance(m.get("content"), str) else ""
                     for m in messages[:-1] if m["role"] != "assistant" or not
                     _is_fixed_reply(m.get("content") or "")][-12:]
        seeks = any(_asks_for_method(self.safety.assess(text)) for text in injected) or any(
            PREFILL.search(m["content"]) for m in messages[:-1] if m["role"] == "assistant"
            and isinstance(m.get("content"), str) and not _is_fixed_reply(m["content"]))
        chat.check_in_pending = bool(replies) and _asked_check_in(replies[-1])
        first = sum(m["role"] == "user" for m in dialogue) == 1
        turn = chat.ask(dialogue[-1]["content"], decline=seeks)
        info = {"escalated": turn.escalated, "risk": turn.risk.as_dict()}

        def pieces() -> Iterator[str]:
            if first:  # the disclosure opens every conversation, on every route
                yield AI_DISCLOSURE + "\n\n"
            yield from turn.pieces

        return pieces(), info


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


def _is_fixed_reply(text: str) -> bool:
    """One of mindwell's crisis-mode replies (not the "glad you're safe" one that ends it)."""
    return _without_disclosure(text) in FIXED_REPLIES


def _asked_check_in(text: str) -> bool:
    """The reply ended with mindwell's check-in question (the yes or no comes next)."""
    return any(question.split("{line}")[0][:60] in text for question in CHECK_IN.values())
