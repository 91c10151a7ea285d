"""Risk assessment of one message in the context of its conversation.

Three layers, cheapest first:
1. rules (``rules.py``): first-person crisis language in English and Korean, each with a
   level and a reason;
2. the conversation: several medium messages, or method-seeking after distress, raise the
   level (risk accumulates; a single "which bridges are tallest?" does not escalate, the
   same question after "I lost my job and I'm worthless" does);
3. a multilingual sentence-embedding model for languages the rules do not cover, so that
   "quiero morir" is not missed: nearest crisis prototypes across languages.
Escalation happens at level high or imminent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

from mindwell.safety.rules import (
    CONTEXT_EXEMPTIONS,
    KOREAN_REPORTED,
    LEVELS,
    RULES,
    SELF_REFERENCE,
)

HANGUL = re.compile(r"[\uac00-\ud7a3]")
LATIN = re.compile(r"[A-Za-z]")
# Written by the project; English only, matched across languages by the embedder.
CRISIS_PROTOTYPES = [
    "I want to die", "I want to kill myself", "I am going to end my life",
    "I don't want to live anymore", "I am thinking about suicide", "I want to hurt myself",
    "I have been cutting myself", "Everyone would be better off without me",
    "This is my goodbye", "How many pills does it take to die",
    "I have a plan to end my life tonight", "I can't go on living",
]
PROTOTYPE_THRESHOLD = 0.62  # cosine; see docs/safety.md for how it was chosen


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


def _looks_english(text: str) -> bool:
    words = re.findall(r"[A-Za-z']+", text)
    return bool(words) and len(_ENGLISH_WORDS.findall(text)) / len(words) >= 0.2


def _max_level(levels: list[str]) -> str:
    return max(levels, key=LEVELS.index, default="none")


class RiskAssessor:
    """Stateless per message; pass the earlier user messages of the conversation."""

    def __init__(self, use_embeddings: bool = True) -> None:
        self.use_embeddings = use_embeddings

    def match(self, text: str) -> list:
        return [rule for rule in RULES if rule.pattern.search(text)]

    def assess(self, text: str, history: list[str] | None = None) -> RiskAssessment:
        history = [h for h in (history or []) if h][-6:]
        matched = self.match(text)
        language = detect_language(text)
        categories = sorted({r.category for r in matched})
        reasons = list(dict.fromkeys(r.reason for r in matched))
        level = _max_level([r.level for r in matched])

        about_others = CONTEXT_EXEMPTIONS.search(text) or (
            language == "ko" and KOREAN_REPORTED.search(text))
        if about_others and LEVELS.index(level) >= LEVELS.index("medium") and not (
                SELF_REFERENCE.search(text)):
            reasons.append("about someone else, prevention, fiction or news")
            level = "low"

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
        if "timing" in categories and not set(categories) - {"timing", "distress"}:
            # A time alone ("tonight is the night") is not a plan, but it counts toward
            # the conversation's accumulated risk.
            level = "medium" if level == "imminent" else level

        if language == "other" and LEVELS.index(level) < LEVELS.index("high"):
            similarity = self.prototype_similarity(text)
            if similarity >= PROTOTYPE_THRESHOLD:
                level = "high"
                reasons.append(f"close in meaning to crisis statements ({similarity:.2f})")

        escalate = LEVELS.index(level) >= LEVELS.index("high")
        return RiskAssessment(level, escalate, reasons, categories)

    @cached_property
    def _prototype_vectors(self):
        from mindwell.models.embedder import get_embedder

        return get_embedder().encode(CRISIS_PROTOTYPES)

    def prototype_similarity(self, text: str) -> float:
        if not self.use_embeddings:
            return 0.0
        from mindwell.models.embedder import get_embedder

        vector = get_embedder().encode([text])[0]
        return float((self._prototype_vectors @ vector).max())
