"""benchmarks/chat_latency.py times only replies the model generated: its conversation goes
through the safety gate as a person's does and reads as everyday, and a turn answered by a
fixed reply or with no tokens stops it with an error instead of a "pass"."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from mindwell.chat import ChatSession
from mindwell.inference.base import Backend

ROOT = Path(__file__).resolve().parents[2]
CRISIS = "I have pills saved up and tonight is the night"
# The conversation the prompt-cache table used before: from its second message the gate
# reads risk (a check-in, then crisis mode in some runs), so turns 2-5 timed fixed replies.
OLD_CONVERSATION = [
    "I moved to a new city for work three months ago and I still don't know anyone here.",
    "Mostly I go to work, come home and scroll on my phone until late at night.",
    "I used to play football with friends every weekend back home, and I miss that a lot.",
    "Maybe, but I get nervous meeting new people. I never know what to say to them.",
    "That makes sense. What is one small step I could try this week?",
]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "chat_latency", ROOT / "benchmarks" / "chat_latency.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Fixed(Backend):
    """A model that writes one sentence and reports how many tokens it generated."""

    context_length = 4096

    def __init__(self, tokens: int = 7) -> None:
        super().__init__()
        self.tokens = tokens

    def _stream(self, messages, params):
        yield "That sounds like a lot to carry. "
        yield "What has helped a little so far?"
        self.last_stats.completion_tokens = self.tokens

    def count_tokens(self, messages) -> int:
        return 10


def test_the_conversation_reads_as_everyday_through_the_gate(bench):
    gate = bench.TimedGate()
    bench.check_conversation(gate, bench.CONVERSATION, "the five-turn conversation")
    for message in bench.MESSAGES:
        bench.check_conversation(gate, [message], "the overhead messages")
    # Through a whole session as in the benchmark: every turn generated, no crisis mode.
    session = ChatSession(Fixed(), safety=gate)
    for number, message in enumerate(bench.CONVERSATION, start=1):
        turn = session.ask(message)
        "".join(turn.pieces)
        bench.require_generated(turn, session.backend, f"turn {number}")
        assert turn.risk.action == "normal" and not session.crisis_mode
    assert gate.last_ms > 0


def test_a_conversation_the_gate_does_not_read_as_everyday_is_refused(bench):
    with pytest.raises(SystemExit) as stop:
        bench.check_conversation(bench.TimedGate(), OLD_CONVERSATION, "the conversation")
    message = str(stop.value.code)
    assert "message 2" in message and "safety gate" in message
    assert "Nothing was written" in message


def test_a_turn_with_no_generation_fails_the_benchmark(bench):
    session = ChatSession(Fixed(), safety=bench.TimedGate())
    crisis = session.ask(CRISIS)
    "".join(crisis.pieces)
    with pytest.raises(SystemExit, match="fixed one"):
        bench.require_generated(crisis, session.backend, "turn 1")
    later = session.ask("I moved to a new city last month.")  # crisis mode: fixed again
    "".join(later.pieces)
    with pytest.raises(SystemExit, match="escalated"):
        bench.require_generated(later, session.backend, "turn 2")

    quiet = ChatSession(Fixed(tokens=0), safety=bench.TimedGate())
    turn = quiet.ask("I moved to a new city last month.")
    "".join(turn.pieces)
    with pytest.raises(SystemExit, match="generated no tokens"):
        bench.require_generated(turn, quiet.backend, "turn 1")


def test_the_benchmark_exits_with_an_error_not_a_traceback(tmp_path):
    """Run as a script with a conversation the gate escalates: status 1, one clear line."""
    script = tmp_path / "run.py"
    script.write_text(
        "import runpy, sys\n"
        f"sys.path.insert(0, {str(ROOT / 'benchmarks')!r})\n"
        "import chat_latency\n"
        f"chat_latency.CONVERSATION[1] = {CRISIS!r}\n"
        "sys.argv = ['chat_latency.py']\n"
        "chat_latency.main()\n")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=300, cwd=ROOT)
    assert result.returncode == 1
    assert "chat_latency: the five-turn conversation, message 2" in result.stderr
    assert "Traceback" not in result.stderr
