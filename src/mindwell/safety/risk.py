"""Risk assessment of one message in the context of its conversation.

The answer is graded (``RiskAssessment.action``): "protocol", "check_in" or "normal", plus
a fixed ``decline`` for dose questions (docs/safety.md). Cheapest first:
1. normalisation of disguised text (``normalize.py``);
2. rules (``rules.py``): crisis language, abuse, violence and harm to others in English
   and Korean, each with a level and a reason, and the exemptions (a story that is over,
   someone else's words, fiction) read in the sentences with the crisis words;
3. the reader (``reader.py``: the tuned multilingual encoder blended with the SVM/n-gram
   layer of ``learned.py``), on the message and, in a chat, the last messages with it;
4. the conversation: means or amounts asked after distress, hopelessness repeated, a
   crisis taken back ("jk").
Levels ``high`` and ``imminent`` are the protocol; a passive wish and what the reader finds
possibly risky are a check-in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mindwell.safety.learned import CrisisHead, shipped_head
from mindwell.safety.normalize import normalize
from mindwell.safety.rules import (
    ABUSE_RULES,
    DOSE_QUESTION,
    KOREAN_REPORTED,
    LEVELS,
    NOT_SAFE,
    OTHERS_SELF_HARM,
    PASSIVE_WISH,
    RECOVERY,
    RELAPSE,
    REPORTED_SPEECH,
    RULES,
    SAYS_SAFE,
    SELF_REFERENCE,
    TAKES_BACK,
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


ALL_RULES = [*RULES, *ABUSE_RULES]


def conversation_text(history: list[str], text: str) -> str:
    """What the learned layer reads for a message in its conversation (training data of
    conversations is flattened the same way)."""
    return " ".join([*history[-CONTEXT_MESSAGES:], text])


# The three answers, as clinicians grade them (docs/safety.md):
# - protocol: the fixed reply with helplines and a safety plan (explicit intent, plan, means,
#   preparation, goodbye, self-harm, danger from another person, harm to others);
# - check_in: ambiguous risk (a passive wish to be dead, hopelessness with risk words): the
#   companion answers the person's words and asks directly about safety;
# - normal: everything else, including grief, recovery, idioms and stress.
@dataclass
class RiskAssessment:
    level: str = "none"
    escalate: bool = False  # the protocol: no generated text
    reasons: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    action: str = "normal"
    # A medication dose or amount was asked for: mindwell answers with a fixed decline
    # instead of generating (it gives no doses at all).
    decline: bool = False

    @property
    def check_in(self) -> bool:
        return self.action == "check_in"

    def as_dict(self) -> dict:
        return {"level": self.level, "escalate": self.escalate, "action": self.action,
                "decline": self.decline, "categories": self.categories,
                "reasons": self.reasons}


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


# Categories whose rules answer with the protocol; "hopeless", "method_location" and
# "distress" only add to a conversation's risk.
PROTOCOL_CATEGORIES = {"direct", "plan_means", "timing", "self_harm", "farewell",
                       "hopeless_intent", "method_lethal", "abuse", "harm_to_others"}
# Danger from or to other people: reported speech and third persons are the point here, so
# only a story that is over (or news and fiction) lowers them.
OTHERS_CATEGORIES = {"abuse", "harm_to_others"}
RISK_CATEGORIES = {"distress", "hopeless", "hopeless_intent", "direct", "self_harm",
                   "plan_means", "method_lethal"}


class RiskAssessor:
    """Stateless per message; pass the earlier user messages of the conversation."""

    def __init__(self, use_embeddings: bool = True, reader=None, head: CrisisHead | None = None
                 ) -> None:
        self.use_embeddings = use_embeddings
        self._reader = reader if reader is not None else (
            HeadReader(head) if head is not None else None)

    def match(self, text: str) -> list:
        """The rules that ``text`` (already through ``prepare``) matches."""
        return [rule for rule in ALL_RULES if rule.pattern.search(text)]

    def assess(self, text: str, history: list[str] | None = None,
               vector=None, separate_entries: bool = False, reader_vector=None
               ) -> RiskAssessment:
        """``history``: the person's earlier messages, oldest first. ``separate_entries``:
        they are diary entries written on other occasions, not one conversation: an
        earlier entry then only raises attention and never escalates an ordinary new one.
        ``vector``: the sentence embedding of ``text`` when the caller already has it
        (batched analysis), so the learned layer does not embed it again;
        ``reader_vector``: the same for the reader's own encoder (``reader.vectors``)."""
        original = text
        text = prepare(text)
        history = [prepare(h) for h in (history or []) if h][-6:]
        matched = self.match(text)
        language = detect_language(text)
        categories = sorted({r.category for r in matched})
        reasons = list(dict.fromkeys(r.reason for r in matched))
        level = _max_level([r.level for r in matched])
        if "timing" in categories and not set(categories) - {"timing", "distress"}:
            # A time alone ("tonight is the night") is not a plan, but it counts toward
            # the conversation's accumulated risk.
            level = "medium" if level == "imminent" else level

        exempt = self._exemption(text, _sentences_with(text, matched), language, categories)
        if exempt and LEVELS.index(level) >= LEVELS.index("medium"):
            reasons.append(exempt)
            level = "low"
        action = "protocol" if LEVELS.index(level) >= LEVELS.index("high") else "normal"
        if action == "protocol" and _only_passive(text, matched):
            action, level = "check_in", "medium"
            reasons.append("a passive wish to be dead, without intent or a plan")
        elif not exempt and PASSIVE_WISH.search(text) and LEVELS.index(level) <= 2:
            # "nobody would notice if I was gone": ambiguous risk. Hopelessness alone ("I
            # feel hopeless about this job hunt") or a time alone ("do it now") is not; they
            # only add to the conversation's risk.
            action = "check_in"

        # The learned reader: what the rules did not list. "I'm safe now" alone keeps it
        # quiet (its training messages talk about safety too), but never a long message or
        # one that asks for amounts: "I'm safe now, just curious how many..." is read.
        says_safe = (SAYS_SAFE.search(text) and not NOT_SAFE.search(text)
                     and len(text.split()) <= 15 and not DOSE_QUESTION.search(text))
        if self.use_embeddings and not says_safe and action != "protocol":
            same = without_idioms(text) == original
            action, level = self._read(text, history, (vector, reader_vector) if same else
                                       (None, None), action, level, reasons, separate_entries)
            if exempt and action != "normal":
                # An exemption never silences the reader, but it raises the bar and caps the
                # answer: only what the reader reads as a crisis ("my dad said I'm a
                # failure, I want to kill myself tonight") gets a check-in; "my friend said
                # she wants to die, how do I help?" gets a normal reply.
                action, level = ("check_in", "medium") if action == "protocol" else (
                    "normal", "low")

        action, level = self._conversation(text, history, categories, action, level, reasons)
        if action == "normal" and language == "other" and DOSE_QUESTION.search(text):
            reasons.append("asks for an amount in a language the reader does not know")
        decline = action != "protocol" and bool(DOSE_QUESTION.search(text))
        if decline:
            reasons.append("asks for a medication dose or amount")
        return RiskAssessment(level, action == "protocol", reasons, categories, action, decline)

    def _exemption(self, text: str, focus: str, language: str, categories: list[str]
                   ) -> str | None:
        """Why the rules' finding does not apply to the writer now, if it does not. A story
        that is over is read in the whole text ("Two years ago ... Today I ..."); someone
        else's words, fiction and news in ``focus``, the sentences with the crisis words."""
        recovered = RECOVERY.search(text) and not RELAPSE.search(text)
        if recovered:
            return "speaks of a crisis that is over"
        text = focus
        if set(categories) & OTHERS_CATEGORIES:
            fiction = TOPIC_EXEMPTIONS.search(text) and not re.search(
                r"\b(me|my|us|our)\b|나를|날|저를|우리", text, re.I)
            return "news, fiction or prevention" if fiction else None
        # Someone else's self-harm ("our son has been cutting"), unless the writer's own
        # intent is there too ("... and I want to kill myself").
        if OTHERS_SELF_HARM.search(text) and set(categories) <= {"self_harm", "distress"}:
            return "about someone else's self-harm"
        about_others = TOPIC_EXEMPTIONS.search(text) or (
            THIRD_PARTY.search(text) and REPORTED_SPEECH.search(text)) or (
            language == "ko" and KOREAN_REPORTED.search(text))
        if about_others and not SELF_REFERENCE.search(text):
            return "about someone else, prevention, fiction or news"
        return None

    def _read(self, text, history, vectors, action, level, reasons, separate_entries):
        reader = self.reader
        # In a chat the last messages are read with the new one: "how long does a letter
        # take to arrive?" right after "I wrote my goodbye letters" belongs to that
        # conversation, and an old sign fades once it is more than CONTEXT_MESSAGES back.
        # Diary entries are separate occasions: an earlier entry is read only when the new
        # one carries some sign itself, so it never makes an ordinary entry ("went to the
        # farmers market w mom") a crisis.
        texts = [without_idioms(text)]
        together = bool(history) and not separate_entries
        if together:  # one call for both: the encoders batch them
            texts.append(without_idioms(conversation_text(history, text)))
        base, own = (None, None) if together else vectors
        if own is not None:
            risks, protocols = reader.scores(texts, None if base is None else base[None, :],
                                             own_vectors=own[None, :])
        else:
            risks, protocols = reader.scores(texts, None if base is None else base[None, :])
        risk, protocol = float(risks.max()), float(protocols.max())
        if history and separate_entries and risk >= reader.attention:
            both_risk, both_protocol = reader.scores(
                [without_idioms(conversation_text(history, text))])
            risk, protocol = max(risk, float(both_risk[0])), max(protocol,
                                                                 float(both_protocol[0]))
        if protocol >= reader.protocol_threshold:
            reasons.append(f"the reader finds a crisis (score {protocol:.2f})")
            return "protocol", "high"
        if risk >= reader.check_in_threshold and action == "normal":
            reasons.append(f"the reader finds possible risk (score {risk:.2f})")
            return "check_in", "medium"
        return action, level

    def _conversation(self, text, history, categories, action, level, reasons):
        """Risk that builds over a conversation."""
        earlier = [self.match(h) for h in history]
        earlier_categories = {r.category for rules in earlier for r in rules}
        asks_means = "method_location" in categories or DOSE_QUESTION.search(text)
        if action != "protocol" and asks_means and (
                set(categories) & RISK_CATEGORIES or earlier_categories & RISK_CATEGORIES):
            reasons.append("asks about means or amounts after describing distress or "
                           "hopelessness")
            return "protocol", "high"
        crisis_before = any(r.level in ("high", "imminent") and r.category in
                            PROTOCOL_CATEGORIES for rules in earlier for r in rules)
        if action == "normal" and crisis_before and TAKES_BACK.search(text):
            reasons.append("takes back an earlier crisis message")
            return "check_in", "medium"
        earlier_signs = sum(any(LEVELS.index(r.level) >= LEVELS.index("medium") for r in rules)
                            for rules in earlier)
        if action == "normal" and level == "medium" and earlier_signs:
            reasons.append("repeated signs of risk in this conversation")
            return "check_in", "medium"
        return action, level

    @property
    def reader(self):
        if self._reader is None:
            self._reader = shipped_reader()
        return self._reader


