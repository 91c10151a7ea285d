import base64
import re
import zlib
from datetime import UTC, timedelta, timezone

import pytest

from mindwell.app import sessionlog
from mindwell.app.sessionlog import (
    emotion_timeline_png,
    log_filename,
    mood_chart_png,
    render_markdown,
    render_pdf,
    summarize,
)

START = 1795000000.0  # 2026-11-18 11:06:40 UTC
SEOUL = timezone(timedelta(hours=9))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _emotion(seconds: float, source: str, label: str, score: float | None = 0.8) -> dict:
    return {"time": START + seconds, "source": source, "label": label, "score": score}


def _message(seconds: float, role: str, text: str) -> dict:
    return {"time": START + seconds, "role": role, "text": text}


def _log(**changes) -> dict:
    """A 20-minute session: sad at first, calmer in the second half (after 600 s)."""
    log = {
        "user": "me",
        "session_id": "s_abc",
        "started_at": START,
        "ended_at": START + 1200,
        "mode": "journal",
        "emotions": [
            _emotion(60, "text", "sadness", 0.71),
            _emotion(120, "text", "슬픔"),
            _emotion(240, "text", "fear"),
            _emotion(420, "text", "sadness"),
            _emotion(700, "text", "neutral"),
            _emotion(900, "text", "joy", None),
            _emotion(1000, "text", "neutral"),
            _emotion(100, "face", "sad"),
            _emotion(200, "face", "sad"),
            _emotion(800, "face", "neutral"),
            _emotion(1100, "face", "happy"),
        ],
        "risk_events": [
            {"time": START + 300, "type": "escalation", "level": "medium",
             "reasons": ["talks about harming themself"]},
            {"time": START + 400, "type": "escalation", "level": "high",
             "reasons": ["states a wish to die | or to end their life", "says goodbye"]},
            {"time": START + 500, "type": "crisis_mode_ended", "level": None, "reasons": []},
        ],
        "transcript": [
            _message(50, "user", "I can't sleep | at all\nand I feel <b>empty</b>"),
            _message(55, "assistant", "That sounds exhausting. What keeps you up?"),
            _message(110, "user", "요즘 너무 힘들어요"),
        ],
        "turns": 6,
        "disclosure": "mindwell is an AI companion, not a therapist.",
    }
    return {**log, **changes}


def _pdf_strings(pdf: bytes) -> str:
    """The text shown in a reportlab PDF, read from its content streams.

    Neither pypdf nor a PDF-to-text tool is a dependency: reportlab writes each stream as
    ASCII85 over zlib, Helvetica text as Latin-1 strings and the Korean CID font as UTF-16.
    """
    latin, utf16 = [], []
    for stream in re.findall(rb"stream\r?\n(.*?)endstream", pdf, re.S):
        try:
            content = zlib.decompress(base64.a85decode(stream.strip(), adobe=True))
        except ValueError:
            continue  # not text, e.g. the chart image's alpha mask
        for literal in re.findall(rb"\(((?:\\.|[^\\)])*)\)\s*Tj", content, re.S):
            raw = re.sub(rb"\\([0-7]{1,3}|.)", _unescape, literal)
            latin.append(raw.decode("latin-1"))
            if len(raw) % 2 == 0:
                utf16.append(raw.decode("utf-16-be", errors="ignore"))
    # Fragments join without separators: reportlab may show "<" and ">" as strings of their
    # own, and a line break between fragments adds no space, so test phrases within a line.
    return "".join(latin) + "\n" + "".join(utf16)


def _unescape(match: re.Match) -> bytes:
    code = match.group(1)
    if code.isdigit():
        return bytes([int(code, 8)])
    return {b"n": b"\n", b"r": b"\r", b"t": b"\t"}.get(code, code)


def _pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type /Page\b(?!s)", pdf))


def test_summary_counts_readings_and_names_the_dominant_emotions():
    summary = summarize(_log())
    assert summary == summarize(_log())  # deterministic
    lines = summary.splitlines()
    assert lines[0] == "The session lasted 20 min, with 6 messages from the user."
    # 슬픔 counts as sadness.
    assert lines[1] == ("Emotions read from the messages (7 readings): sadness 3 (43%), "
                        "neutral 2 (29%), fear 1 (14%), and 1 other label.")
    assert lines[2] == ("Emotions read from the webcam (4 readings): sad 2 (50%), "
                        "neutral 1 (25%), happy 1 (25%).")
    assert lines[3] == ("Change in the messages emotions: the first half most often sadness "
                        "(3 of 4), the second half most often neutral (2 of 3); negative "
                        "emotions went from 100% to 0% of readings.")
    assert "the second half neutral and happy equally often (1 of 2 each)" in lines[4]
    assert lines[5] == ("Risk: 2 safety escalations (highest level: high). Crisis mode ended "
                        "with the user saying they were safe.")


@pytest.mark.parametrize(("events", "expected"), [
    ([], "Risk: no safety escalations during the session."),
    ([{"time": START + 10, "type": "escalation", "level": "imminent", "reasons": []}],
     "Risk: 1 safety escalation (highest level: imminent). Crisis mode had not ended"),
    ([{"time": START + 10, "type": "escalation", "level": "high", "reasons": []},
      {"time": START + 20, "type": "crisis_mode_ended", "level": None, "reasons": []},
      {"time": START + 30, "type": "escalation", "level": "high", "reasons": []}],
     "a later escalation was still open"),
])
def test_summary_reports_whether_crisis_mode_ended(events, expected):
    assert expected in summarize(_log(risk_events=events))


