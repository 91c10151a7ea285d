"""Risk assessment of one message in the context of its conversation.

Three layers, cheapest first:
1. rules (``rules.py``): first-person crisis language in English and Korean, each with a
   level and a reason;
2. the conversation: several medium messages, or method-seeking after distress, raise the
   level (risk accumulates; a single "which bridges are tallest?" does not escalate, the
   same question after "I lost my job and I'm worthless" does);
3. a learned classifier on multilingual sentence embeddings and word n-grams
   (``learned.py``), applied to the message and to the person's last messages together
   (``conversation_text``): it catches phrasings no rule
   lists ("gave my guitar away, wont need it where im going"), conversations that turn
   quietly ("anyway, thanks for everything"), and languages the rules do not cover
   ("quiero morir"). Reports about others, fiction, news and recovery that the rules
   recognise are not escalated by it.
Escalation happens at level high or imminent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mindwell.safety.learned import CrisisHead, shipped_head
from mindwell.safety.rules import (
    KOREAN_REPORTED,
    LEVELS,
    NOT_SAFE,
    RECOVERY,
    RELAPSE,
    REPORTED_SPEECH,
    RULES,
    SAYS_SAFE,
    SELF_REFERENCE,
    THIRD_PARTY,
    TOPIC_EXEMPTIONS,
    without_idioms,
)

HANGUL = re.compile(r"[\uac00-\ud7a3]")
LATIN = re.compile(r"[A-Za-z]")
# How many of the person's earlier messages the learned layer reads with the new one: enough
# for "how high is the garage?" after "my boss let me go, why bother", few enough that an
# old message does not dominate.
CONTEXT_MESSAGES = 2


# Phones type curly apostrophes ("don’t want to live"); the rules are written with straight
# ones.
_CURLY = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


def straight_quotes(text: str) -> str:
    return text.translate(_CURLY)


def conversation_text(history: list[str], text: str) -> str:
    """What the learned layer reads for a message in its conversation (training data of
    conversations is flattened the same way)."""
    return " ".join([*history[-CONTEXT_MESSAGES:], text])


@dataclass
class RiskAssessment:
    level: str = "none"
    escalate: bool = False
    reasons: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"level": self.level, "escalate": self.escalate, "reasons": self.reasons}


def detect_language(text: str) -> str:
    """'ko' for Hangul, 'en' for Latin script, 'other' otherwise (by character counts)."""
    hangul = len(HANGUL.findall(text))
    latin = len(LATIN.findall(text))
    if hangul == 0 and latin == 0:
        return "other"
    if hangul >= latin * 0.3:
        return "ko"
    return "en" if _looks_english(text) else "other"


# English function words that rarely occur in other Latin-script languages ("me", "no" and
# "a" do, so they are left out).
_ENGLISH_WORDS = re.compile(
    r"\b(i|you|the|to|and|is|it|my|of|in|that|this|what|how|do|don't|dont|not|im|i'm|so|"
    r"just|be|have|was|for|with|can|can't|want|feel|like|am|are|been|but|if|myself|"
    r"anymore|everything|nobody|gonna|wanna)\b", re.I)


# Frequent function words of other Latin-script languages (Spanish, French, German,
# Portuguese, Italian, Dutch, Indonesian), and their letters with diacritics.
_OTHER_WORDS = re.compile(
    r"\b(el|la|los|las|que|muy|pero|estoy|tengo|quiero|hoy|le|les|des|est|je|suis|pas|une|"
    r"ich|bin|nicht|und|das|ist|sehr|eu|estou|não|nao|muito|sono|non|molto|het|een|"
    r"niet|saya|tidak|yang|dan|aku)\b", re.I)
_DIACRITICS = re.compile(r"[áéíóúñãõçàèìòùâêîôûäöüßœ¿¡]", re.I)


def _looks_english(text: str) -> bool:
    """English unless other languages' function words or letters outweigh English ones; a
    Latin-script text with no evidence either way ("Went for a walk today.") counts as
    English."""
    english = len(_ENGLISH_WORDS.findall(text))
    other = len(_OTHER_WORDS.findall(text)) + len(_DIACRITICS.findall(text))
    return english >= other


def _max_level(levels: list[str]) -> str:
    return max(levels, key=LEVELS.index, default="none")


class RiskAssessor:
    """Stateless per message; pass the earlier user messages of the conversation."""

    def __init__(self, use_embeddings: bool = True, head: CrisisHead | None = None) -> None:
        self.use_embeddings = use_embeddings
        self._head = head

    def match(self, text: str) -> list:
        """The rules that ``text`` (already through ``straight_quotes``) matches."""
        return [rule for rule in RULES if rule.pattern.search(text)]

    def assess(self, text: str, history: list[str] | None = None,
               vector=None) -> RiskAssessment:
        """``vector``: the sentence embedding of ``text`` when the caller already has it
        (batched analysis), so the learned layer does not embed it again."""
        text = straight_quotes(text)
        history = [straight_quotes(h) for h in (history or []) if h][-6:]
        matched = self.match(text)
        language = detect_language(text)
        categories = sorted({r.category for r in matched})
        reasons = list(dict.fromkeys(r.reason for r in matched))
        level = _max_level([r.level for r in matched])
        if "timing" in categories and not set(categories) - {"timing", "distress"}:
            # A time alone ("tonight is the night") is not a plan, but it counts toward
            # the conversation's accumulated risk.
            level = "medium" if level == "imminent" else level

        about_others = TOPIC_EXEMPTIONS.search(text) or (
            THIRD_PARTY.search(text) and REPORTED_SPEECH.search(text)) or (
            language == "ko" and (KOREAN_REPORTED.search(text) or THIRD_PARTY.search(text)))
        recovered = RECOVERY.search(text) and not RELAPSE.search(text)
        exempt = None
        if recovered:
            exempt = "speaks of a crisis that is over"
        elif about_others and not SELF_REFERENCE.search(text):
            exempt = "about someone else, prevention, fiction or news"
        if exempt and LEVELS.index(level) >= LEVELS.index("medium"):
            reasons.append(exempt)
            level = "low"
        # "I'm safe now" keeps the learned layer quiet but never hides what the rules found:
        # "I'm safe now but I want to kill myself tonight" still escalates.
        says_safe = SAYS_SAFE.search(text) and not NOT_SAFE.search(text)

        if (self.use_embeddings and not exempt and not says_safe
                and LEVELS.index(level) < LEVELS.index("high")):
            head = self.head
            texts = [without_idioms(text)]
            if history:
                texts.append(without_idioms(conversation_text(history, text)))
            if vector is not None and texts == [text]:
                score = float(head.scores(texts, vector[None, :])[0])
            else:
                score = float(head.scores(texts).max())
            if score >= head.threshold:
                level = "high"
                reasons.append(f"close in meaning to crisis messages (score {score:.2f})")
            elif score >= head.medium_threshold and LEVELS.index(level) < LEVELS.index(
                    "medium"):
                level = "medium"
                reasons.append(f"somewhat close to crisis messages (score {score:.2f})")

        # Risk accumulates over the conversation.
        earlier = [self.match(h) for h in history]
        earlier_levels = [_max_level([r.level for r in rules]) for rules in earlier]
        earlier_categories = {r.category for rules in earlier for r in rules}
        if level == "medium" and "method_location" in categories and (
                "distress" in categories or earlier_categories & {
                    "distress", "hopeless", "hopeless_intent", "direct", "self_harm"}):
            level = "high"
            reasons.append("asks about means after describing distress or hopelessness")
        elif level in ("low", "medium") and (
                sum(lv in ("medium", "high", "imminent") for lv in earlier_levels)
                + (level == "medium") >= 2):
            level = "high"
            reasons.append("repeated signs of risk in this conversation")

        escalate = LEVELS.index(level) >= LEVELS.index("high")
        return RiskAssessment(level, escalate, reasons, categories)

    @property
    def head(self) -> CrisisHead:
        if self._head is None:
            self._head = shipped_head()
        return self._head
