"""mindwell serve: the three targets of the serve issue, each against its baseline in one run.

Part 1, time to first token (TTFT): the real server (``python -m mindwell serve`` in a
subprocess, default model) vs the raw runtime (the same model loaded with ``load_backend``
in this process), same messages, same system prompt (``COUNSELOR_SYSTEM_PROMPT``, which the
server adds when the client sends none), greedy, same llama.cpp thread counts. Two routes:
``POST /v1/chat/completions`` (stream) with a conversation of user, assistant, user, so the
server prepends no AI disclosure (it opens only a conversation's first user message), and
the app's ``POST /api/v1/sessions/{id}/messages`` (SSE) with one message in a fresh session
(ephemeral mode, so no earlier turn is recalled into the prompt). Raw and server run
alternately, never at the same time. Target: server TTFT within 15 % of raw.

Part 2, diary analysis: ``POST /api/v1/diary`` with ``"reply": false`` (depression,
emotion, risk, storage and memory embedding) from 8 client threads vs
``TextAnalyzer.analyze([text])`` called sequentially in-process. p50/p95 and throughput.

Part 3, memory retrieval at 10,000 stored entries: a fresh SQLite store with 10,000 memories
of one user and 1,000 of another (real sentence embeddings), ``Memory.recall`` (embedding +
search) and ``Store.search_memories`` (search only) vs a brute-force numpy scan over all the
user's rows read from SQLite on every query. Target: p95 <= 20 ms. With
``MINDWELL_BENCH_POSTGRES=1`` the same on PostgreSQL + pgvector (``tests/postgres.py``).

    python benchmarks/serve.py [--threads N] [--reps 10] [--diary-requests 200]
                               [--server-env NAME=VALUE] [--no-write] [--dump FILE]
    MINDWELL_BENCH_POSTGRES=1 python benchmarks/serve.py   # adds PostgreSQL + pgvector
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from _report import table, write_section
from mindwell.chat.prompts import COUNSELOR_SYSTEM_PROMPT
from mindwell.inference.llamacpp import default_batch_threads, default_threads

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

# (user, assistant, user): the compatible route gets all three, the session route the last.
# Everyday messages that the safety gate lets through (checked again at run time): an
# escalated message gets the fixed crisis reply at once, which is no model output to time.
CONVERSATIONS = [
    ("I moved to a new city for work and I don't know anyone here.",
     "That sounds lonely. How have your evenings been since the move?",
     "Mostly I cook dinner and watch shows. I would like to meet some people."),
    ("I have a job interview on Friday.",
     "That's exciting! How are you feeling about it?",
     "A bit nervous. I never know how to answer questions about my weaknesses."),
    ("My sister and I had a fight last weekend.",
     "Fights with family can sit heavily. What happened between you?",
     "She said I never call her, and now I feel guilty and a bit angry at the same time."),
    ("I don't enjoy the things I used to love anymore.",
     "That can feel confusing. When did you first notice it?",
     "A few months ago. I used to paint every weekend and now I can't be bothered."),
    ("요즘 새로운 취미를 찾고 있어요.",
     "좋네요! 어떤 것에 관심이 있으세요?",
     "그림 그리기나 요리를 배워 보고 싶어요."),
    ("My best friend is moving abroad next month.",
     "That's a big change. How do you feel about it?",
     "Happy for her, but I'll miss our weekly coffee. We've done it for years."),
    ("I want to start exercising again.",
     "That's a great goal. What kind of exercise do you enjoy?",
     "I used to swim a lot. Maybe I could go to the pool twice a week."),
    ("My manager gave me feedback on my presentation today.",
     "How did that conversation go?",
     "She said my slides were too crowded. I know she's right but it still stung."),
    ("I've been thinking about changing careers.",
     "That's a big decision. What draws you to a change?",
     "I like my colleagues, but I want work where I can be more creative."),
    ("주말에 친구들이랑 캠핑을 다녀왔어요.",
     "재미있으셨겠어요! 어땠어요?",
     "날씨가 좋아서 별도 많이 보고 오랜만에 푹 쉬었어요."),
    ("My roommate keeps leaving dishes in the sink.",
     "That can be frustrating day after day. Have you talked with them about it?",
     "Not yet. I don't like confrontation and I'm worried it will get awkward."),
    ("I started keeping a gratitude journal.",
     "What a nice habit. How has it been so far?",
     "Some days it's easy, other days I struggle to think of even one thing."),
    ("My dog learned a new trick this week.",
     "That's lovely! What did he learn?",
     "He can shake hands now. My kids were so excited they filmed it."),
    ("I'm hosting my parents for the holidays.",
     "That can be lovely and a lot of work. How are you preparing?",
     "I've planned the meals, but I worry we'll argue about politics again."),
]

DIARY_TEXTS = [
    "Today was long. I argued with my manager about the deadline and came home drained.",
    "Had coffee with Mina this morning and laughed more than I have in weeks. I needed that.",
    "I couldn't fall asleep again last night. My mind kept replaying the meeting.",
    "Went for a run by the river after work. My legs hurt but my head feels clearer.",
    "I feel like nobody at school really notices me. Lunch alone again today.",
    "My mom called and we talked for an hour. She sounded tired and I'm worried about her.",
    "Finished the report two days early. Small win, but I'm proud of myself.",
    "I snapped at my partner over nothing and now I feel guilty about it.",
    "It rained all day and I stayed in bed until noon. I didn't want to see anyone.",
    "The interview went better than I expected. Still nervous about hearing back.",
    "I miss my grandfather. It has been a year today and it still hurts.",
    "Cooked a new recipe for my roommates and they loved it. Nice quiet evening.",
    "Everything feels heavy lately, even getting dressed takes effort.",
    "I finally told my friend how much her comment hurt me, and she apologised.",
    "오늘은 오랜만에 친구를 만나서 맛있는 저녁을 먹었다. 기분이 한결 나아졌다.",
    "회사에서 실수를 해서 하루 종일 마음이 불편했다. 내일은 더 잘하고 싶다.",
    "요즘 잠을 잘 못 자서 그런지 하루 종일 피곤하고 예민하다.",
    "동생이랑 크게 싸웠다. 내가 너무 심하게 말한 것 같아 후회된다.",
    "시험이 끝나서 홀가분하다. 결과는 모르겠지만 최선을 다했다.",
    "혼자 있는 시간이 길어지니 외롭다는 생각이 자주 든다.",
    "산책을 하면서 햇빛을 쬐니 우울한 기분이 조금 풀렸다.",
    "부모님이 내 진로를 반대하셔서 답답하고 속상하다.",
    "I keep comparing myself to everyone online and I always come out worse.",
    "Spent the afternoon gardening. The tomatoes are finally turning red.",
]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def ms(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


# -- the server ---------------------------------------------------------------------------
class Server:
    """``python -m mindwell serve`` in a subprocess; stderr (uvicorn's log) goes to a file."""

    def __init__(self, data_dir: Path, threads: int, max_tokens: int,
                 env: dict[str, str] | None = None) -> None:
        import httpx

        self.log = (data_dir / "serve.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mindwell", "serve", "--data-dir", str(data_dir),
             "--port", "0", "--threads", str(threads), "--max-tokens", str(max_tokens)],
            stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=ROOT,
            env={**os.environ, **(env or {})})
        started = time.perf_counter()
        line = ""
        while not line.startswith("Open http"):
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                raise RuntimeError(f"mindwell serve exited ({self.proc.returncode}); "
                                   f"see {data_dir / 'serve.log'}")
        found = re.match(r"Open (http://[^/]+)/#key=(\S+)", line.strip())
        self.url, self.key = found.group(1), found.group(2)
        self.headers = {"Authorization": f"Bearer {self.key}"}
        while True:  # the link is printed before uvicorn binds the port
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.perf_counter() - started > 120:
                raise RuntimeError(f"mindwell serve did not come up; see {self.log.name}")
            time.sleep(0.1)
        self.startup_s = time.perf_counter() - started

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def sse_events(response):
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line[6:]
            if data == "[DONE]":
                return
            yield json.loads(data)


