"""Speech round trip, Korean and English: speak, transcribe, count the errors; in one run.

Twenty Korean and twenty English counseling sentences (written for this benchmark) are
spoken and transcribed back with mindwell's own Speaker and Transcriber:

- Korean: espeak-ng's Korean voice in two variants (the female default mindwell speaks
  with, and the plain male voice), heard by Whisper base with the language set to Korean and
  with detection (``auto``). Baseline, what `mindwell speak`/`transcribe` did before: the English
  Piper voice reading the Korean text, heard by Whisper tiny.en.
- English: the Piper voice, heard by Whisper tiny.en (baseline, the English default so far)
  and by Whisper base (language English, and detected).

Reported: character error rate for Korean (letters and digits only: spaces and punctuation
do not count), word error rate for English, how often detection picked the right language,
and real-time factors (processing seconds / audio seconds) of synthesis and transcription,
per utterance and for all utterances joined into one clip (Whisper works on 30-second
windows, so one short clip costs nearly as much as 30 seconds of audio). The load average
is printed: the machine is shared, and a busy machine inflates every time.

    python benchmarks/speech_roundtrip.py [--threads 2] [--limit 20]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from _report import table, write_section
from mindwell.voice.speech import KOREAN_RATE, KOREAN_VOICE, Speaker, Transcriber

KOREAN = [
    "요즘 너무 지쳐서 아무것도 하기 싫어요.",
    "회사에서 스트레스를 많이 받아서 잠을 못 자요.",
    "친구들이 바빠서 연락하기가 미안해요.",
    "오늘은 산책을 하고 나니 기분이 조금 나아졌어요.",
    "가족과 이야기를 나누면 마음이 편해져요.",
    "시험을 망쳐서 부모님께 죄송한 마음이 들어요.",
    "혼자 있는 시간이 길어지면 외로움을 느껴요.",
    "요즘 밥맛이 없어서 끼니를 자주 거르게 돼요.",
    "내일 발표가 있어서 너무 긴장돼요.",
    "제 이야기를 들어 주셔서 정말 고마워요.",
    "같이 천천히 숨을 쉬어 볼까요?",
    "그 일은 당신의 잘못이 아니에요.",
    "힘든 마음을 솔직하게 말해 줘서 고마워요.",
    "오늘 하루는 어떻게 보내셨어요?",
    "작은 일이라도 해낸 자신을 칭찬해 주세요.",
    "새로운 직장에 적응하는 것이 쉽지 않아요.",
    "밤마다 걱정이 많아져서 생각이 멈추지 않아요.",
    "주말에는 좋아하는 음악을 들으며 쉬고 싶어요.",
    "할머니가 많이 보고 싶어요.",
    "천천히 하나씩 해 나가면 괜찮을 거예요.",
]

ENGLISH = [
    "I have felt tired all week and I do not know why.",
    "My manager keeps giving me more work than I can finish.",
    "I called my best friend yesterday and we talked for an hour.",
    "It is hard for me to ask other people for help.",
    "I worry that I am letting my family down.",
    "Taking a short walk after lunch helps me feel calmer.",
    "Could you remind me how the breathing exercise works?",
    "I stayed in bed most of Sunday and felt guilty about it.",
    "Last night I finally slept without waking up.",
    "My thoughts race whenever I try to fall asleep.",
    "I miss the friends I left behind when I moved.",
    "Today I cooked a proper meal for the first time in days.",
    "Sometimes I feel nervous when my phone rings.",
    "I would like to feel more patient with my children.",
    "Writing in my journal makes the evening feel lighter.",
    "My exam results come out next week and I am scared.",
    "I am trying to be kinder to myself when I make mistakes.",
    "We argued again and I do not know how to fix it.",
    "Thank you for helping me think this through.",
    "Tomorrow I will start with one small task.",
]

# The second Korean voice: espeak-ng's plain Korean voice (male; the default is female f5).
SECOND_KOREAN_VOICE, SECOND_KOREAN_RATE = "ko", 130


def words(text: str) -> list[str]:
    return "".join(c.lower() if c.isalnum() or c.isspace() else " " for c in text).split()


def characters(text: str) -> list[str]:
    return [c for c in text if c.isalnum()]


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


def error_rate(references: list[str], hypotheses: list[str], units) -> float:
    pairs = list(zip(references, hypotheses, strict=True))
    errors = sum(edit_distance(units(ref), units(hyp)) for ref, hyp in pairs)
    return errors / sum(len(units(ref)) for ref, _ in pairs)


def samples_16k(path: Path) -> np.ndarray:
    from faster_whisper.audio import decode_audio

    return decode_audio(str(path), sampling_rate=16000)


def cpu_seconds() -> float:
    """CPU time of this process (all its threads) and of finished child processes (espeak-ng):
    unlike wall time, hardly inflated when other jobs share the cores."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def piper_reads(speaker: Speaker, text: str, out: Path) -> tuple[Path, float, float]:
    """The old path: the English Piper voice reads whatever it is given (Korean too)."""
    started = time.perf_counter()
    with wave.open(str(out), "wb") as wav:
        speaker._piper_voice().synthesize_wav(text, wav)
    with wave.open(str(out), "rb") as wav:
        seconds = wav.getnframes() / wav.getframerate()
    return out, seconds, time.perf_counter() - started


