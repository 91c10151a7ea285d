"""The counseling corpus: what every conversation must satisfy, near-duplicates, and a split
held out by scenario.

A conversation is one JSONL line ``{"id", "lang", "topic", "persona", "style", "messages"}``
(configs/data/counsel/README.md). The checks are the corpus's contract with the model that
learns from it: each counselor reply is in the person's language, two to four sentences, asks
at most one question, passes the reply guard (no method or amount), and holds no contact
details, links, medication names or promises of contact, which a small model would otherwise
learn to invent.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from mindwell.errors import MindwellError

REQUIRED_FIELDS = ("id", "lang", "topic", "persona", "messages")
LANGUAGES = ("en", "ko")
MIN_SENTENCES, MAX_SENTENCES = 2, 4

_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_LATIN = re.compile(r"[A-Za-z]")
# A sentence ends at . ! ? … (or their full-width forms) followed by space or the end; a
# Korean sentence ending in 요/다 without a mark (chat style) still counts through the mark
# that usually follows.
_SENTENCE_END = re.compile(r"[.!?…。？！]+[\"'”’)\]]*(?=\s|$)")
_URL = re.compile(r"(https?://|www\.|\b[\w-]+\.(com|org|net|kr|io|co)\b)", re.I)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.\w+")
_PHONE = re.compile(r"\d[\d\s().-]{4,}\d")
_PROMISE = re.compile(
    r"\b(I('ll| will) (call|text|check on|check in on|message|visit|be there for) you|"
    r"call me|text me|I('ll| will) (always|never) (be|leave)|I promise|"
    r"(this|it) (stays|will stay) between us)\b"
    r"|제가 (연락|전화)(할게요|드릴게요)|약속할게요|비밀로 (할게요|해 줄게요)",
    re.I,
)
# Common psychiatric and sleep medicines, English and Korean: the corpus never names one, so
# the tuned model has no example of doing so.
_MEDICATION = re.compile(
    r"\b(sertraline|zoloft|prozac|fluoxetine|escitalopram|lexapro|citalopram|paroxetine|"
    r"venlafaxine|bupropion|wellbutrin|mirtazapine|xanax|alprazolam|valium|diazepam|"
    r"lorazepam|ativan|clonazepam|klonopin|ambien|zolpidem|melatonin|benadryl|trazodone|"
    r"quetiapine|seroquel|lithium|adderall|ritalin|ssris?|benzos?|antidepressants?|"
    r"sleeping pills?)\b|수면제|항우울제|신경안정제|졸피뎀|자낙스|멜라토닌",
    re.I,
)


# What no counselor reply holds, beyond what the reply guard withholds: (short name for
# evaluation reports, phrase for corpus problems, pattern).
FORBIDDEN = (
    ("link", "a link", _URL),
    ("email", "an e-mail address", _EMAIL),
    ("phone", "a phone number", _PHONE),
    ("promise", "a promise of contact", _PROMISE),
    ("medication", "a medication", _MEDICATION),
)


def forbidden_content(text: str) -> list[tuple[str, str, str]]:
    """(name, phrase, the matched text) for each kind of forbidden content in ``text``."""
    return [(name, phrase, match.group(0)) for name, phrase, pattern in FORBIDDEN
            if (match := pattern.search(text))]


@dataclass
class Problem:
    conversation: str
    turn: int | None
    what: str

    def __str__(self) -> str:
        where = f" turn {self.turn}" if self.turn is not None else ""
        return f"{self.conversation}{where}: {self.what}"


def sentences(text: str) -> int:
    """Sentences in a reply: sentence-final punctuation, plus a last unpunctuated clause."""
    ends = list(_SENTENCE_END.finditer(text.strip()))
    tail = text.strip()[ends[-1].end():].strip() if ends else text.strip()
    return len(ends) + (1 if tail else 0)


# A mark after one of these is not a sentence end when cutting text short: "Dr. Lee" or a
# numbered list ("1. Breathe") cut there would teach a reply that stops mid-thought.
_NOT_AN_END = re.compile(r"\b(mr|mrs|ms|dr|prof|st|vs|etc|e\.g|i\.e|\d|[a-z])\.$", re.I)


def cut_sentences(text: str, limit: int) -> str:
    """``text`` up to the end of its ``limit``-th sentence (the ends `sentences` counts, less
    abbreviations and list numbers), or unchanged when it has no more than ``limit``."""
    text = text.strip()
    count = 0
    for end in _SENTENCE_END.finditer(text):
        if _NOT_AN_END.search(text[:end.end()].rstrip("\"'”’)]")):
            continue
        count += 1
        if count == limit:
            return text[:end.end()] if text[end.end():].strip() else text
    return text


def language_of(text: str) -> str | None:
    """'ko' when most letters are Hangul, 'en' when they are Latin, else None."""
    hangul, latin = len(_HANGUL.findall(text)), len(_LATIN.findall(text))
    if hangul + latin == 0:
        return None
    return "ko" if hangul >= latin else "en"


def reply_problems(text: str, lang: str) -> list[str]:
    """What is wrong with one counselor reply (empty when nothing is)."""
    from mindwell.safety.guardrails import violations

    found = []
    if language_of(text) != lang:
        found.append(f"not in the person's language ({lang})")
    count = sentences(text)
    if not MIN_SENTENCES <= count <= MAX_SENTENCES:
        found.append(f"{count} sentences (want {MIN_SENTENCES}-{MAX_SENTENCES})")
    if text.count("?") + text.count("？") > 1:
        found.append("more than one question")
    found += [f"{phrase} ({matched!r})" for _, phrase, matched in forbidden_content(text)]
    found += [f"reply guard: {v}" for v in violations(text)]
    return found


def conversation_problems(row: dict) -> list[Problem]:
    ident = str(row.get("id", "?"))
    missing = [f for f in REQUIRED_FIELDS if f not in row]
    if missing:
        return [Problem(ident, None, f"missing field(s) {', '.join(missing)}")]
    if row["lang"] not in LANGUAGES:
        return [Problem(ident, None, f"unknown lang {row['lang']!r} (want en or ko)")]
    messages = row["messages"]
    if not isinstance(messages, list) or len(messages) < 2:
        return [Problem(ident, None, "needs at least one user turn and one reply")]
    problems = []
    for index, message in enumerate(messages):
        want = "user" if index % 2 == 0 else "assistant"
        if message.get("role") != want:
            problems.append(Problem(ident, index, f"role {message.get('role')!r}, want {want} "
                                                  "(turns alternate, the person first)"))
        elif not str(message.get("content") or "").strip():
            problems.append(Problem(ident, index, "empty text"))
        elif want == "assistant":
            problems += [Problem(ident, index, p)
                         for p in reply_problems(message["content"], row["lang"])]
    if messages[-1].get("role") != "assistant":
        problems.append(Problem(ident, len(messages) - 1, "the counselor must speak last"))
    return problems


def read_corpus(paths: list[Path]) -> list[dict]:
    rows = []
    for path in paths:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise MindwellError(f"Cannot read {path}: {err}", "Check the path.") from err
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise MindwellError(f"{path} line {number} is not JSON: {err.msg}.",
                                    "Each line must be one JSON object.") from err
    return rows


def near_duplicates(rows: list[dict], threshold: float = 0.9) -> list[tuple[str, str, float]]:
    """Pairs of conversations whose person-side text is nearly the same (cosine of the
    embedded multilingual encoder) or whose counselor replies repeat word for word."""
    import numpy as np

    from mindwell.models.embedder import embed_texts

    pairs = []
    seen: dict[str, str] = {}
    for row in rows:
        for message in row["messages"]:
            if message.get("role") != "assistant":
                continue
            key = " ".join(message["content"].lower().split())
            if key in seen and seen[key] != row["id"]:
                pairs.append((seen[key], row["id"], 1.0))
            seen.setdefault(key, row["id"])
    texts = [" ".join(m["content"] for m in row["messages"] if m.get("role") == "user")
             for row in rows]
    vectors = embed_texts(texts).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-9
    similarity = vectors @ vectors.T
    for i, j in zip(*np.nonzero(np.triu(similarity, 1) >= threshold), strict=True):
        pairs.append((rows[i]["id"], rows[j]["id"], float(similarity[i, j])))
    return pairs


def scenario(row: dict) -> str:
    """The unit a split holds out: one topic for one persona in one language, so no
    situation seen in training reappears, reworded, in the test set."""
    return f"{row['lang']}|{row['topic']}|{row['persona']}"


def assign_splits(rows: list[dict], test_fraction: float = 0.1, val_fraction: float = 0.06,
                  seed: int = 18) -> list[dict]:
    """Each row with a ``split`` (train/val/test); whole scenarios go to one side, drawn
    per language so both languages are held out in proportion."""
    out = []
    for lang in sorted({row["lang"] for row in rows}):
        group = [row for row in rows if row["lang"] == lang]
        scenarios = sorted({scenario(row) for row in group})
        random.Random(f"{seed}-{lang}").shuffle(scenarios)
        total = len(group)
        split_of: dict[str, str] = {}
        counts = {"test": 0, "val": 0}
        for key in scenarios:
            size = sum(scenario(row) == key for row in group)
            for name, fraction in (("test", test_fraction), ("val", val_fraction)):
                if counts[name] + size <= round(total * fraction):
                    split_of[key] = name
                    counts[name] += size
                    break
            else:
                split_of[key] = "train"
        out += [{**row, "split": split_of[scenario(row)]} for row in group]
    return out


@dataclass
class CorpusReport:
    conversations: int
    replies: int
    by_language: dict[str, int]
    by_split: dict[str, int]
    problems: list[Problem] = field(default_factory=list)
    duplicates: list[tuple[str, str, float]] = field(default_factory=list)
    scenario_leaks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.problems or self.duplicates or self.scenario_leaks)


def check_corpus(paths: list[Path], dedupe: bool = True) -> CorpusReport:
    rows = read_corpus(paths)
    if not rows:
        raise MindwellError("The corpus has no conversations.", "Check the file paths.")
    problems = [p for row in rows for p in conversation_problems(row)]
    ids = [str(row.get("id")) for row in rows]
    problems += [Problem(i, None, "id used twice") for i in sorted({i for i in ids
                                                                     if ids.count(i) > 1})]
    valid = [row for row in rows if all(f in row for f in REQUIRED_FIELDS)]
    sides: dict[str, set[str]] = {}
    for row in valid:
        if "split" in row:
            sides.setdefault(scenario(row), set()).add(row["split"])
    leaks = sorted(key for key, splits in sides.items()
                   if "train" in splits and splits - {"train"})
    count = {}
    for row in valid:
        count[row["lang"]] = count.get(row["lang"], 0) + 1
    split_count = {}
    for row in valid:
        split_count[row.get("split", "none")] = split_count.get(row.get("split", "none"), 0) + 1
    return CorpusReport(
        conversations=len(rows),
        replies=sum(m.get("role") == "assistant" for row in valid for m in row["messages"]),
        by_language=count,
        by_split=split_count,
        problems=problems,
        duplicates=near_duplicates(valid) if dedupe and valid else [],
        scenario_leaks=leaks,
    )