_SENTENCE = re.compile(r"[^.!?。\n]+[.!?。]*|\n")


def _sentences_with(text: str, matched: list) -> str:
    """The sentences in which a rule of medium level or more matched. An exemption (a story
    that is over, someone else's words, fiction) must hold where the crisis words are: in a
    diary entry "Mom called about Christmas" does not make "I won't be there" about Mom."""
    spans = [found.span() for rule in matched if LEVELS.index(rule.level) >= 2
             for found in [rule.pattern.search(text)] if found]
    if not spans:
        return text
    chosen = [m.group(0) for m in _SENTENCE.finditer(text)
              if any(m.start() <= start < m.end() or start <= m.start() < end
                     for start, end in spans)]
    return " ".join(chosen) or text


def _only_passive(text: str, matched: list) -> bool:
    """Every protocol-level rule that matched matched inside a passive wish ("I wish I
    could sleep and not wake up"), and nothing else says intent."""
    spans = [m.span() for m in PASSIVE_WISH.finditer(text)]
    if not spans:
        return False
    for rule in matched:
        if LEVELS.index(rule.level) < LEVELS.index("high"):
            continue
        found = rule.pattern.search(text)
        if not any(start <= found.start() < end or found.start() <= start < found.end()
                   for start, end in spans):
            return False
    return True


def prepare(text: str) -> str:
    """What the rules and the reader read: straight quotes, no disguises."""
    return normalize(straight_quotes(text))


class HeadReader:
    """The first learned layer (SVM + n-grams, one decision value) as a reader: the same
    value serves as the risk and the protocol score."""

    def __init__(self, head: CrisisHead) -> None:
        self.head = head
        self.attention = head.medium_threshold
        self.check_in_threshold = head.threshold
        self.protocol_threshold = head.threshold

    def scores(self, texts: list[str], vectors=None):
        values = self.head.scores(texts, vectors)
        return values, values


def shipped_reader():
    """The tuned reader that ships with mindwell; the first learned layer where a build
    has none (a source checkout before scripts/train_safety_reader.py ran)."""
    from mindwell.safety.reader import READER_PATH
    from mindwell.safety.reader import shipped_reader as tuned

    return tuned() if READER_PATH.exists() else HeadReader(shipped_head())
