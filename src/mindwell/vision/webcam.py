"""Opt-in webcam snapshots: a face-emotion timeline that keeps labels only, never images.

A background thread grabs one frame every few seconds from a camera (or a video file, for
tests and recorded sessions), runs the face analyzer, keeps the largest face's top three
emotions with a timestamp, and drops the frame. The counselor gets a one-line summary of the
last minute ("the person's face looked mostly sad"), and the session log the timeline.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass

from mindwell.errors import MindwellError
from mindwell.vision.faces import FaceAnalyzer


@dataclass
class Snapshot:
    time: float
    top3: list[tuple[str, float]]  # empty when no face was in view

    def to_dict(self) -> dict:
        return {"time": self.time,
                "top3": [{"emotion": e, "probability": round(p, 3)} for e, p in self.top3]}


class FaceTimeline:
    def __init__(self, source: int | str = 0, interval: float = 3.0,
                 analyzer: FaceAnalyzer | None = None, keep: int = 1200) -> None:
        self.source, self.interval = source, interval
        self.analyzer = analyzer or FaceAnalyzer()
        self.snapshots: deque[Snapshot] = deque(maxlen=keep)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._capture = None

    def record(self, frame) -> Snapshot:
        """Analyze one frame and keep only its labels."""
        faces = self.analyzer.analyze(frame)
        snapshot = Snapshot(time.time(), faces[0].top3 if faces else [])
        self.snapshots.append(snapshot)
        return snapshot

    def start(self) -> FaceTimeline:
        import cv2

        self._capture = cv2.VideoCapture(self.source)
        if not self._capture.isOpened():
            raise MindwellError(f"Cannot open the camera or video '{self.source}'.",
                                "Check that a webcam is connected (or pass a video file), "
                                "or chat without --webcam.")
        self._thread = threading.Thread(target=self._run, name="webcam", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            ok, frame = self._capture.read()
            if not ok:
                break  # camera unplugged or the video ended
            self.record(frame)
            del frame  # only the labels outlive this loop
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._capture is not None:
            self._capture.release()

    def summary(self, window: float = 60.0) -> str:
        """A line for the counselor about the face over the last ``window`` seconds."""
        recent = [s for s in self.snapshots if s.time >= time.time() - window]
        seen = [s.top3[0][0] for s in recent if s.top3]
        if not seen:
            return ""
        counts = Counter(seen).most_common()
        main, count = counts[0]
        line = f"mostly {main} ({count} of {len(seen)} webcam snapshots)"
        if len(counts) > 1:
            line += ", also " + ", ".join(label for label, _ in counts[1:3])
        return ("Context from the person's opt-in webcam, not something they said; mention it "
                f"gently only if it helps: their face looked {line} in the last minute.")
