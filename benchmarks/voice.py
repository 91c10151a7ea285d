"""Voice: word error rate and real-time factors, Piper vs espeak-ng speech, in one run.

Thirty counseling sentences (written for this benchmark) are spoken by Piper (the
`voice-piper` extra) and by espeak-ng (the robotic baseline, Debian package), then
transcribed by Whisper tiny.en (faster-whisper, int8). Reported: word error rate per voice,
and the real-time factor (processing seconds / audio seconds) of synthesis and of
transcription on this CPU.

    python benchmarks/voice.py [--threads 2]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _report import table, write_section
from mindwell.voice.speech import Speaker, Transcriber

SENTENCES = [
    "I have been feeling lonely since I moved to a new city.",
    "Work has been so stressful that I cannot sleep at night.",
    "My sister and I had a fight and I feel guilty about it.",
    "I failed an exam and I feel like a disappointment.",
    "I do not enjoy the things I used to love anymore.",
    "Thank you for listening to me today.",
    "Can we try a breathing exercise together?",
    "I went for a walk this morning and it helped a little.",
    "My friends are busy and I do not want to bother them.",
    "I keep thinking about what my boss said on Monday.",
    "Some days are better than others.",
    "I feel anxious before every meeting.",
    "My partner and I keep arguing about small things.",
    "I want to start writing in my diary again.",
    "It is hard to get out of bed in the morning.",
    "I miss my grandmother very much.",
    "The weekend was quiet and I read a good book.",
    "I am proud that I finished the project on time.",
    "Sometimes I feel like nobody understands me.",
    "I would like to make a plan for the week.",
    "My heart races when I think about the future.",
    "I talked to my mother on the phone and felt calmer.",
    "I have been eating less than usual lately.",
    "What can I do when my thoughts keep racing?",
    "I started a new job and everything feels overwhelming.",
    "I laughed with my friends for the first time in weeks.",
    "I am worried about my little brother.",
    "Please remind me of the grounding exercise.",
    "I slept eight hours last night and feel rested.",
    "Tomorrow I will try to go outside for ten minutes.",
]


def words(text: str) -> list[str]:
    return "".join(c.lower() if c.isalnum() or c.isspace() else " " for c in text).split()


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    # Pinned to tiny.en, as the title says; speech_roundtrip.py measures Whisper base (the
    # default when installed) and Korean.
    speaker = Speaker()
    transcriber = Transcriber(threads=args.threads, language="en", model="tiny.en")
    engines = ["piper"] + (["espeak"] if shutil.which("espeak-ng") else [])
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for engine in engines:
            errors = total = 0
            tts_seconds = stt_seconds = audio_seconds = 0.0
            for index, sentence in enumerate(SENTENCES):
                speech = speaker.speak(sentence, Path(folder) / f"{engine}-{index}.wav",
                                       engine=engine)
                heard = transcriber.transcribe(speech.path)
                errors += edit_distance(words(sentence), words(heard.text))
                total += len(words(sentence))
                tts_seconds += speech.seconds
                stt_seconds += heard.seconds
                audio_seconds += speech.audio_seconds
            rows.append([engine + (" (baseline)" if engine == "espeak" else ""),
                         len(SENTENCES), f"{errors / total:.1%}", f"{audio_seconds:.0f}",
                         f"{tts_seconds / audio_seconds:.3f}",
                         f"{stt_seconds / audio_seconds:.3f}"])
    body = table(["speech from", "utterances", "Whisper tiny.en WER", "audio s",
                  "synthesis RTF", "transcription RTF"], rows)
    body += (f"\n\nTranscription with {args.threads} threads, int8. RTF below 1 is faster than "
             "real time. No real recordings are in ../shared/data, so every utterance is "
             "synthesized.")
    print(write_section("voice", "Voice: Whisper tiny.en on Piper and espeak-ng speech", body,
                        "python benchmarks/voice.py"))


if __name__ == "__main__":
    main()