def time_pieces(pieces) -> tuple[float, float, str]:
    """(ms to the first non-empty piece, ms to the end, the text) of a stream of strings
    started just before this is called (the caller passes a lazily started iterator)."""
    start = time.perf_counter()
    first, text = None, []
    for piece in pieces:
        if piece and first is None:
            first = time.perf_counter()
        text.append(piece)
    end = time.perf_counter()
    if first is None:
        raise RuntimeError("the stream had no text")
    return (first - start) * 1000, (end - start) * 1000, "".join(text)


def openai_pieces(client, server: Server, messages: list[dict], max_tokens: int):
    body = {"model": "mindwell", "messages": messages, "stream": True, "temperature": 0,
            "max_tokens": max_tokens}
    with client.stream("POST", server.url + "/v1/chat/completions", json=body,
                       headers=server.headers) as response:
        response.raise_for_status()
        for event in sse_events(response):
            yield event["choices"][0]["delta"].get("content") or ""


def session_pieces(client, server: Server, session_id: str, text: str):
    with client.stream("POST", f"{server.url}/api/v1/sessions/{session_id}/messages",
                       json={"text": text}, headers=server.headers) as response:
        response.raise_for_status()
        for event in sse_events(response):
            if event["type"] == "delta":
                yield event["text"]
            elif event["type"] == "done" and event["escalated"]:
                raise RuntimeError("the server escalated a benchmark message")
            elif event["type"] == "error":
                raise RuntimeError(f"the session stream failed: {event['message']}")