def test_an_open_session_without_readings_is_summarised_from_what_was_recorded():
    summary = summarize(_log(ended_at=None, emotions=[], risk_events=[], turns=None,
                             transcript=[_message(0, "user", "hi"),
                                         _message(400, "user", "still here")]))
    assert summary.splitlines()[:2] == [
        "The session lasted 7 min so far (the session was still open), with 2 messages "
        "from the user.",
        "No emotion readings were recorded.",
    ]


def test_markdown_has_the_disclaimer_summary_tables_and_transcript():
    markdown = render_markdown(_log(), tz=SEOUL)
    assert markdown.startswith("# mindwell session log\n")
    assert "not a clinical assessment" in markdown
    assert "- **Date:** 2026-11-18T20:06:40+09:00 (local time, UTC+09:00)" in markdown
    assert "- **Duration:** 20 min" in markdown
    for sentence in summarize(_log()).splitlines():
        assert f"- {sentence}" in markdown
    assert "| Time | Source | Label | Score |" in markdown
    assert "| 20:07:40 (+1:00) | text | sadness | 0.71 |" in markdown
    assert "| 20:21:40 (+15:00) | text | joy | — |" in markdown
    assert "| 20:08:40 (+2:00) | text | 슬픔 | 0.80 |" in markdown
    # A pipe inside a cell is escaped, or the row would gain a column.
    assert ("| 20:13:20 (+6:40) | escalation | high | states a wish to die \\| or to end "
            "their life; says goodbye |") in markdown
    assert ("**20:07:30 (+0:50) · User**\n> I can't sleep | at all\n> and I feel \\<b>empty"
            in markdown)
    assert "> 요즘 너무 힘들어요" in markdown
    assert sessionlog.NO_TRANSCRIPT not in markdown


def test_markdown_without_transcript_or_risk_events_says_so():
    markdown = render_markdown(_log(transcript=None, risk_events=[], emotions=[]), tz=SEOUL)
    assert "## Risk events\n\nNone." in markdown
    assert "## Emotions over time\n\nNone recorded." in markdown
    assert markdown.rstrip().endswith(f"_{sessionlog.NO_TRANSCRIPT}_")
    assert "I can't sleep" not in markdown


def test_utc_offsets_and_file_names_use_the_local_start_time():
    behind = timezone(-timedelta(hours=3, minutes=30))
    assert "(local time, UTC-03:30)" in render_markdown(_log(), tz=behind)
    assert log_filename(_log(), "pdf", tz=SEOUL) == "mindwell-session-2026-11-18-2006.pdf"
    assert log_filename(_log(), "md", tz=UTC) == "mindwell-session-2026-11-18-1106.md"
    with pytest.raises(ValueError, match="fmt"):
        log_filename(_log(), "html")


def test_pdf_shows_the_content_in_english_and_korean():
    pdf = render_pdf(_log(), tz=SEOUL)
    assert pdf.startswith(b"%PDF")
    assert b"/BaseFont /HYSMyeongJo-Medium" in pdf
    assert b"/Subtype /Image" in pdf  # the emotion chart
    shown = _pdf_strings(pdf)
    for text in ("mindwell session log", "not a clinical assessment", "Summary",
                 "2 safety escalations", "Risk events", "states a wish to die | or to end",
                 "I can't sleep | at all", "and I feel <b>empty</b>", "Transcript",
                 "20:07:40 (+1:00)", "요즘 너무 힘들어요", "슬픔"):
        assert text in shown, text


def test_a_long_transcript_paginates_and_a_missing_one_is_explained():
    transcript = [_message(i, "user" if i % 2 else "assistant", f"message number {i} " * 12)
                  for i in range(120)]
    pdf = render_pdf(_log(emotions=[], transcript=transcript))
    assert _pages(pdf) >= 4
    shown = _pdf_strings(pdf)
    assert "message number 0" in shown
    assert "message number 119" in shown

    without = render_pdf(_log(emotions=[], transcript=None))
    assert sessionlog.NO_TRANSCRIPT in _pdf_strings(without)
    assert b"/Subtype /Image" not in without


def test_emotion_timeline_is_a_png_or_none_without_readings():
    assert emotion_timeline_png(_log(emotions=[])) is None
    for emotions in (_log()["emotions"][:1], _log()["emotions"]):
        assert emotion_timeline_png(_log(emotions=emotions)).startswith(PNG_SIGNATURE)


def test_mood_chart_draws_zero_one_and_many_days():
    days = [{"date": f"2026-11-{day:02d}", "depression": None if day == 12 else day / 40,
             "emotion": ("슬픔", "sadness", "기쁨", "무감정", "fear", None)[day % 6],
             "entries": 2, "escalations": int(day == 14)} for day in range(10, 25)]
    for points in ([], days[:1], days):
        assert mood_chart_png(points).startswith(PNG_SIGNATURE)


def test_charts_never_draw_hangul():
    # matplotlib's bundled font has no Hangul glyphs; known labels become English.
    assert [sessionlog._chart_label(label) for label in ("무감정", "슬픔", "기쁨", "분노")] == [
        "neutral", "sadness", "joy", "anger"]
    assert sessionlog._chart_label("불안") == "other"
    assert sessionlog._chart_label("sad") == "sadness"
