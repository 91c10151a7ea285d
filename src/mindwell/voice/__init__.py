"""Voice, offline: speech to text (Whisper tiny.en) and text to speech (Piper, espeak-ng)."""
