"""Microphone and speakers through PortAudio (sounddevice), for `mindwell chat --voice`.

Everything else in mindwell's voice path works on files; this module is the only one that
touches audio devices, and it says clearly when there are none (servers, CI, containers),
pointing to the file options instead.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from mindwell.errors import MindwellError

SAMPLE_RATE = 16_000  # what Whisper wants; PortAudio resamples if the device differs
NO_DEVICE_HINT = ("Use --voice-in FILE (and --voice-out FILE) instead, or install PortAudio "
                  "(Debian: apt install libportaudio2) and connect a microphone.")


def _sounddevice():
    try:
        import sounddevice
    except (ImportError, OSError) as err:  # OSError: the PortAudio library is missing
        raise MindwellError(f"No audio devices can be used: {err}.", NO_DEVICE_HINT) from err
    return sounddevice


def require_device(kind: str) -> None:
    """Fail with a clear message when there is no input (or output) device."""
    sounddevice = _sounddevice()
    try:
        sounddevice.query_devices(kind=kind)
    except Exception as err:  # PortAudioError when no default device exists
        word = "microphone" if kind == "input" else "speaker"
        raise MindwellError(f"No {word} found on this machine.", NO_DEVICE_HINT) from err


def record(path: Path, seconds: float) -> Path:
    """Record ``seconds`` of mono 16 kHz audio from the default microphone into a WAV."""
    require_device("input")
    sounddevice = _sounddevice()
    samples = sounddevice.rec(int(seconds * SAMPLE_RATE), samplerate=SAMPLE_RATE,
                              channels=1, dtype="int16")
    sounddevice.wait()
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(np.asarray(samples).tobytes())
    return path


def play(path: Path) -> None:
    """Play a WAV file on the default speaker and wait until it ends."""
    require_device("output")
    sounddevice = _sounddevice()
    with wave.open(str(path), "rb") as wav:
        rate, frames = wav.getframerate(), wav.readframes(wav.getnframes())
    sounddevice.play(np.frombuffer(frames, dtype=np.int16), samplerate=rate)
    sounddevice.wait()