def ttft(server: Server, threads: int, reps: int, warmup: int, max_tokens: int
         ) -> tuple[str, dict]:
    import httpx

    from mindwell.app.service import is_fixed_reply
    from mindwell.inference import load_backend
    from mindwell.safety import SafetyGate

    gate = SafetyGate()
    for user1, assistant, user2 in CONVERSATIONS:
        history = [{"role": "user", "content": user1},
                   {"role": "assistant", "content": assistant}]
        if gate.assess(user2, history).escalate or gate.assess(user2, []).escalate:
            raise RuntimeError(f"the safety gate escalates {user2!r}: pick another message")

    raw = load_backend(None, threads=threads)
    client = httpx.Client(timeout=120)
    client.put(server.url + "/api/v1/settings", json={"mode": "ephemeral"},
               headers=server.headers).raise_for_status()
    system = {"role": "system", "content": COUNSELOR_SYSTEM_PROMPT}
    routes = ("openai", "session")
    results = {f"{who}:{route}": {"ttft": [], "total": [], "text": []}
               for who in ("raw", "server") for route in routes}

    def raw_run(messages):
        return time_pieces(raw.generate([system, *messages], stream=True, temperature=0.0,
                                        max_tokens=max_tokens))

    # The compatible route reports its prompt's size; the raw runtime must see the same.
    first = [{"role": role, "content": text} for role, text in
             zip(("user", "assistant", "user"), CONVERSATIONS[-1], strict=True)]
    answer = client.post(server.url + "/v1/chat/completions", headers=server.headers,
                         json={"messages": first, "max_tokens": 1, "temperature": 0})
    prompt_tokens = {"server": answer.json()["usage"]["prompt_tokens"],
                     "raw": raw.count_tokens([system, *first])}
    for rep in range(warmup + reps):
        user1, assistant, user2 = CONVERSATIONS[rep % len(CONVERSATIONS)]
        conversation = [{"role": "user", "content": user1},
                        {"role": "assistant", "content": assistant},
                        {"role": "user", "content": user2}]
        session_id = client.post(server.url + "/api/v1/sessions",
                                 headers=server.headers).json()["id"]
        # Each runtime sees the same prompts in the same order (so the same prompt-cache
        # reuse); which of the two goes first alternates.
        for route in routes:
            order = ("raw", "server") if rep % 2 else ("server", "raw")
            for who in order:
                if who == "raw":
                    result = raw_run(conversation if route == "openai" else conversation[-1:])
                elif route == "openai":
                    result = time_pieces(openai_pieces(client, server, conversation, max_tokens))
                else:
                    result = time_pieces(session_pieces(client, server, session_id, user2))
                if is_fixed_reply(result[2]):
                    raise RuntimeError(f"{who} {route}: a fixed crisis reply, not model output")
                if rep >= warmup:
                    for name, value in zip(("ttft", "total", "text"), result, strict=True):
                        results[f"{who}:{route}"][name].append(value)
    client.put(server.url + "/api/v1/settings", json={"mode": "journal"},
               headers=server.headers).raise_for_status()
    client.close()

    # What the server does before generation, timed in-process with the same components.
    from mindwell.analysis.analyzer import default_analyzer
    from mindwell.memory import Memory, Store

    analyzer = default_analyzer()
    gate = SafetyGate(analyzer.risk)
    steps: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as empty:
        store = Store.open(empty)
        user = store.ensure_user("bench")
        memory = Memory(store)
        calls = {
            "analysis": lambda text, history: analyzer.analyze([text]),
            "memory recall": lambda text, history: memory.recall(user.id, text),
            "safety gate (no history)": lambda text, history: gate.assess(text, []),
            "safety gate (with history)": lambda text, history: gate.assess(text, history),
        }
        for rep in range(2 * len(CONVERSATIONS)):
            user1, assistant, user2 = CONVERSATIONS[rep % len(CONVERSATIONS)]
            history = [{"role": "user", "content": user1},
                       {"role": "assistant", "content": assistant}]
            for name, call in calls.items():
                started = time.perf_counter()
                call(user2, history)
                if rep >= len(CONVERSATIONS):
                    steps.setdefault(name, []).append((time.perf_counter() - started) * 1000)
        store.close()
    raw.close()
    step_ms = {name: float(np.median(values)) for name, values in steps.items()}

    rows, summary = [], {}
    labels = {"openai": ("`/v1/chat/completions` (user, assistant, user)", "4 messages"),
              "session": ("`/api/v1/sessions/{id}/messages` (one message)", "2 messages")}
    for route in routes:
        base, served = results[f"raw:{route}"], results[f"server:{route}"]
        raw_median, server_median = np.median(base["ttft"]), np.median(served["ttft"])
        ratio = server_median / raw_median
        paired = float(np.median(np.subtract(served["ttft"], base["ttft"])))
        summary[route] = ratio
        label, prompt = labels[route]
        rows.append([f"raw runtime, {prompt}", ms(raw_median), ms(pct(base["ttft"], 90)),
                     "1.00", "", ms(np.median(base["total"])), "baseline"])
        rows.append([f"server {label}", ms(server_median), ms(pct(served["ttft"], 90)),
                     f"{ratio:.2f}", f"{paired:+.0f}", ms(np.median(served["total"])),
                     "met" if ratio <= 1.15 else "NOT met"])
    text = table(["path", "TTFT median ms", "TTFT p90 ms", "ratio of medians",
                  "median of per-round differences ms", "whole reply median ms",
                  "target (ratio <= 1.15)"], rows)
    text += (
        f"\n\nPrompt check: the compatible route's prompt has {prompt_tokens['server']} "
        f"tokens on the server and {prompt_tokens['raw']} in the raw runtime. Greedy replies "
        "are not compared word for word: llama.cpp's results depend on how much of the "
        "prompt came from its cache, so even the raw runtime alone can answer the same "
        "prompt differently on a later round.\n\n"
        "Work the server does before generation, timed in-process with the same components "
        "(median ms): " + ", ".join(f"{name} {value:.1f}" for name, value in step_ms.items())
        + ". The compatible route runs the safety gate with the conversation's earlier "
        "user message (two texts embedded and scored); the session route runs the analysis "
        "(embedding, heads, and the gate's learned layer on its vector), memory recall "
        "(embedding + search) and the safety gate (embedding and learned layer again)."
    )
    return text, {"ratios": summary, "steps": step_ms, "rounds": {
        name: {"ttft": value["ttft"], "total": value["total"]}
        for name, value in results.items()}}


