import pytest

from mindwell.chat import ChatSession
from mindwell.chat.session import WITHHELD_CRISIS_MESSAGE
from mindwell.errors import MindwellError
from mindwell.inference import SamplingParams, load_backend


@pytest.fixture
def tiny_session(tiny_checkpoint):
    backend = load_backend(str(tiny_checkpoint), n_ctx=700)
    return ChatSession(backend, sampling=SamplingParams(max_tokens=8, temperature=0))


def _pairs(count: int) -> list[dict]:
    history = []
    for i in range(count):
        history += [
            {"role": "user", "content": f"turn {i}: " + "I feel tired and alone. " * 4},
            {"role": "assistant", "content": f"reply {i}: that sounds hard. " * 3},
        ]
    return history


def test_a_reply_is_streamed_and_remembered(tiny_session):
    turn = tiny_session.ask("  I miss my friends.  ")
    reply = "".join(turn.pieces)
    assert tiny_session.history == [
        {"role": "user", "content": "I miss my friends."},
        {"role": "assistant", "content": reply.strip()},
    ]


def test_empty_messages_are_ignored(tiny_session):
    assert tiny_session.ask("   \n ") is None
    assert tiny_session.history == []


def test_long_history_drops_the_oldest_turns_first(tiny_session):
    tiny_session.history = _pairs(20)
    turn = tiny_session.ask("What should I do?")
    "".join(turn.pieces)
    kept = tiny_session.history
    assert any("Dropped" in notice for notice in turn.notices)
    assert kept[-2] == {"role": "user", "content": "What should I do?"}
    kept_turns = [int(m["content"].split(":")[0].split()[1]) for m in kept[:-2:2]]
    assert kept_turns == list(range(20 - len(kept_turns), 20))  # the newest, in order
    assert 0 < len(kept_turns) < 20
    prompt = [tiny_session._system(), *kept[:-1]]
    budget = tiny_session.backend.context_length - tiny_session.sampling.max_tokens
    assert tiny_session.backend.count_tokens(prompt) <= budget


def test_an_over_long_message_is_truncated_with_a_notice(tiny_session):
    tiny_session.max_message_chars = 50
    turn = tiny_session.ask("word " * 100)
    "".join(turn.pieces)
    assert any("only the first 50" in notice for notice in turn.notices)
    assert len(tiny_session.history[0]["content"]) <= 50


def test_a_message_longer_than_the_context_is_shortened_to_fit(tiny_session):
    turn = tiny_session.ask("lonely " * 600)
    "".join(turn.pieces)
    assert any("shortened" in notice for notice in turn.notices)


def test_a_system_prompt_that_fills_the_context_is_a_clear_error(tiny_session):
    tiny_session.system_prompt = "Be kind. " * 400
    with pytest.raises(MindwellError, match="system prompt alone does not fit"):
        tiny_session.ask("hello")


def test_crisis_messages_escalate_without_generation(tiny_session):
    tiny_session.backend.last_stats.completion_tokens = -1  # untouched unless it generates
    turn = tiny_session.ask("I want to end my life tonight")
    reply = "".join(turn.pieces)
    assert turn.escalated and turn.risk.level == "high"
    assert "988" in reply and "safe right now" in reply
    assert tiny_session.backend.last_stats.completion_tokens == -1
    # The raw words are not fed back into later prompts.
    assert tiny_session.history[0]["content"] == WITHHELD_CRISIS_MESSAGE
    assert "end my life" not in str(tiny_session.history)


def test_korean_crisis_messages_get_a_korean_reply_with_the_korean_line(tiny_session):
    tiny_session.locale = "KR"
    reply = "".join(tiny_session.ask("요즘 정말 죽고 싶어요").pieces)
    assert "109" in reply and "안전" in reply


def test_reset_clears_the_conversation(tiny_session):
    "".join(tiny_session.ask("hello").pieces)
    tiny_session.reset()
    assert tiny_session.history == []



def test_per_turn_context_rides_with_the_message_only(tiny_session, monkeypatch):
    prompts = []
    stream = tiny_session.backend._stream

    def recording(messages, params):
        prompts.append(messages)
        return stream(messages, params)

    monkeypatch.setattr(tiny_session.backend, "_stream", recording)
    tiny_session.context = lambda: "their face looked mostly sad in the last minute"
    "".join(tiny_session.ask("I had a long day.").pieces)
    sent = prompts[-1][-1]["content"]
    assert sent.startswith("I had a long day.") and "mostly sad" in sent
    # Kept out of the history: it was for that reply only (a recalled memory the person
    # erases later must not live on in the conversation).
    assert tiny_session.history[-2]["content"] == "I had a long day."
    tiny_session.context = lambda: ""
    "".join(tiny_session.ask("Thanks.").pieces)
    assert tiny_session.history[-2]["content"] == "Thanks."
    assert "mostly sad" not in str(prompts[-1])


def test_a_diary_entry_is_a_framed_single_turn_and_can_go_unanswered(tiny_checkpoint,
                                                                      monkeypatch):
    """The diary's note: the entry framed by the diary prompt, earlier entries read as
    separate occasions; reply=False asks the gate only and generates nothing."""
    backend = load_backend(str(tiny_checkpoint), n_ctx=700)
    prompts, gate_calls = [], []
    stream = backend._stream

    def recording(messages, params):
        prompts.append(messages)
        return stream(messages, params)

    monkeypatch.setattr(backend, "_stream", recording)
    diary = ChatSession(backend, sampling=SamplingParams(max_tokens=8, temperature=0),
                        separate_entries=True, message_frame="My diary today:\n\n{text}")
    real_assess = diary.safety.assess

    def assess(text, history=None, separate_entries=False):
        gate_calls.append((history, separate_entries))
        return real_assess(text, history, separate_entries=separate_entries)

    diary.safety.assess = assess
    diary.said = ["I wrote my goodbye letters."]
    turn = diary.ask("Went to the farmers market with mom.", reply=False)
    assert (turn.generated, list(turn.pieces), prompts) == (False, [], [])
    assert gate_calls == [(["I wrote my goodbye letters."], True)]
    turn = diary.ask("Cleaned my room and called a friend.")
    "".join(turn.pieces)
    assert turn.generated and prompts[-1][-1]["content"] == (
        "My diary today:\n\nCleaned my room and called a friend.")
