"""Speech languages without loading a model: the user's setting, the voice for a text's
script, and joining a split model file with its checksum (the real join on a small file)."""

import hashlib
import os
import shutil
import subprocess
import sys

import pytest

from mindwell.errors import MindwellError
from mindwell.voice.models import join_parts
from mindwell.voice.speech import (
    KOREAN_VOICE,
    LANGUAGE_ENV,
    Speaker,
    choose_voice,
    resolve_language,
    text_language,
)


def test_language_setting_is_normalised(monkeypatch):
    monkeypatch.delenv(LANGUAGE_ENV, raising=False)
    assert resolve_language(None) == "auto"
    assert resolve_language("ko") == "ko"
    assert resolve_language("ko-KR") == "ko"
    assert resolve_language("en_US") == "en"
    assert resolve_language(" Korean ") == "ko"
    assert resolve_language("ENGLISH") == "en"
    assert resolve_language("Auto") == "auto"
    monkeypatch.setenv(LANGUAGE_ENV, "ko")
    assert resolve_language(None) == "ko"
    assert resolve_language("en") == "en"  # an explicit setting wins over the environment


def test_unknown_language_names_the_choices():
    with pytest.raises(MindwellError, match="auto, en, ko"):
        resolve_language("fr")


def test_script_decides_korean():
    assert text_language("요즘 너무 지쳐요") == "ko"
    assert text_language("오늘 CBT 연습을 했어요") == "ko"
    assert text_language("I learned the word 사랑 today") == "ko"  # Piper cannot read 사랑
    assert text_language("I feel tired today.") == "en"
    assert text_language("ㅠㅠ") == "ko"  # compatibility jamo count as Hangul


def test_korean_text_never_gets_the_english_voice():
    for setting in (None, "auto", "en", "ko", "en-US"):
        voice = choose_voice("요즘 너무 지쳐요", setting)
        assert (voice.engine, voice.language, voice.name) == ("espeak", "ko", KOREAN_VOICE)
        assert voice.rate
    with pytest.raises(MindwellError, match="only an English voice"):
        choose_voice("안녕하세요", engine="piper")
    assert choose_voice("안녕하세요", voice="ko+f3", rate=120).name == "ko+f3"


def test_english_text_follows_the_setting():
    assert choose_voice("Hello there.", engine="espeak").name == "en"
    # An explicit Korean setting on Latin text is honoured (espeak-ng's Korean voice).
    assert choose_voice("OK", "ko").language == "ko"
    voice = choose_voice("Take a slow breath.")
    assert voice.language == "en"
    assert voice.engine == ("piper" if _has("piper") else "espeak")
    with pytest.raises(MindwellError, match="Unknown speech engine"):
        choose_voice("Hello", engine="festival")


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_missing_espeak_names_the_apt_package(tmp_path):
    """A real run without espeak-ng on PATH (nothing faked): the message says what to
    install, and no traceback reaches the user."""
    result = subprocess.run(
        [sys.executable, "-m", "mindwell", "speak", "요즘 너무 지쳐요", "-o",
         str(tmp_path / "ko.wav")],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PATH": str(tmp_path)})
    assert result.returncode != 0
    assert "apt install espeak-ng" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "ko.wav").exists()


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_korean_is_spoken_by_the_korean_voice(tmp_path):
    speech = Speaker().speak("오늘 하루는 어땠어요?", tmp_path / "ko.wav", language="en")
    assert (speech.engine, speech.language) == ("espeak", "ko")
    assert speech.audio_seconds > 0.5
    with pytest.raises(MindwellError, match="voice 'xx-nonexistent'"):
        Speaker().speak("Hello", tmp_path / "x.wav", engine="espeak", voice="xx-nonexistent")


def _split(tmp_path, data: bytes, cut: int):
    first, second = tmp_path / "model.bin.part1", tmp_path / "model.bin.part2"
    first.write_bytes(data[:cut])
    second.write_bytes(data[cut:])
    return [first, second]


def test_join_parts_restores_the_file_and_checks_it(tmp_path):
    data = os.urandom(3 * (1 << 20) + 12345)  # spans several read blocks
    parts = _split(tmp_path, data, 1_500_001)
    target = tmp_path / "cache" / "whisper" / "model.bin"
    joined = join_parts(parts, target, hashlib.sha256(data).hexdigest())
    assert joined == target and target.read_bytes() == data
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.bin"]  # no leftovers


def test_join_parts_refuses_a_corrupt_result(tmp_path):
    data = os.urandom(200_000)
    parts = _split(tmp_path, data, 70_000)
    good = hashlib.sha256(data).hexdigest()
    parts[1].write_bytes(parts[1].read_bytes()[:-1] + b"\0")  # one byte changed
    target = tmp_path / "out" / "model.bin"
    with pytest.raises(MindwellError, match="corrupt") as caught:
        join_parts(parts, target, good)
    assert "pip install --force-reinstall" in caught.value.hint
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_join_parts_keeps_a_good_file_when_a_new_join_fails(tmp_path):
    data = os.urandom(50_000)
    parts = _split(tmp_path, data, 20_000)
    target = tmp_path / "model.bin"
    join_parts(parts, target, hashlib.sha256(data).hexdigest())
    with pytest.raises(MindwellError, match="corrupt"):
        join_parts(list(reversed(parts)), target, hashlib.sha256(data).hexdigest())
    assert target.read_bytes() == data


def test_join_parts_reports_a_missing_part(tmp_path):
    with pytest.raises(MindwellError, match="missing"):
        join_parts([tmp_path / "a", tmp_path / "b"], tmp_path / "model.bin", "0" * 64)
