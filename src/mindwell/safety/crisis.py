"""The safety gate used before generation, and the deterministic escalation reply."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mindwell.safety.risk import OTHERS_CATEGORIES, RiskAssessment, RiskAssessor
from mindwell.safety.rules import NOT_SAFE, SAYS_SAFE


class SafetyGate:
    """Assesses one message in the context of the conversation so far.

    ``history`` is the conversation's earlier messages (dicts with role and content, or
    plain strings); only the person's own messages are used.
    """

    def __init__(self, assessor: RiskAssessor | None = None) -> None:
        self.assessor = assessor or RiskAssessor()

    def assess(self, text: str, history: list | None = None,
               separate_entries: bool = False) -> RiskAssessment:
        earlier = [
            m if isinstance(m, str) else m["content"]
            for m in history or []
            if isinstance(m, str) or (isinstance(m, dict) and m.get("role") == "user"
                                      and isinstance(m.get("content"), str))
        ]
        return self.assessor.assess(text, earlier, separate_entries=separate_entries)


@dataclass(frozen=True)
class Helpline:
    region: str
    name: str
    contact: str
    # The same line for a reply in Korean (empty: the English words are already Korean).
    # An official name stays beside its Korean one, so the line can still be looked up.
    region_ko: str = ""
    name_ko: str = ""
    contact_ko: str = ""

    def words(self, korean: bool = False) -> tuple[str, str, str]:
        """(region, name, contact) in the reply's language."""
        if not korean:
            return self.region, self.name, self.contact
        return (self.region_ko or self.region, self.name_ko or self.name,
                self.contact_ko or self.contact)

    def line(self, korean: bool = False) -> str:
        """"name: contact", as the safety plan's step names it."""
        _, name, contact = self.words(korean)
        return f"{name}: {contact}"


HELPLINES: dict[str, list[Helpline]] = {
    "US": [Helpline("United States", "988 Suicide & Crisis Lifeline", "call or text 988",
                    "미국", "988 자살·위기 상담전화(988 Suicide & Crisis Lifeline)",
                    "전화 또는 문자 988")],
    "KR": [Helpline("South Korea", "자살예방상담전화", "109", "대한민국")],
    "GB": [Helpline("UK and Ireland", "Samaritans", "116 123", "영국·아일랜드",
                    "사마리탄즈(Samaritans)")],
    "IE": [Helpline("UK and Ireland", "Samaritans", "116 123", "영국·아일랜드",
                    "사마리탄즈(Samaritans)")],
}
INTERNATIONAL = Helpline("Elsewhere", "Find A Helpline directory", "findahelpline.com",
                         "그 밖의 나라", "세계 상담전화 목록(Find A Helpline)")


def helplines_for(locale: str | None) -> list[Helpline]:
    region = _region(locale)
    if region in HELPLINES:
        return [*HELPLINES[region], INTERNATIONAL]
    # Unknown locale: show the main lines and the directory rather than nothing.
    return [*HELPLINES["US"], *HELPLINES["GB"], *HELPLINES["KR"], INTERNATIONAL]


# Danger from another person, or to another person: emergency numbers first, then the
# lines for domestic abuse and for children. Every number is checked against a public
# source cited in docs/safety.md.
ABUSE_HELPLINES: dict[str, list[Helpline]] = {
    "US": [Helpline("United States", "Emergency", "911", "미국", "긴급 신고"),
           Helpline("United States", "National Domestic Violence Hotline",
                    "1-800-799-7233, or text START to 88788", "미국",
                    "전미 가정폭력 상담전화(National Domestic Violence Hotline)",
                    "1-800-799-7233, 또는 88788로 START 문자"),
           Helpline("United States", "Childhelp National Child Abuse Hotline",
                    "1-800-422-4453", "미국",
                    "아동학대 상담전화(Childhelp National Child Abuse Hotline)")],
    "KR": [Helpline("South Korea", "경찰 (긴급)", "112", "대한민국"),
           Helpline("South Korea", "여성긴급전화 (가정폭력·성폭력·스토킹)", "1366", "대한민국"),
           Helpline("South Korea", "자살예방상담전화", "109", "대한민국")],
    "GB": [Helpline("United Kingdom", "Emergency", "999", "영국", "긴급 신고"),
           Helpline("United Kingdom", "National Domestic Abuse Helpline", "0808 2000 247",
                    "영국", "가정폭력 상담전화(National Domestic Abuse Helpline)"),
           Helpline("United Kingdom", "Childline (under 19)", "0800 1111", "영국",
                    "차일드라인(19세 미만, Childline)")],
}


