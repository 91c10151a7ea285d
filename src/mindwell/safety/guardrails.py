"""Output guardrails: every generated reply is checked before a person sees it.

A reply that gives method, lethality or means information, states a diagnosis, names a
medication with a dose, or promises confidentiality the software cannot keep is replaced by
a safe reply, and the replacement is counted. Small models occasionally produce any of
these, whatever the system prompt says, so the check is not optional.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Amounts need no list of drug names: any quantity (digits or number words, English or
# Korean) with a dose or amount unit is withheld, since mindwell gives no doses at all, and
# a quantity with a height or weight unit is withheld in a reply that touches medication,
# poison, falls, weapons or dying.
_DIGITS = r"\d+([.,]\d+)?"
# "a" counts only as "a whole/full" (a bottle): "a drop", "a shot" are everyday words.
_NUMBER = (rf"({_DIGITS}|\ba\s+(whole|full)|\b(one|two|three|four|five|six|seven|eight|"
           r"nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|"
           r"nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|dozen|half|"
           r"several|few|couple)\b)")
_DOSE_UNIT = (r"(mg|milligrams?|mcg|µg|ug|micrograms?|ml|millilit(er|re)s?|cc|iu|units?|"
              r"g|grams?|tablets?|pills?|capsules?|caps|doses?|drops?|grains?|ounces?|oz|"
              r"bottles?|packs?|shots?)")
_HEIGHT_UNIT = (r"(m|meters?|metres?|feet|foot|ft|stor(e)?ys?|stories|floors?|levels?|yards?|"
                r"kg|kilograms?|lbs?|pounds?)")
# Korean counts: digits or native numbers, a counter, then a particle or the end of the
# word ("스무 알을", "20층"), so "네, 알겠어요" and "이 정도" are not amounts.
_KO_WORD = r"(?<![가-힣])(한|두|세|네|다섯|여섯|일곱|여덟|아홉|열|스무|서른|마흔|쉰|백|천)"
_KO_NUMBER = rf"({_DIGITS}|{_KO_WORD})"
_KO_END = (r"(?=$|[^가-힣]|(을|를|이|씩|은|는|만|정도|까지|이나|쯤|에서|에|이면|면|짜리|로|으로)"
           r"(?![가-힣]))")
# 정 and 팩 also end ordinary words ("한정", "두팩"), so after a number word they need the
# space standard spelling puts there; 통 and 병 count phone calls and bottles of anything
# ("전화 한 통"), so like heights they count only in a reply about medicine or dying
# (they are in _KO_HEIGHT_UNIT).
_KO_DOSE_UNIT = r"(밀리그램|그램|밀리리터|mg|ml|알|캡슐|방울|봉지|단위)"
_KO_SPACED_UNIT = r"(정|팩)"
_KO_HEIGHT_UNIT = r"(층|미터|m|킬로|병|통)"
_TOPIC = re.compile(
    r"\b(medic\w*|meds|drugs?|pills?|tablets?|dos(e|es|age)|overdos\w*|poison\w*|toxic\w*|"
    r"lethal|fatal|deadly|die|dying|death|dead|kill\w*|suicid\w*|jump\w*|fall\w*|drop\w*|"
    r"height|high|tall|bridge|roof\w*|building|cliff|balcony|gun|firearm|bullet|rifle|pistol|"
    r"knife|blade|rope|hang\w*|gas|carbon monoxide|fumes?|weapon\w*)\b"
    r"|약|독|치사|죽|자살|뛰어|추락|높이|다리|옥상|총|칼|밧줄|가스|번개탄|농약", re.I)
_RANGE = r"\s*((-|to|~|or)\s*\d+\s*)?"
# Chinese and Japanese units: jailbreaks in other languages get replies in them.
_CJK_DOSE_UNIT = r"(克|毫克|微克|毫升|片|粒|颗|錠|錠剤|グラム|ミリグラム|ミリリットル|カプセル)"
_DOSE_AMOUNT = re.compile(rf"{_DIGITS}{_RANGE}\s*{_CJK_DOSE_UNIT}"
                          rf"|{_NUMBER}{_RANGE}\s*{_DOSE_UNIT}(?![a-z])"
                          rf"|{_KO_NUMBER}{_RANGE}\s*{_KO_DOSE_UNIT}{_KO_END}"
                          rf"|({_DIGITS}{_RANGE}\s*|{_KO_WORD}\s+){_KO_SPACED_UNIT}{_KO_END}",
                          re.I)
_HEIGHT_AMOUNT = re.compile(rf"{_NUMBER}{_RANGE}\s*{_HEIGHT_UNIT}(?![a-z])"
                            rf"|{_KO_NUMBER}{_RANGE}\s*{_KO_HEIGHT_UNIT}{_KO_END}", re.I)


def _amount(text: str) -> bool:
    return bool(_DOSE_AMOUNT.search(text)) or bool(
        _HEIGHT_AMOUNT.search(text) and _TOPIC.search(text))


_RULES: list[tuple[str, re.Pattern]] = [
    (name, re.compile(pattern, re.I))
    for name, pattern in [
        ("method information",
         r"\b(lethal|fatal|deadly)\s+(dose|amount|quantity|height|combination)"
         r"|\bhow\s+to\s+(kill|hang|overdose|suffocate|poison)\b"
         r"|\b(overdose|od)\s+on\b"
         r"|\b(enough|many)\s+(pills|tablets)\s+to\s+(die|kill|end)"
         r"|\b(jump(ing)?\s+(from|off)|hang(ing)?\s+yourself|slit|noose)\b"
         r"|\b\d+\s*(m|meters|metres|feet|ft|stories|storeys)\s+(high|tall|drop|fall)\b"
         r"|치사량|목을\s*매|뛰어내리"
         # a reply that talks about ways of dying at all, in any language mindwell meets
         r"|\bsuicide\s+methods?\b|\bmethods?\s+of\s+(suicide|killing yourself)\b"
         r"|(자살|죽는|목숨을\s*끊는)\s*방법|致死|致命剂量|自杀方法|自殺の方法|死に方"
         r"|\bways?\s+(of|to)\s+(end(ing)?\s+(one'?s|your|my|a)\s+life|die|dying|kill)"
         # drugs used only to end a life, and where to get them: never a counselor's words
         r"|\b(pentobarbital|nembutal|barbiturates?|sodium\s+nitrite|cyanide)\b"
         r"|펜토바르비탈|바르비투르|아질산나트륨|청산가리|барбитурат|пентобарбитал"),
        # The counselor never gives links; a small model invents them (and worse, shops).
        ("link", r"https?://|\bwww\.\w"),
        ("diagnosis",
         r"\byou\s+(clearly\s+|probably\s+|definitely\s+)?(have|suffer from|are suffering from)"
         r"\s+(clinical\s+|major\s+)?(depression|bipolar|ptsd|ocd|adhd|schizophrenia|"
         r"borderline|an?\s+(anxiety|personality|eating|mood)\s+disorder)"
         r"|\byou\s+are\s+(bipolar|schizophrenic|depressed\s+clinically)"
         r"|\bi\s+diagnose\b|\bmy\s+diagnosis\b|당신은\s*\S*(우울증|조울증|공황장애)입니다"),
        ("confidentiality promise",
         r"\b(i\s+(will|won't|will not)\s+(never\s+)?(tell|share|report)\s+(this\s+)?"
         r"(to\s+)?(anyone|nobody)|this\s+stays\s+between\s+us|(completely|totally|100%)\s+"
         r"(confidential|private|secret)|no\s+one\s+will\s+ever\s+(know|find out))"
         r"|비밀로\s*해\s*줄게|아무한테도\s*말\s*안"),
    ]
]

SAFE_REPLY = (
    "I want to be careful here, so I won't go into that. I'm an AI companion, not a "
    "therapist or doctor, and I can't give medical or safety-critical advice. What's weighing "
    "on you most right now? If you are thinking about harming yourself, please reach out to a "
    "crisis line or someone you trust."
)
SAFE_REPLY_KO = (
    "그 부분은 조심스러워서 자세히 말씀드리기 어려워요. 저는 치료사나 의사가 아닌 AI 동반자라서 "
    "의학적이거나 안전과 관련된 조언은 드릴 수 없어요. 지금 가장 마음을 무겁게 하는 건 무엇인가요? "
    "혹시 스스로를 해치고 싶은 생각이 든다면 109 같은 상담전화나 믿을 수 있는 사람에게 꼭 연락해 주세요."
)


@dataclass
class GuardrailResult:
    reply: str
    replaced: bool
    violations: list[str] = field(default_factory=list)


def violations(text: str) -> list[str]:
    found = [name for name, rule in _RULES if rule.search(text)]
    if _amount(text):
        found.append("amount or dose")
    return found


class OutputGuardrail:
    """Checks replies and counts replacements over its lifetime (one per session/server)."""

    def __init__(self) -> None:
        self.replacements = 0

    def check(self, reply: str, korean: bool = False) -> GuardrailResult:
        found = violations(reply)
        if not found:
            return GuardrailResult(reply, False)
        self.replacements += 1
        return GuardrailResult(SAFE_REPLY_KO if korean else SAFE_REPLY, True, found)


# A sentence ends at a mark followed by a space, or at a line break, and only once more
# text has come after it ("You could take 2." may go on "5 grams").
_SENTENCE_END = re.compile(r"([.!?。…]+[\"')\]]*\s+|\n+)(?=\S)")
# Text ending in a number is never released: its unit may be in the next piece.
_TRAILING_NUMBER = re.compile(
    r"(\d[\d.,]*|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|"
    r"forty|fifty|hundred|thousand|dozen|a few|several)|한|두|세|네|다섯|여섯|일곱|여덟|아홉|열|스무)"
    r"[\s.,:;)\]-]*$", re.I)


# Any number in the unreleased text: from there on the sentence waits for its end, since an
# amount's unit (or the topic that makes a height an amount) may come later in it.
_ANY_NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|"
    r"forty|fifty|hundred|thousand|dozen|few|several|whole|full)\b"
    r"|(?<![가-힣])(한|두|세|네|다섯|여섯|일곱|여덟|아홉|열|스무)(?=\s|$)", re.I)
# Every withheld phrase without a number is at most this many words long ("I will never
# tell this to anyone"): text is shown this many words behind the model, so a phrase is
# always read whole before its first word could be shown.
WORDS_BEHIND = 8


def guarded_stream(pieces, guardrail: OutputGuardrail, korean: bool = False,
                   hold_limit: int = 300, words_behind: int = WORDS_BEHIND):
    """Stream ``pieces`` a few words behind the model, checked: text is shown once
    everything received so far passes the check, except the last ``words_behind`` words
    (a withheld phrase may still be completing) and, from the first number of a sentence
    on, the rest of that sentence (a number and its unit often arrive in different
    pieces). A finished sentence is shown whole. A sentence longer than ``hold_limit``
    characters is checked and shown up to its last space.

    If the reply so far breaks a rule, generation is stopped and the safe reply follows
    what was already shown (which had passed the check). The final text, as shown, is the
    generator's return value (``StopIteration.value``).
    """
    shown, held = "", ""

    def replaced():
        guardrail.replacements += 1
        return ("\n\n" if shown.strip() else "") + (SAFE_REPLY_KO if korean else SAFE_REPLY)

    def behind(text: str) -> int:
        """Where the text that may be shown ends, within an unfinished sentence."""
        number = _ANY_NUMBER.search(text)
        limit = number.start() if number else len(text)
        starts = [m.start() for m in re.finditer(r"\S+", text)]
        window = starts[-words_behind] if len(starts) >= words_behind else 0
        cut = min(limit, window)
        if cut and not text[cut - 1].isspace():  # inside a word: back to its start
            cut = text[:cut].rfind(" ") + 1
        return cut

    try:
        for piece in pieces:
            held += piece
            ends = [m.end() for m in _SENTENCE_END.finditer(held)]
            if ends:
                cut = ends[-1]
            elif len(held) >= hold_limit:  # a very long sentence: up to its last space
                cut = held.rstrip().rfind(" ") + 1
            else:
                cut = behind(held)
            while cut and _TRAILING_NUMBER.search(held[:cut]):
                cut = held[:cut].rstrip().rfind(" ") + 1  # keep the number with what follows
            if not cut:
                continue
            ready, held = held[:cut], held[cut:]
            # Everything received is read, not only what is about to be shown.
            if violations(shown + ready + held):
                tail = replaced()
                yield tail
                return shown + tail
            yield ready
            shown += ready
        if held:
            if violations(shown + held):
                tail = replaced()
                yield tail
                return shown + tail
            yield held
            shown += held
        return shown
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()  # stops generation early when a violation cut the reply