def hear(transcriber: Transcriber, clips: list[Path], language: str, expected: str):
    """(transcripts, right-language count, "wall RTF / CPU RTF")."""
    texts, right, spent, cpu, audio = [], 0, 0.0, 0.0, 0.0
    for clip in clips:
        cpu_before = cpu_seconds()
        heard = transcriber.transcribe(clip, language=language)
        cpu += cpu_seconds() - cpu_before
        texts.append(heard.text)
        right += heard.language == expected
        spent += heard.seconds
        audio += heard.audio_seconds
    return texts, right, f"{spent / audio:.3f} / {cpu / audio:.3f}"


def joined_rtf(transcriber: Transcriber, clips: list[Path], language: str) -> tuple[str, float]:
    """RTF of all clips as one long recording (0.3 s of silence between sentences)."""
    gap = np.zeros(4800, dtype=np.float32)
    audio = np.concatenate([part for clip in clips for part in (samples_16k(clip), gap)])
    cpu_before = cpu_seconds()
    heard = transcriber.transcribe(audio, language=language)
    cpu = cpu_seconds() - cpu_before
    return (f"{heard.real_time_factor:.3f} / {cpu / heard.audio_seconds:.3f}",
            heard.audio_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=20, help="sentences per language")
    args = parser.parse_args()
    korean, english = KOREAN[: args.limit], ENGLISH[: args.limit]
    load_before = os.getloadavg()[0]
    speaker = Speaker()
    started = time.perf_counter()
    base = Transcriber(threads=args.threads, language="auto", model="base")
    base_load = time.perf_counter() - started
    started = time.perf_counter()
    tiny = Transcriber(threads=args.threads, language="en", model="tiny.en")
    tiny_load = time.perf_counter() - started

    korean_rows, english_rows, long_rows, examples = [], [], [], []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)

        def speak_all(sentences, tag, **voice):
            clips, spent, cpu, audio = [], 0.0, 0.0, 0.0
            for index, sentence in enumerate(sentences):
                out = folder / f"{tag}-{index}.wav"
                cpu_before = cpu_seconds()
                if voice.get("old_piper"):
                    _, seconds, took = piper_reads(speaker, sentence, out)
                else:
                    speech = speaker.speak(sentence, out, voice=voice.get("voice"),
                                           rate=voice.get("rate"))
                    seconds, took = speech.audio_seconds, speech.seconds
                cpu += cpu_seconds() - cpu_before
                clips.append(out)
                spent += took
                audio += seconds
            return clips, f"{spent / audio:.3f} / {cpu / audio:.3f}", audio

        # Korean -------------------------------------------------------------------------
        voices = [
            ("English Piper voice (baseline: before)", dict(old_piper=True)),
            (f"espeak-ng {KOREAN_VOICE}, {KOREAN_RATE} wpm (default)",
             dict(voice=KOREAN_VOICE, rate=KOREAN_RATE)),
            (f"espeak-ng {SECOND_KOREAN_VOICE}, {SECOND_KOREAN_RATE} wpm",
             dict(voice=SECOND_KOREAN_VOICE, rate=SECOND_KOREAN_RATE)),
        ]
        default_korean_clips = None
        for label, voice in voices:
            clips, synth_rtf, audio = speak_all(korean, f"ko{len(korean_rows)}", **voice)
            if voice.get("old_piper"):
                runs = [("Whisper tiny.en (baseline: before)", tiny, "en")]
            else:
                runs = [("Whisper base, language ko", base, "ko"),
                        ("Whisper base, language auto", base, "auto")]
                default_korean_clips = default_korean_clips or clips
            for name, transcriber, language in runs:
                texts, right, rtf = hear(transcriber, clips, language, "ko")
                korean_rows.append([label, name, len(clips),
                                    f"{error_rate(korean, texts, characters):.3f}",
                                    f"{right}/{len(clips)}", f"{audio:.0f}", synth_rtf, rtf])
                if language == "ko":
                    examples += [(label, korean[i], texts[i]) for i in range(min(3, len(texts)))]
                print(korean_rows[-1], flush=True)

        # English ------------------------------------------------------------------------
        clips, synth_rtf, audio = speak_all(english, "en")
        for name, transcriber, language in [
                ("Whisper tiny.en (baseline: before)", tiny, "en"),
                ("Whisper base, language en", base, "en"),
                ("Whisper base, language auto", base, "auto")]:
            texts, right, rtf = hear(transcriber, clips, language, "en")
            english_rows.append(["Piper en_US-joe-medium", name, len(clips),
                                 f"{error_rate(english, texts, words):.3f}",
                                 f"{right}/{len(clips)}", f"{audio:.0f}", synth_rtf, rtf])
            print(english_rows[-1], flush=True)

        # Long recordings --------------------------------------------------------------
        for label, transcriber, source, language in [
                ("English, Whisper tiny.en", tiny, clips, "en"),
                ("English, Whisper base", base, clips, "en"),
                ("Korean (default voice), Whisper base", base, default_korean_clips, "ko")]:
            rtf, seconds = joined_rtf(transcriber, source, language)
            long_rows.append([label, f"{seconds:.0f}", rtf])
            print(long_rows[-1], flush=True)
    load_after = os.getloadavg()[0]

    header = ["speech from", "heard by", "utterances", "{}", "language right", "audio s",
              "synthesis RTF wall / CPU", "transcription RTF wall / CPU"]
    body = "Korean, character error rate (target <= 0.25):\n\n"
    body += table([h.format("CER") for h in header], korean_rows)
    body += "\n\nEnglish, word error rate (target <= 0.10):\n\n"
    body += table([h.format("WER") for h in header], english_rows)
    body += "\n\nOne long recording (all utterances joined), transcription only:\n\n"
    body += table(["recording", "audio s", "transcription RTF wall / CPU"], long_rows)
    body += "\n\nWhat Whisper base heard (language ko), first sentences of each Korean voice:\n\n"
    body += table(["voice", "said", "heard"], [[v, r, h or "(nothing)"] for v, r, h in examples])
    body += (
        f"\n\nTranscription with {args.threads} threads, int8, mindwell's decoding settings "
        "(English greedy; Korean beam 5 with repetition guards); model load "
        f"{base_load:.1f} s (base; the first run also joins its file) and {tiny_load:.1f} s "
        f"(tiny.en). Load average {load_before:.1f} at the start and {load_after:.1f} at the "
        "end on this 2-core machine: with other jobs running the wall-clock RTF is "
        "pessimistic. The CPU RTF (CPU seconds of all threads, and of espeak-ng, per audio "
        "second) hardly depends on the load: on two idle cores the wall RTF lies between "
        "CPU RTF / 2 (both threads busy throughout) and the CPU RTF. RTF below 1 is faster "
        "than real time; 'language right' counts the "
        "utterances transcribed in the language spoken (with a fixed language it is always "
        "right; with auto it is Whisper's detection between English and Korean). Every "
        "utterance is synthesized: no recorded Korean speech is in ../shared/data and no "
        "neural Korean voice ships in a package.")
    print(write_section("speech_roundtrip",
                        "Speech round trip: Korean and English, speak then transcribe", body,
                        "python benchmarks/speech_roundtrip.py"))


if __name__ == "__main__":
    main()
