import pytest

from mindwell.safety import SafetyGate, crisis_reply

ESCALATE = [
    "I want to end it all",
    "I want to die",
    "I've been thinking about killing myself",
    "I don't want to live anymore",
    "I keep cutting myself when it gets bad",
    "how many sleeping pills would it take to die",
    "죽고 싶어요",
    "자살하고 싶다는 생각이 들어요",
]
NO_ESCALATION = [
    "this homework is killing me",
    "I'd die for pizza right now",
    "배고파 죽겠다",
    "I am volunteering for a suicide prevention hotline",
    "My friend said she wants to die, how can I help her?",
    "I feel a bit down today but I'm okay",
]


@pytest.mark.parametrize("text", ESCALATE)
def test_direct_statements_escalate(text):
    risk = SafetyGate().assess(text)
    assert risk.escalate and risk.level == "high" and risk.reasons


@pytest.mark.parametrize("text", NO_ESCALATION)
def test_idioms_prevention_and_others_do_not_escalate(text):
    assert not SafetyGate().assess(text).escalate


@pytest.mark.parametrize(
    ("locale", "expected"), [("US", "988"), ("ko_KR", "109"), ("en_GB", "116 123"), (None, "988")]
)
def test_crisis_reply_gives_local_helplines(locale, expected):
    reply = crisis_reply(locale)
    assert expected in reply
    assert "findahelpline.com" in reply
    assert "safe right now" in reply


def test_korean_crisis_reply_is_in_korean():
    assert "안전" in crisis_reply("KR", korean=True)


@pytest.mark.parametrize(("answer", "safe"), [
    ("ok, I'm safe now", True), ("yes, I'm okay", True), ("I'm fine", True),
    ("that's not what I meant, I was talking about my dog", True), ("괜찮아요", True),
    ("그런 뜻은 아니었어", True),
    ("I'm not fine", False), ("I'm not safe", False), ("yes", False), ("no", False),
    ("안 괜찮아", False), ("i'm fine but i still want to die", False),
])
def test_answers_that_end_crisis_mode(answer, safe):
    from mindwell.safety.crisis import says_safe

    assert says_safe(answer) is safe