def _region(locale: str | None) -> str:
    return (locale or "").upper().replace("-", "_").split("_")[-1]


def crisis_reply(locale: str | None = None, korean: bool = False,
                 categories: list[str] | tuple = ()) -> str:
    """The fixed reply given instead of generation when a message needs the protocol;
    danger from or to other people gets the abuse lines of the locale."""
    if set(categories) & OTHERS_CATEGORIES:
        return _abuse_reply(locale, korean)
    lines_for = helplines_for(locale)
    if korean and HELPLINES["KR"][0] not in lines_for:
        # Written in Korean under another region's locale: the person may well be in Korea
        # (or the locale is a default nobody set), so Korea's line is given too.
        lines_for = [*HELPLINES["KR"], *lines_for]
    lines = _listed(lines_for, korean)
    if korean:
        return (
            "이야기해 주셔서 고마워요. 지금 많이 힘드신 것 같아요. 혼자 견디지 않으셔도 돼요.\n"
            "지금 바로 이야기할 수 있는 곳이 있어요:\n"
            f"{lines}\n"
            "위험한 상황이라면 112나 119에 연락해 주세요.\n"
            "지금 안전한 곳에 계신가요? 원하시면 함께 안전 계획을 하나씩 세워 볼 수 있어요."
        )
    return (
        "Thank you for telling me. It sounds like you are in a lot of pain right now, and you "
        "don't have to carry this alone.\n"
        "You can talk to someone right now:\n"
        f"{lines}\n"
        "If you are in immediate danger, please call your local emergency number.\n"
        "Are you safe right now? If you like, we can make a safety plan together, one small "
        "step at a time, or try a short grounding exercise."
    )


def _listed(lines_for: list[Helpline], korean: bool = False) -> str:
    return "\n".join("  - {}: {}, {}".format(*h.words(korean)) for h in lines_for)


def _abuse_reply(locale: str | None, korean: bool) -> str:
    region = _region(locale)
    if region == "IE":
        region = "GB"
    lines_for = ABUSE_HELPLINES.get(region)
    if lines_for is None:  # unknown locale: every listed country, and the directory
        lines_for = [*ABUSE_HELPLINES["US"], *ABUSE_HELPLINES["GB"], *ABUSE_HELPLINES["KR"]]
    if korean and ABUSE_HELPLINES["KR"][0] not in lines_for:
        lines_for = [*ABUSE_HELPLINES["KR"], *lines_for]
    lines = _listed([*lines_for, INTERNATIONAL], korean)
    if korean:
        return (
            "말해 주셔서 고마워요. 누군가에게 다치거나 위협받는 건 결코 당신 잘못이 아니에요.\n"
            "지금 위험하다면 바로 112에 전화하거나 문자로 신고해 주세요. 도움받을 수 있는 곳이에요:\n"
            f"{lines}\n"
            "지금 있는 곳은 안전한가요? 안전한 장소나 믿을 수 있는 사람에게 갈 수 있는지 함께 생각해 봐요."
        )
    return (
        "Thank you for telling me. Being hurt or threatened by someone is never your fault, "
        "and you deserve to be safe.\n"
        "If you or anyone with you is in danger right now, call your local emergency number. "
        "These lines help with abuse and violence, day and night:\n"
        f"{lines}\n"
        "Are you safe where you are right now? We can think together about a safe place or a "
        "person you could go to."
    )


# A check-in follows a generated reply to the person's own words: one direct, warm
# question about safety and one line of resources, instead of the whole protocol.
CHECK_IN = {
    "en": "I want to ask you directly, because it matters: are you having thoughts of "
    "ending your life, or of hurting yourself? If you ever are, you can reach {line} any time.",
    "ko": "중요한 거라 직접 여쭤볼게요. 혹시 스스로 목숨을 끊거나 자신을 해치고 싶은 생각이 드시나요? "
    "그런 생각이 들 때는 언제든 {line}에 연락하실 수 있어요.",
}


