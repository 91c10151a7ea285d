"""Face emotion: accuracy on FER-2013's private test and speed on 2 cores, in one run.

Accuracy: the shipped network (fer's quantized TFLite, run by ai-edge-litert) against the
majority-class baseline and the published anchors (73.3 % best single network, 65-66 %
typical small CNNs). Speed: the emotion network per face (target <= 10 ms) and the whole
pipeline (Haar detection + emotion) per 640x480 frame (target <= 100 ms), beside detection
alone as the baseline cost.

    python benchmarks/face_emotion.py [--data ../shared/data/fer2013]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np

from _report import median, table, write_section
from mindwell.vision.evaluate import ANCHORS, face_classifier, read_manifest
from mindwell.vision.faces import FaceAnalyzer, load_image


def timed(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(1000 * (time.perf_counter() - started))
    return median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/fer2013"))
    args = parser.parse_args()
    from mindwell.analysis.evaluate import score

    paths, truth = read_manifest(args.data / "private_test_manifest.csv")
    analyzer = FaceAnalyzer(threads=1)
    result = score(face_classifier(analyzer), paths, truth)
    majority, count = Counter(truth).most_common(1)[0]
    accuracy_rows = [
        ["mindwell (fer TFLite, shipped)", f"{result['accuracy']:.1%}",
         f"{result['f1_macro']:.3f}", f"{result['f1_weighted']:.3f}"],
        [f"majority class ({majority})", f"{count / len(truth):.1%}", "-", "-"],
        *[[f"published: {name}", f"{value:.1%}", "-", "-"] for name, value in ANCHORS.items()],
    ]
    per_class = [[label, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}",
                  m["support"]] for label, m in result["per_class"].items()]

    import cv2

    face = load_image(paths[0])
    frame = np.full((480, 640, 3), 120, np.uint8)
    frame[100:320, 200:420] = cv2.resize(face, (220, 220))
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    analyzer.analyze(frame)  # warm-up
    per_face = timed(lambda: analyzer.emotions(cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)), 200)
    detect_only = timed(lambda: analyzer.detect(grey), 30)
    pipeline = timed(lambda: analyzer.analyze(frame), 30)
    speed_rows = [
        ["emotion network, one face (target <= 10 ms)", f"{per_face:.2f}"],
        ["Haar detection only, 640x480 (baseline cost)", f"{detect_only:.1f}"],
        ["detection + emotion, 640x480 frame (target <= 100 ms)", f"{pipeline:.1f}"],
    ]
    body = (
        f"FER-2013 private test, {len(truth)} faces (never used for tuning):\n\n"
        + table(["model", "accuracy", "macro F1", "weighted F1"], accuracy_rows)
        + "\n\n" + table(["class", "precision", "recall", "F1", "support"], per_class)
        + "\n\nSpeed, 1 thread, median:\n\n" + table(["step", "ms"], speed_rows)
    )
    print(write_section("face_emotion", "Face emotion: FER-2013 accuracy and speed", body,
                        "python benchmarks/face_emotion.py"))


if __name__ == "__main__":
    main()