# -- diary --------------------------------------------------------------------------------
class _NoModel:
    """Stands in for the model in the in-process diary rows (``reply=false`` never
    generates)."""

    name = "none"
    context_length = 4096

    def generate(self, *args, **kwargs):
        raise RuntimeError("the diary benchmark must not generate")

    def close(self) -> None:
        pass


def run_threads(count: int, items: list[str], call, session=contextlib.nullcontext
                ) -> tuple[list[float], float]:
    """(latency ms per item, wall seconds) for ``call(session, item)`` from ``count``
    threads taking items from one queue; each thread opens its own ``session()``."""
    work: queue.Queue = queue.Queue()
    for item in items:
        work.put(item)
    latencies: list[float] = []
    errors: list[BaseException] = []

    def loop():
        with session() as context:
            while True:
                try:
                    item = work.get_nowait()
                except queue.Empty:
                    return
                started = time.perf_counter()
                try:
                    call(context, item)
                except BaseException as err:  # reported after the run
                    errors.append(err)
                latencies.append((time.perf_counter() - started) * 1000)

    threads = [threading.Thread(target=loop) for _ in range(count)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} of {len(items)} calls failed: {errors[0]!r}")
    return latencies, wall


def diary(server: Server, requests: int, clients: int) -> tuple[str, dict]:
    import httpx

    from mindwell.analysis.analyzer import default_analyzer
    from mindwell.app.service import CompanionService
    from mindwell.memory import Store

    texts = [DIARY_TEXTS[i % len(DIARY_TEXTS)] for i in range(requests)]
    escalated: list[bool] = []

    def check(body: dict) -> None:
        if not (body["stored"] and {"depression", "emotion", "risk"} <= set(body["analysis"])):
            raise RuntimeError("the diary route did not store and analyse the entry")
        escalated.append(body["escalated"])

    def post(client, text) -> None:
        response = client.post(server.url + "/api/v1/diary", json={"text": text, "reply": False},
                               headers=server.headers)
        response.raise_for_status()
        check(response.json())

    def http_session():
        return httpx.Client(timeout=120)

    rows = []

    def measure(name: str, count: int, items: list[str], call, session) -> dict:
        escalated.clear()
        latencies, wall = run_threads(count, items, call, session)
        rows.append([name, count, len(latencies), ms(pct(latencies, 50)),
                     ms(pct(latencies, 95)), f"{len(latencies) / wall:.1f}",
                     sum(escalated) if escalated else ""])
        return {"p50": pct(latencies, 50), "p95": pct(latencies, 95),
                "rps": len(latencies) / wall}

    analyzer = default_analyzer()
    for text in DIARY_TEXTS[:4]:
        analyzer.analyze([text])
    baseline = measure("in-process `TextAnalyzer.analyze([text])`, sequential (baseline)", 1,
                       texts, lambda _, text: analyzer.analyze([text]), contextlib.nullcontext)

    run_threads(clients, DIARY_TEXTS[:clients], post, http_session)  # warm-up
    single = measure("server `POST /api/v1/diary` reply=false", 1,
                     texts[: max(20, requests // 4)], post, http_session)
    many = measure("server `POST /api/v1/diary` reply=false", clients, texts, post,
                   http_session)

    # The service alone (no HTTP), for where the time goes.
    with tempfile.TemporaryDirectory() as directory:
        store = Store.open(directory)
        service = CompanionService(store, _NoModel(), analyzer=analyzer)
        user = store.ensure_user("bench")

        def entry(_, text):
            check(service.diary_entry(user, text, reply=False))

        measure("in-process `CompanionService.diary_entry` (no HTTP)", 1,
                texts[: max(20, requests // 4)], entry, contextlib.nullcontext)
        measure("in-process `CompanionService.diary_entry` (no HTTP)", clients, texts, entry,
                contextlib.nullcontext)
        service.close()

    text = table(["path", "clients or threads", "requests", "p50 ms", "p95 ms",
                  "throughput req/s", "escalated by the safety gate"], rows)
    text += (
        "\n\nAn escalated entry gets the fixed crisis reply and is not embedded as a memory "
        "(one embedding less). These texts are everyday entries; the escalations are the "
        "safety gate's false alarms (see the safety gate section).")
    return text, {"many": many, "single": single, "baseline": baseline}


# -- memory -------------------------------------------------------------------------------
def memory_texts(count: int, queries: int) -> tuple[list[str], list[str], str]:
    """Real sentences (dair-ai/emotion English, GoEmotions-Korean) where ../shared/data has
    them, else generated ones; 70 % English and 30 % Korean either way."""
    english_path = SHARED / "dair_emotion" / "train.txt"
    korean_path = SHARED / "goemotions_ko" / "train.tsv"
    english_test = SHARED / "dair_emotion" / "test.txt"
    korean_test = SHARED / "goemotions_ko" / "test.tsv"
    n_en, q_en = count * 7 // 10, queries * 3 // 4
    if all(p.exists() for p in (english_path, korean_path, english_test, korean_test)):
        def lines(path, column):
            for line in path.read_text(encoding="utf-8").splitlines():
                cells = line.split(";" if column == "dair" else "\t")
                if cells and cells[0].strip():
                    yield cells[0].strip()

        english = list(dict.fromkeys(lines(english_path, "dair")))
        korean = list(dict.fromkeys(lines(korean_path, "ko")))
        random.Random(0).shuffle(english)
        random.Random(0).shuffle(korean)
        stored = english[:n_en] + korean[:count - n_en]
        asked = (list(lines(english_test, "dair"))[:q_en]
                 + list(lines(korean_test, "ko"))[:queries - q_en])
        return stored, asked, ("sentences of dair-ai/emotion (English) and GoEmotions-Korean "
                               "from ../shared/data; queries from their test splits")
    rng = random.Random(0)
    who = ["my sister", "my boss", "a friend", "my mom", "my roommate", "my teacher",
           "my partner", "a coworker", "my dad", "my neighbour"]
    what = ["we talked about work", "we argued about money", "we went for a walk",
            "I cooked dinner", "I stayed in all day", "I studied for the exam",
            "I missed the bus", "we watched a film", "I went to the gym", "I cleaned my room"]
    feel = ["and I felt calm", "and I felt lonely", "and it made me anxious", "and I was happy",
            "and I felt tired", "and I got angry", "and I felt hopeful", "and I felt ashamed"]
    when = ["this morning", "last night", "on Sunday", "after work", "at lunch", "yesterday"]
    ko_who = ["언니", "팀장님", "친구", "엄마", "룸메이트", "선생님", "남자친구", "동료"]
    ko_what = ["일 얘기를 했다", "돈 문제로 다퉜다", "산책을 했다", "저녁을 만들었다",
               "하루 종일 집에 있었다", "시험 공부를 했다", "영화를 봤다"]
    ko_feel = ["마음이 편했다", "외로웠다", "불안했다", "행복했다", "피곤했다", "화가 났다"]

    def english_sentence():
        return (f"{rng.choice(when).capitalize()} {rng.choice(who)} called, "
                f"{rng.choice(what)} {rng.choice(feel)}.")

    def korean_sentence():
        return f"오늘 {rng.choice(ko_who)}와 {rng.choice(ko_what)}. {rng.choice(ko_feel)}."

    stored = [english_sentence() for _ in range(n_en)] + \
        [korean_sentence() for _ in range(count - n_en)]
    asked = [english_sentence() for _ in range(q_en)] + \
        [korean_sentence() for _ in range(queries - q_en)]
    return stored, asked, "generated template sentences (../shared/data not found)"


def bulk_insert(store, user_id: int, texts: list[str], vectors: np.ndarray) -> None:
    """One transaction for thousands of rows (``add_memory`` commits each one)."""
    sql = store._sql("INSERT INTO memories (user_id, kind, ref_id, session_id, created_at, "
                     f"text, embedding) VALUES (?, ?, ?, ?, ?, ?, {store._vector_param})")
    now = time.time()
    rows = [(user_id, "diary", str(i), None, now - i * 60, text, store._encode_vector(vector))
            for i, (text, vector) in enumerate(zip(texts, vectors, strict=True))]
    with store._tx() as cursor:
        cursor.executemany(sql, rows)


def naive_search(store, user_id: int, vector: np.ndarray, k: int) -> list[int]:
    """What a naive implementation does: read every vector of the user, scan, rank."""
    rows = store._execute("SELECT id, embedding FROM memories WHERE user_id = ?", (user_id,))
    ids = np.array([r[0] for r in rows])
    matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
    matrix = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    query = vector / np.linalg.norm(vector)
    scores = matrix @ query
    top = ids[np.argsort(-scores, kind="stable")[:k]]
    marks = ",".join("?" * len(top))
    store._execute(f"SELECT id, text FROM memories WHERE user_id = ? AND id IN ({marks})",
                   (user_id, *[int(i) for i in top]))
    return [int(i) for i in top]


def timed(function, items) -> tuple[list[float], list]:
    latencies, results = [], []
    for item in items:
        started = time.perf_counter()
        results.append(function(item))
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies, results


def fill_store(store, stored: list[str], vectors: np.ndarray, main: int, other_count: int
               ) -> tuple[object, object, list[float]]:
    """User 'main' gets len(stored) - other_count memories (the last 100 through
    ``add_memory``, timed), user 'other' the rest."""
    main_user, other_user = store.ensure_user("main"), store.ensure_user("other")
    bulk_insert(store, main_user.id, stored[:main - 100], vectors[:main - 100])
    add_ms = []
    for i in range(main - 100, main):
        started = time.perf_counter()
        store.add_memory(main_user.id, "turn", str(i), stored[i], vectors[i])
        add_ms.append((time.perf_counter() - started) * 1000)
    bulk_insert(store, other_user.id, stored[main:], vectors[main:])
    return main_user, other_user, add_ms


def memory_bench(entries: int, other: int, queries: int, k: int = 3) -> tuple[str, dict]:
    from mindwell.memory import Memory, Store
    from mindwell.models.embedder import embed_texts

    stored, asked, source = memory_texts(entries + other, queries)
    started = time.perf_counter()
    vectors = embed_texts(stored)
    query_vectors = embed_texts(asked)
    embed_s = time.perf_counter() - started

    rows, notes, result = [], [], {}
    with tempfile.TemporaryDirectory() as directory:
        store = Store.open(directory)
        main, other_user, add_ms = fill_store(store, stored, vectors, entries, other)
        assert store.memory_count(main.id) == entries and \
            store.memory_count(other_user.id) == other
        memory = Memory(store)
        started = time.perf_counter()
        store.search_memories(main.id, query_vectors[0], k=k)
        cold_ms = (time.perf_counter() - started) * 1000

        naive_ms, naive_ids = timed(lambda v: naive_search(store, main.id, v, k), query_vectors)
        search_ms, found = timed(lambda v: store.search_memories(main.id, v, k=k), query_vectors)
        recall_ms, _ = timed(lambda q: memory.recall(main.id, q, k=k, min_score=-1.0), asked)
        other_ms, other_found = timed(lambda v: store.search_memories(other_user.id, v, k=k),
                                      query_vectors)
        same_top = sum([m["id"] for m in f] == n for f, n in zip(found, naive_ids, strict=True))
        main_ids = {int(r[0]) for r in store._execute(
            "SELECT id FROM memories WHERE user_id = ?", (main.id,))}
        leaked = sum(m["id"] not in main_ids for f in found for m in f) + \
            sum(m["id"] in main_ids for f in other_found for m in f)
        store.close()

    def row(name, rows_, values, target=True):
        verdict = ("met" if pct(values, 95) <= 20 else "NOT met") if target else ""
        return [name, rows_, ms(pct(values, 50)), ms(pct(values, 95)), verdict]

    rows = [
        row("naive: read all rows from SQLite + numpy scan, every query (baseline)",
            entries, naive_ms, target=False),
        row("SQLite `Store.search_memories` (search only)", entries, search_ms),
        row("SQLite `Memory.recall` (embed query + search)", entries, recall_ms),
        row("SQLite `Store.search_memories`, the other user", other, other_ms),
    ]
    result.update(search_p95=pct(search_ms, 95), recall_p95=pct(recall_ms, 95),
                  naive_p95=pct(naive_ms, 95))
    notes.append(
        f"{entries:,} memories of one user and {other:,} of another, {source}; embedded with "
        f"the shipped encoder ({len(stored) + len(asked):,} texts in {embed_s:.0f} s). "
        f"{queries} queries, k={k}. Rows were inserted in one transaction, except the last "
        f"100 of the first user through `Store.add_memory` (one committed write each: "
        f"p50 {pct(add_ms, 50):.1f} ms, p95 {pct(add_ms, 95):.1f} ms). The first search after "
        f"opening loads the user's vectors from SQLite into memory: {cold_ms:.0f} ms once "
        f"(not counted above). Same top-{k} as the naive scan: {same_top}/{queries}; results "
        f"from the other user's rows: {leaked}.")

    if os.environ.get("MINDWELL_BENCH_POSTGRES") == "1":
        rows_pg, note = postgres_rows(stored, vectors, asked, query_vectors, entries, k, row)
        rows += rows_pg
        notes.append(note)
    else:
        notes.append("PostgreSQL not measured (set `MINDWELL_BENCH_POSTGRES=1`).")
    text = table(["method", "user's rows", "p50 ms", "p95 ms", "target (p95 <= 20 ms)"], rows)
    return text + "\n\n" + " ".join(notes), result


def postgres_rows(stored, vectors, asked, query_vectors, entries, k, row):
    sys.path.insert(0, str(ROOT))
    try:
        from tests.postgres import fresh_database, postgres_server

        from mindwell.memory import Memory, Store

        with postgres_server() as url, fresh_database(url) as db_url:
            store = Store.open(db_url)
            main, _, add_ms = fill_store(store, stored, vectors, entries,
                                         len(stored) - entries)
            store._execute("ANALYZE memories")
            memory = Memory(store)
            store.search_memories(main.id, query_vectors[0], k=k)
            search_ms, _ = timed(lambda v: store.search_memories(main.id, v, k=k),
                                 query_vectors)
            recall_ms, _ = timed(lambda q: memory.recall(main.id, q, k=k, min_score=-1.0),
                                 asked)
            store.close()
    except Exception as err:  # any failure becomes a note, not a crash
        return [], f"PostgreSQL not measured: {type(err).__name__}: {err}".strip()
    return ([row("PostgreSQL + pgvector `Store.search_memories` (exact scan, no ANN index)",
                 entries, search_ms),
             row("PostgreSQL + pgvector `Memory.recall`", entries, recall_ms)],
            f"PostgreSQL from `tests/postgres.py` (a throwaway local cluster with fsync off); "
            f"`add_memory` there: p50 {pct(add_ms, 50):.1f} ms.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--diary-requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                        help="First wait up to this long for the 1-minute load average to "
                             "drop below 0.5 (other work on the machine skews timings).")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="An environment variable for the server process only (to try "
                             "a setting, e.g. OPENBLAS_NUM_THREADS=1); repeatable.")
    parser.add_argument("--no-write", action="store_true", help="Print only.")
    parser.add_argument("--dump", type=Path, help="Also write every round's timings here "
                                                   "(JSON).")
    args = parser.parse_args()

    deadline = time.monotonic() + args.wait_quiet
    while os.getloadavg()[0] >= 0.5 and time.monotonic() < deadline:
        time.sleep(5)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as data_dir:
        server_env = dict(item.split("=", 1) for item in args.server_env)
        server = Server(Path(data_dir), args.threads, args.max_tokens, server_env)
        try:
            ttft_table, ttft_result = ttft(server, args.threads, args.reps, args.warmup,
                                           args.max_tokens)
            print(ttft_table, flush=True)
            diary_table, diary_result = diary(server, args.diary_requests, args.clients)
            print(diary_table, flush=True)
        finally:
            server.stop()
    diagnosis = ""
    if max(ttft_result["ratios"].values()) > 1.15 and \
            "OPENBLAS_NUM_THREADS" not in dict(item.split("=", 1) for item in args.server_env):
        # Missed: try the server again with numpy's BLAS on one thread (see the note).
        with tempfile.TemporaryDirectory() as data_dir:
            retry = Server(Path(data_dir), args.threads, args.max_tokens,
                           {**server_env, "OPENBLAS_NUM_THREADS": "1"})
            try:
                _, retry_result = ttft(retry, args.threads, args.reps, args.warmup,
                                       args.max_tokens)
            finally:
                retry.stop()
        parts = []
        for route, label in (("openai", "compatible route"), ("session", "session route")):
            rounds = retry_result["rounds"]
            base, served = rounds[f"raw:{route}"]["ttft"], rounds[f"server:{route}"]["ttft"]
            parts.append(f"{label} {np.median(served):.0f} ms vs raw {np.median(base):.0f} ms "
                         f"(ratio {retry_result['ratios'][route]:.2f}, per-round difference "
                         f"{np.median(np.subtract(served, base)):+.0f} ms)")
        diagnosis = (
            "\n\nDiagnosis, measured in this run: a second server started with "
            "`OPENBLAS_NUM_THREADS=1` in its environment, same rounds: " + "; ".join(parts)
            + ". Numpy's BLAS (OpenBLAS) uses 2 threads by default here; after a "
            "multithreaded call (the safety gate's learned layer, the memory search; the "
            "sentence encoder limits itself to one thread only inside its own calls) its "
            "worker thread keeps spinning for a while, taking one of the 2 cores from "
            "llama.cpp's 2 prompt threads, so the server's prompt processing is slower than "
            "the raw runtime's on the very same prompt.")
    memory_table, memory_result = memory_bench(args.entries, args.entries // 10, args.queries)
    print(memory_table, flush=True)

    ratios = ttft_result["ratios"]
    body = (
        f"Default model (SmolLM2-135M-Instruct, llama.cpp), {args.threads} decode thread(s) "
        f"and {default_batch_threads()} prompt thread(s) in both the server and the raw "
        f"runtime, greedy, replies up to {args.max_tokens} tokens. Server: `python -m mindwell "
        f"serve` in a subprocess on 127.0.0.1 (up in {server.startup_s:.1f} s"
        + (f", environment {' '.join(args.server_env)}" if args.server_env else "")
        + "), SQLite in a temporary directory. "
        f"Whole run: {time.perf_counter() - started:.0f} s; 1-minute "
        f"load average {load_before:.2f} before it and {os.getloadavg()[0]:.2f} after (the "
        "benchmark itself keeps about one core busy; more means other work shared the CPU)."
        "\n\n"
        "### 1. Time to first token: server vs raw runtime\n\n"
        f"{args.reps} rounds after {args.warmup} warm-ups, a different everyday conversation "
        f"each round ({len(CONVERSATIONS)} written for this, 2 of them Korean; so only the "
        "system prompt comes from llama.cpp's prompt cache, never a whole repeated prompt); "
        "raw and server alternate (never concurrent, which goes first alternates) and see "
        "the same prompts in the same order, so both reuse their cache alike. Raw: "
        "`backend.generate(messages, stream=True, temperature=0)` on a second copy of the "
        "model in the benchmark process, time to the first non-empty piece. Server: from "
        "sending the request (persistent HTTP connection) to the first non-empty model text "
        "(the OpenAI route's empty role chunk is skipped; with two user messages the server "
        "prepends no AI disclosure, so the first content is model output). Raw gets the same "
        "system prompt the server adds (`COUNSELOR_SYSTEM_PROMPT`). The messages are ones "
        "the safety gate lets through (checked before the run, and a fixed crisis reply "
        "stops it), so every reply timed is generated.\n\n"
        f"{ttft_table}\n\n"
        f"Target (server TTFT within 15 % of raw): compatible route "
        f"{'met' if ratios['openai'] <= 1.15 else 'NOT met'} ({ratios['openai']:.2f}x), "
        f"app session route {'met' if ratios['session'] <= 1.15 else 'NOT met'} "
        f"({ratios['session']:.2f}x).{diagnosis}\n\n"
        "### 2. Diary analysis latency, 8 concurrent clients\n\n"
        f"`POST /api/v1/diary` with `\"reply\": false` ({len(DIARY_TEXTS)} diary texts, "
        "English and Korean, in turn; each request stores the entry (committed), analyses "
        "it (depression, emotion, risk), runs the safety gate with the last 3 days' entries "
        "and embeds it as a memory) from client threads each with its own keep-alive "
        "connection, after one warm-up request per client. Baseline: the analysis alone, "
        "in-process, one text at a time. Latency is per request as the client sees it.\n\n"
        f"{diary_table}\n\n"
        "### 3. Memory retrieval at 10,000 entries\n\n"
        f"{memory_table}\n\n"
        f"Target (p95 <= 20 ms): `Memory.recall` "
        f"{'met' if memory_result['recall_p95'] <= 20 else 'NOT met'} "
        f"(p95 {memory_result['recall_p95']:.1f} ms), search alone "
        f"{'met' if memory_result['search_p95'] <= 20 else 'NOT met'} "
        f"(p95 {memory_result['search_p95']:.1f} ms)."
    )
    if args.dump:
        args.dump.write_text(json.dumps({"ttft": ttft_result, "diary": diary_result,
                                         "memory": memory_result}, indent=1))
    if args.no_write:
        print(body)
    else:
        print(write_section("serve", "mindwell serve", body, "python benchmarks/serve.py"))


if __name__ == "__main__":
    main()