def check_in_question(locale: str | None, korean: bool) -> str:
    main = HELPLINES["KR"][0] if korean else helplines_for(locale)[0]
    return CHECK_IN["ko" if korean else "en"].format(line=f"{main.name} ({main.contact})")


# The answer to a check-in: a short yes, or an answer that says the thoughts are there,
# leads into the protocol ("I have an exam tomorrow" or "어제 친구랑 놀았어" does not).
ANSWERS_YES = re.compile(
    r"^\W*(yes|yeah|yep|yup|ya|sometimes|kind of|kinda|maybe|i think so|a little)\b"
    r"[\w\s,.'!]{0,20}$"
    r"|\b(i (do|have) (been )?(think|thought|had thoughts) (about|of) (it|that|dying|suicide|"
    r"ending it|killing myself)|thinking about it|yes,? (i am|i do|i have|sometimes))\b"
    r"|^\W*(네|응|어|예|그래|가끔|조금|좀|솔직히|맞아)(요)?(\s*(가끔|조금|좀|요즘|자주|네|그래요)(요)?)*"
    r"\W*$|그런\s*생각(이|을)?\s*(들|해|했|있)", re.I)
ANSWERS_NO = re.compile(
    r"^\W*(no|nope|nah|not really|no no|never)\b|\bnot (suicidal|thinking about "
    r"(that|it|suicide|dying))\b|\bi('m| am) (safe|okay|ok|fine)\b|\bnot like that\b"
    r"|^\W*(아니|아뇨|아니요|아녜요|전혀)|그런\s*(생각|건)\s*(은|는)?\s*(없|아니)|안전해", re.I)

# A request for a medication dose or amount: mindwell gives none (a fixed reply, not
# generated), whatever the reason given.
DECLINE_DOSE = {
    "en": "I can't give medication doses or amounts of any substance, even for a general "
    "question: that has to come from a doctor or pharmacist who knows your situation, or "
    "the leaflet that came with it. If you are worried about what someone has taken, call "
    "your local emergency number or poison control now. How are you doing yourself?",
    "ko": "약의 용량이나 어떤 물질의 양은 일반적인 질문이라도 알려 드릴 수 없어요. 상황을 아는 "
    "의사나 약사, 또는 약 설명서를 통해 확인해 주세요. 누군가 무언가를 먹어서 걱정된다면 지금 "
    "바로 119에 연락해 주세요. 요즘 당신은 어떻게 지내고 계세요?",
}


# -- crisis mode ------------------------------------------------------------------------
# After an escalation the conversation stays here, with fixed replies that walk through a
# safety plan (the steps of the Stanley-Brown safety planning intervention), until the
# person says they are safe. Nothing in this mode is generated by a language model.
SAFETY_PLAN_STEPS = {
    "en": [
        "Let's start a safety plan together, one step at a time. What thoughts, feelings or "
        "situations usually come before things get this hard? Noticing them early helps.",
        "Thank you. What is one thing you can do on your own to get through the next few "
        "minutes: a walk, music, a shower, holding something cold, slow breaths?",
        "Who is someone you could be with or talk to today, or a place where you feel a "
        "little safer?",
        "Is there a counselor, doctor or crisis line you could reach right now? {line}",
        "Can you put some distance between yourself and anything you could use to hurt "
        "yourself: give it to someone, lock it away, or go to another room?",
    ],
    "ko": [
        "지금부터 함께 안전 계획을 하나씩 세워 봐요. 힘들어지기 전에 보통 어떤 생각이나 감정, 상황이 "
        "먼저 오나요? 미리 알아차리면 도움이 돼요.",
        "말해 줘서 고마워요. 앞으로 몇 분을 버티기 위해 혼자 할 수 있는 일이 있을까요? 산책, 음악, "
        "샤워, 차가운 것 쥐기, 천천히 숨쉬기 같은 것들이요.",
        "오늘 함께 있거나 이야기할 수 있는 사람, 또는 조금 더 안전하게 느껴지는 장소가 있나요?",
        "지금 연락할 수 있는 상담사, 의사, 또는 상담전화가 있나요? {line}",
        "스스로를 해칠 수 있는 물건과 거리를 둘 수 있을까요? 다른 사람에게 맡기거나, 잠가 두거나, "
        "다른 방으로 가는 것도 좋아요.",
    ],
}
CRISIS_CHECK_IN = {
    "en": "I'm still here with you. Are you safe right now?",
    "ko": "저는 여기 함께 있어요. 지금 안전하신가요?",
}
GROUNDING = {
    "en": "Let's try a grounding exercise together. Name 5 things you can see, 4 you can "
    "touch, 3 you can hear, 2 you can smell and 1 you can taste. Take your time.",
    "ko": "함께 그라운딩 연습을 해 봐요. 지금 보이는 것 5가지, 만질 수 있는 것 4가지, 들리는 것 "
    "3가지, 냄새 2가지, 맛 1가지를 천천히 말해 보세요.",
}
SAFE_AGAIN = {
    "en": "I'm really glad you're safe. Thank you for staying with me. The helplines are "
    "there any time you need them. What would help you most right now?",
    "ko": "안전하다니 정말 다행이에요. 함께 있어 줘서 고마워요. 필요할 때는 언제든 상담전화가 "
    "있어요. 지금 가장 도움이 될 만한 건 무엇일까요?",
}
_WANTS_GROUNDING = re.compile(r"\b(grounding|exercise|breath\w*|calm down)\b|그라운딩|숨", re.I)


