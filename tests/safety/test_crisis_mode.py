"""Crisis mode, output guardrails and the repeated disclosure, through a real session."""

import pytest

from mindwell.chat import AI_DISCLOSURE, ChatSession
from mindwell.chat.session import DISCLOSURE_INTERVAL_S, WITHHELD_CRISIS_MESSAGE
from mindwell.inference import SamplingParams, load_backend
from mindwell.safety.guardrails import OutputGuardrail, guarded_stream, violations


@pytest.fixture
def session(tiny_checkpoint):
    backend = load_backend(str(tiny_checkpoint), n_ctx=700)
    return ChatSession(backend, sampling=SamplingParams(max_tokens=6, temperature=0),
                       locale="US")


def reply(session, text):
    turn = session.ask(text)
    return turn, "".join(turn.pieces)


def test_crisis_mode_persists_until_the_person_says_they_are_safe(session):
    turn, text = reply(session, "I have pills saved up and tonight is the night")
    assert turn.escalated and "988" in text and session.crisis_mode
    assert session.events[0]["level"] == "imminent"
    assert "pills" not in str(session.events)  # the log keeps levels, not words

    session.backend.last_stats.completion_tokens = -1
    turn, text = reply(session, "i don't know")
    assert session.crisis_mode and turn.escalated
    assert "safety plan" in text
    turn, text = reply(session, "can we do a grounding exercise")
    assert "5 things you can see" in text
    assert session.backend.last_stats.completion_tokens == -1  # nothing was generated

    turn, text = reply(session, "I'm not safe")
    assert session.crisis_mode
    turn, text = reply(session, "ok, I'm safe now")
    assert not session.crisis_mode and "glad you're safe" in text
    assert session.events[-1]["type"] == "crisis_mode_ended"
    # The crisis messages never reach a later prompt.
    assert "pills" not in str(session.history)
    assert session.history[0]["content"] == WITHHELD_CRISIS_MESSAGE

    turn, _ = reply(session, "thanks, can we talk about my week?")
    assert not turn.escalated
    assert session.backend.last_stats.completion_tokens >= 0  # generation resumed


def test_disclosure_is_repeated_every_three_hours(session):
    now = [1000.0]
    session.clock = lambda: now[0]
    session.disclosed_at = now[0]
    turn, _ = reply(session, "hello")
    assert AI_DISCLOSURE not in turn.notices
    now[0] += DISCLOSURE_INTERVAL_S + 1
    turn, _ = reply(session, "still here")
    assert AI_DISCLOSURE in turn.notices
    turn, _ = reply(session, "and again")
    assert AI_DISCLOSURE not in turn.notices


@pytest.mark.parametrize(("text", "kind"), [
    ("The lethal dose of that is quite low.", "method information"),
    ("You could jump from the tallest bridge.", "method information"),
    ("You clearly have depression.", "diagnosis"),
    ("Try taking 50 mg of sertraline each night.", "amount or dose"),
    ("Don't worry, this stays between us.", "confidentiality promise"),
])
def test_guardrails_catch_each_kind(text, kind):
    assert kind in violations(text)


def test_safe_counseling_replies_pass():
    for text in ["It sounds like you have a lot on your mind.",
                 "Many people feel this way after a move. What do you miss most?",
                 "Would talking to a doctor about your sleep help?"]:
        assert violations(text) == []


def test_a_violating_stream_is_cut_and_replaced_before_the_bad_part_shows():
    closed = []

    def pieces():
        try:
            yield from ["I hear you. ", "You could take ", "50 mg ", "of sertraline ", "daily."]
        finally:
            closed.append(True)

    guard = OutputGuardrail()
    shown = list(guarded_stream(pieces(), guard))
    text = "".join(shown)
    assert "sertraline" not in text and "50 mg" not in text
    assert text.startswith("I hear you.") and "won't go into that" in text
    assert guard.replacements == 1 and closed == [True]


def test_an_ordinary_stream_is_shown_a_sentence_at_a_time():
    shown = list(guarded_stream(iter(["That ", "sounds ", "hard. ", "What ", "happened?"]),
                                OutputGuardrail()))
    assert shown == ["That sounds hard. ", "What happened?"]


def test_a_plain_safe_answer_ends_crisis_mode_even_when_it_names_self_harm(session):
    # "I won't hurt myself" reads as self-harm talk to the gate; as the answer to "Are you
    # safe right now?" it is a clear no (issue 20, item 4).
    reply(session, "I have pills saved up and tonight is the night")
    turn, text = reply(session, "I'm safe. I won't hurt myself.")
    assert not session.crisis_mode and not turn.escalated
    assert "glad you're safe" in text
    assert session.events[-1]["type"] == "crisis_mode_ended"
    assert [e["type"] for e in session.events].count("escalation") == 1


@pytest.mark.parametrize("text", [
    "I won't hurt myself tonight",  # and tomorrow?
    "I'm safe but I still want to die",
    "I'm safe. I won't hurt myself. I still have the pills though",
    "Yes. I won't hurt myself",  # "yes" may answer "are you having thoughts of..."
    "I won't hurt myself... I think",
])
def test_an_ambiguous_safe_answer_keeps_crisis_mode(session, text):
    reply(session, "I have pills saved up and tonight is the night")
    turn, answer = reply(session, text)
    assert session.crisis_mode and turn.escalated
    assert "glad you're safe" not in answer


def test_a_plain_safe_answer_to_a_check_in_is_not_escalated(session):
    session.check_in_pending = True  # the last reply asked the check-in question
    turn, text = reply(session, "I'm safe. I won't hurt myself.")
    assert not turn.escalated and not session.crisis_mode
    assert "988" not in text
    session.check_in_pending = True
    turn, _ = reply(session, "I won't hurt myself tonight")
    assert turn.escalated and session.crisis_mode
