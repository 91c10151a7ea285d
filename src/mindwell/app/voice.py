"""Voice in the web app: push-to-talk transcription and spoken replies, in memory only.

``POST /api/v1/voice/transcribe`` takes a WAV (16-bit PCM; the browser encodes it itself, so
no ffmpeg is needed) as the request body. The bytes are parsed here with the standard
``wave`` module from a ``BytesIO``, turned into 16 kHz mono samples with numpy (other rates
are resampled by PyAV, again from a ``BytesIO``) and handed to Whisper as an array. Nothing
is written to disk at any step, no temporary file either, and neither the audio nor the
transcript is kept or logged: the transcript goes back to the page, which sends it as an
ordinary chat message, so the safety gate, memory and storage mode treat it like typed text.

``POST /api/v1/voice/speak`` says a text into WAV bytes in memory (``Speaker.synthesize``:
Piper into a ``BytesIO``, espeak-ng to its stdout). It reads exactly the text it is given
(a crisis reply is read like any other); the voice follows the text's script, so Korean
text always gets espeak-ng's Korean voice.

The Whisper model loads on the first transcription and stays loaded; one clip is
transcribed at a time (a small CPU gains nothing from two at once).
"""

from __future__ import annotations

import io
import threading
import wave

import numpy as np

from mindwell.app.service import TooLarge
from mindwell.errors import MindwellError
from mindwell.voice.speech import (
    MAX_TEXT_CHARS,
    SAMPLE_RATE,
    Speaker,
    Speech,
    SpeechUnavailable,
    check_text,
)

MAX_AUDIO_BYTES = 2 * 1024 * 1024  # 60 s of 16 kHz 16-bit mono is 1.92 MB
MAX_AUDIO_SECONDS = 60.0
MIN_AUDIO_SECONDS = 0.1
MAX_SPEAK_CHARS = MAX_TEXT_CHARS
WAV_HINT = ("Send a WAV file of 16-bit PCM (mono, 16 kHz is best) as the request body, with "
            "Content-Type: audio/wav. The web app records this format itself.")
_STREAMED_SIZE = 0x7FFF0000  # a data size this large is a pipe's "unknown length"


def read_wav(data: bytes, content_type: str | None = None) -> tuple[np.ndarray, float]:
    """16 kHz mono float32 samples from the bytes of a 16-bit PCM WAV, and its length in
    seconds. Anything else is a ``MindwellError`` naming the problem (``TooLarge`` past
    ``MAX_AUDIO_SECONDS``)."""
    if not data:
        raise MindwellError("The request body is empty: no audio was sent.", WAV_HINT)
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        what = "a multipart form" if (content_type or "").startswith("multipart/") else \
            "a WAV file (it does not start with a RIFF/WAVE header)"
        raise MindwellError(f"The request body is not audio this route reads: it is not "
                            f"{what}.", WAV_HINT)
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            channels, width, rate, frames = (wav.getnchannels(), wav.getsampwidth(),
                                             wav.getframerate(), wav.getnframes())
            if width != 2:
                raise MindwellError(f"The WAV file has {8 * width}-bit samples; only 16-bit "
                                    "PCM is read.", WAV_HINT)
            if not 1 <= channels <= 8 or not 8000 <= rate <= 192_000:
                raise MindwellError(f"The WAV file's format ({channels} channels at {rate} Hz)"
                                    " cannot be read.", WAV_HINT)
            pcm = wav.readframes(frames)
    except MindwellError:
        raise
    except EOFError as err:
        raise MindwellError("The WAV file is cut short: its header is incomplete.",
                            WAV_HINT) from err
    except Exception as err:  # wave.Error, and RuntimeError on chunk sizes past the end
        problem = ("is not PCM (" if "unknown format" in str(err) else "is damaged (") + \
            f"{str(err) or type(err).__name__})"
        raise MindwellError(f"The WAV file {problem}.", WAV_HINT) from err
    block = channels * 2
    if len(pcm) < frames * block and frames * block < _STREAMED_SIZE:
        raise MindwellError(
            f"The WAV file is cut short: its header announces {frames / rate:.1f} s of audio "
            f"but only {len(pcm) // block / rate:.1f} s arrived.", "Record and send it again.")
    samples = np.frombuffer(pcm[: len(pcm) // block * block], dtype="<i2")
    seconds = len(samples) / channels / rate
    if seconds > MAX_AUDIO_SECONDS:
        raise TooLarge(f"The recording is {seconds:.1f} s long; the limit is "
                       f"{MAX_AUDIO_SECONDS:.0f} s.", "Record a shorter message and send the "
                       "rest in another one.")
    if seconds < MIN_AUDIO_SECONDS:
        raise MindwellError(f"The recording is {seconds:.2f} s long: too short to hold any "
                            "words.", "Record again and speak before you stop.")
    if rate == SAMPLE_RATE:
        mono = samples.reshape(-1, channels).mean(axis=1, dtype=np.float32)
        return mono / np.float32(32768.0), seconds
    return _resampled(data), seconds


def _resampled(data: bytes) -> np.ndarray:
    """PyAV (faster-whisper's decoder) resamples to 16 kHz mono, reading the WAV from a
    BytesIO: still no file."""
    try:
        from faster_whisper.audio import decode_audio
    except ImportError as err:
        raise SpeechUnavailable("faster-whisper is not installed.",
                                "Install the extra: pip install 'mindwell[voice]'") from err
    try:
        return decode_audio(io.BytesIO(data), sampling_rate=SAMPLE_RATE)
    except Exception as err:  # PyAV raises several error types for bad files
        raise MindwellError(f"The WAV file could not be decoded ({type(err).__name__}).",
                            WAV_HINT) from err


class VoiceService:
    """The speech models behind the voice routes, loaded on first use and kept."""

    def __init__(self, threads: int = 2) -> None:
        self.threads = threads
        self._transcriber = None
        self._speaker = Speaker()
        self._hear_lock = threading.Lock()
        self._speak_lock = threading.Lock()

    def _load_transcriber(self):
        if self._transcriber is None:
            from mindwell.voice.models import base_installed
            from mindwell.voice.speech import Transcriber

            try:
                self._transcriber = Transcriber(
                    threads=self.threads, language="auto" if base_installed() else "en")
            except MindwellError as err:  # a package or model missing: the setup's problem
                raise SpeechUnavailable(f"Speech to text is not available: {err.message}",
                                        err.hint) from err
        return self._transcriber

    def transcribe(self, data: bytes, language: str, content_type: str | None = None) -> dict:
        """``{"text", "language", "seconds", "model"}`` for a WAV's bytes; ``language`` is
        ``auto``, ``en`` or ``ko``."""
        samples, seconds = read_wav(data, content_type)
        del data  # the samples are all that is needed; nothing is kept after the answer
        with self._hear_lock:
            transcriber = self._load_transcriber()
            try:
                heard = transcriber.transcribe(samples, language=language)
            except SpeechUnavailable:
                raise
            except MindwellError as err:  # the model this language needs is not installed
                raise SpeechUnavailable(f"Speech to text in this language is not available: "
                                        f"{err.message}", err.hint) from err
        return {"text": heard.text, "language": heard.language, "seconds": round(seconds, 2),
                "model": heard.model}

    def speak(self, text: str, language: str | None = None) -> Speech:
        """WAV bytes (``Speech.wav``) of ``text``, made in memory."""
        text = check_text(text, MAX_SPEAK_CHARS, too_long=TooLarge)
        with self._speak_lock:
            return self._speaker.synthesize(text, language=language)
