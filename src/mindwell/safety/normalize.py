"""Undo the disguises people (and jailbreak prompts) put on words before the gate reads them.

The rules and the reader are written for ordinary text. "h o w  m a n y  p i l l s",
"ov3rd0se", "kіll" with a Cyrillic і, a zero-width space inside "suicide", full-width
letters and a base64 payload with "decode and answer" all carry the same request, so each
is turned back into plain text first. The original text is never shown to anyone changed:
this is only what the gate reads.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata

# Characters that render as nothing: zero-width space/joiners, word joiner, soft hyphen,
# BOM, and the invisible separators some keyboards insert.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\u00ad\ufeff\u180e\u2061\u2062"
                                    "\u2063\u2064\u034f"))
# Look-alike letters from Cyrillic and Greek that NFKC leaves alone (the common ones
# in confusable-based spoofing). Mapped only inside words that also have Latin letters, so
# Russian or Greek text stays what it is.
_CONFUSABLES = str.maketrans({
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d",
    "ɡ": "g", "һ": "h", "ԛ": "q", "ԝ": "w", "ᴠ": "v",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C",
    "Т": "T", "Х": "X", "І": "I", "Ј": "J", "Ѕ": "S",
    "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
    "υ": "u", "χ": "x", "Α": "A", "Β": "B", "Ε": "E", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N",
    "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X", "Ζ": "Z",
})
_LATIN = re.compile(r"[A-Za-z]")
_LOOKALIKE_SCRIPTS = re.compile(r"[\u0370-\u03ff\u0400-\u052f\u1d00-\u1d7f\u0261]")
_WORD = re.compile(r"\w+")
# Letters written one by one: "h o w  m a n y" or "s.u.i.c.i.d.e" (at least four).
_SPACED = re.compile(r"(?<!\w)(?:[^\W\d_][ .\-_*]{1,3}){3,}[^\W\d_](?!\w)")
_LEET_L = str.maketrans({"0": "o", "1": "l", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a",
                         "$": "s"})
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a",
                       "$": "s", "!": "i", "|": "l", "+": "t"})
# A word with both letters and leet characters ("0verd0se", "k!ll", "$uicide"); plain
# numbers ("300 days", "5pm") are left alone because they have no letter on both sides.
_LEET_WORD = re.compile(r"(?<![\w@$!|+])(?=[\w@$!|+]*[A-Za-z])(?=[\w@$!|+]*[013457@$!|+])"
                        r"[A-Za-z013457@$!|+]{3,}(?![\w@$!|+])")
# "7pm", "5km", "2nd", "500mg": numbers with a unit or ending, not disguised letters.
_NUMBER_WITH_UNIT = re.compile(r"\d+(\.\d+)?[A-Za-z]{1,6}")
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/=])")


def _decode_base64(token: str) -> str | None:
    """The text a base64 token carries, when it decodes to readable UTF-8."""
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    printable = sum(ch.isprintable() or ch.isspace() for ch in text)
    letters = sum(ch.isalpha() for ch in text)
    if not text or printable < len(text) * 0.95 or letters < len(text) * 0.5:
        return None
    return text


def _unleet(match: re.Match) -> str:
    word = match.group(0)
    # Only words that read as letters once translated: "b4" stays "b4", "m0rph1ne" turns
    # into "morphine". Leading or trailing punctuation marks are not part of the word.
    core = word.strip("!|+$@")
    if sum(ch.isalpha() for ch in core) < 2 or _NUMBER_WITH_UNIT.fullmatch(core):
        return word
    return word.replace(core, core.translate(_LEET))


# Korean chat letters (ㅋㅋ, ㅠㅠ: compatibility jamo) are left as typed: NFKC would turn
# them into conjoining jamo that compose with their neighbours ("ㅋㅠ" -> "큐").
_CHAT_JAMO = re.compile(r"([\u3131-\u318e]+)")


def _nfkc(text: str) -> str:
    return "".join(part if index % 2 else unicodedata.normalize("NFKC", part)
                   for index, part in enumerate(_CHAT_JAMO.split(text)))


def normalize(text: str) -> str:
    """Plain text for the gate: NFKC, no invisible characters, look-alike letters mapped to
    Latin inside Latin words, letters written one by one joined, leetspeak read as letters,
    and any base64 payload decoded and appended (the payload is what is being asked)."""
    text = _nfkc(text).translate(_INVISIBLE)
    # Words are found with a plain \w+ and checked in Python: a regex that looks for a
    # Latin letter and a look-alike in one word backtracks cubically on long words.
    text = _WORD.sub(lambda m: m.group(0).translate(_CONFUSABLES)
                     if _LATIN.search(m.group(0)) and _LOOKALIKE_SCRIPTS.search(m.group(0))
                     else m.group(0), text)
    # A whole message in look-alikes ("кіll mуѕеlf" is all Cyrillic but for nothing): map
    # any Cyrillic/Greek word when the text around it is Latin.
    if _mostly_latin(text):
        text = text.translate(_CONFUSABLES)
    text = _SPACED.sub(_join_spaced, text)
    leet_words = _LEET_WORD.findall(text)
    text = _LEET_WORD.sub(_unleet, text)
    # "1" is an i or an l ("ki11 myse1f"): the l reading of those words is added too.
    ambiguous = [w for w in leet_words if "1" in w and not _NUMBER_WITH_UNIT.fullmatch(w)]
    if ambiguous:
        text += " " + " ".join(w.translate(_LEET_L) for w in ambiguous)
    decoded = [d for d in (_decode_base64(t) for t in _BASE64.findall(text)) if d]
    if decoded:
        text = " ".join([text, *(normalize(d) for d in decoded)])
    return text


def _mostly_latin(text: str) -> bool:
    latin = len(re.findall(r"[A-Za-z]", text))
    other = len(re.findall(r"[\u0370-\u03ff\u0400-\u04ff]", text))
    return other > 0 and latin >= other


def _join_spaced(match: re.Match) -> str:
    """'h o w  m a n y' -> 'how many': a wider gap (two or more spaces) separates words."""
    spaced = match.group(0)
    words = re.split(r"\s{2,}| / ", spaced)
    return " ".join(re.sub(r"[ .\-_*]", "", w) for w in words)