def says_safe(text: str) -> bool:
    return bool(SAYS_SAFE.search(text)) and not NOT_SAFE.search(text)


# A plain "no" to "Are you safe?": every part of the message says the person is safe or will
# not hurt themself ("I'm safe. I won't hurt myself."). The gate reads "hurt myself" in it and
# escalates; as the answer to the safety question it ends the protocol like "Yes, I'm safe."
# Anything more ("...tonight", "I'm safe but", "I think") is not plain, nor is a "yes" or
# "no" (after a check-in, "yes" answers "are you having thoughts of..."): the gate decides.
_SAFE_PART = re.compile(
    r"(?:(?:ok|okay|honestly|really)\W+)?"
    r"(?:(?:i'?m|i am|im)\s+(?:now\s+|really\s+|totally\s+)?(?:safe|ok|okay|fine|alright|all right)"
    r"(?:\s+(?:now|right now))?"
    r"|i\s+(?:won'?t|will not|will never|would never|wouldn'?t|am not going to|'?m not going to|"
    r"am not gonna|'?m not gonna|promise not to|promise i won'?t)\s+(?:hurt|harm|kill)\s+myself"
    r"(?:\s+i\s+promise)?"
    r"|(?:i'?m|i am|im)\s+not\s+suicidal"
    r"|i\s+promise|thank you|thanks|don'?t worry|ok|okay)"
    r"|(?:네|응|예)?\s*(?:저는\s*|난\s*|나\s*)?(?:안전해(?:요)?|괜찮아(?:요)?)"
    r"|(?:저를\s*|나를\s*|스스로를\s*|제\s*자신을\s*)?해치지\s*않을게(?:요)?|안\s*죽을게(?:요)?",
    re.I)
_PART_BREAK = re.compile(r"[.!?,;\n。]+|\s+(?:and|그리고)\s+", re.I)


def answers_safe(text: str) -> bool:
    """Only safety statements, at least one of them about being safe or not hurting
    oneself (see ``_SAFE_PART``)."""
    parts = [p.strip().replace("\u2019", "'") for p in _PART_BREAK.split(text)]
    parts = [p for p in parts if p]
    if not parts or NOT_SAFE.search(text):
        return False
    if not all(_SAFE_PART.fullmatch(p) for p in parts):
        return False
    return not all(_FILLER.fullmatch(p) for p in parts)


_FILLER = re.compile(r"i\s+promise|thank you|thanks|don'?t worry|ok|okay", re.I)


def crisis_mode_reply(text: str, step: int, locale: str | None, korean: bool) -> str:
    """The fixed reply for turn ``step`` (0-based) of crisis mode."""
    lang = "ko" if korean else "en"
    if _WANTS_GROUNDING.search(text):
        return GROUNDING[lang]
    steps = SAFETY_PLAN_STEPS[lang]
    if step < len(steps):
        main = helplines_for(locale)[0]
        return steps[step].format(line=main.line(korean))
    return CRISIS_CHECK_IN[lang]
