"""Faces: the emotion networks (mindwell's CNN, the default, and fer's) on real FER-2013
faces, detection in a frame, bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mindwell.errors import MindwellError
from tests.conftest import SHARED_DATA, require_package

for module in ("cv2", "onnxruntime"):
    require_package(module)

from mindwell.vision.evaluate import evaluate_fer, read_manifest  # noqa: E402
from mindwell.vision.faces import EMOTIONS, FaceAnalyzer, decode_image, load_image  # noqa: E402

FER = SHARED_DATA / "fer2013"


@pytest.fixture(scope="module")
def analyzer():
    return FaceAnalyzer()


def _analyzer(model: str) -> FaceAnalyzer:
    if model == "fer":
        for module in ("ai_edge_litert", "fer"):
            require_package(module)
    return FaceAnalyzer(model=model)


def _face(label: str) -> Path:
    if not (FER / "smoke_70").exists():
        pytest.skip("../shared/data/fer2013 is absent")
    return sorted((FER / "smoke_70" / label).iterdir())[0]


def _frame_with(face_path: Path, size=(480, 640)) -> np.ndarray:
    import cv2

    face = cv2.resize(load_image(face_path), (220, 220))
    frame = np.full((*size, 3), 120, np.uint8)
    frame[100:320, 200:420] = face
    return frame


def test_a_face_in_a_webcam_sized_frame_is_found_with_three_emotions(analyzer):
    faces = analyzer.analyze(_frame_with(_face("happy")))
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert 170 < x < 240 and 70 < y < 140 and 150 < w < 290 and 150 < h < 290
    top = faces[0].top3
    assert len(top) == 3 and top[0][0] == "happy"
    assert abs(sum(faces[0].emotions.values()) - 1) < 1e-3
    assert set(faces[0].emotions) == set(EMOTIONS)


def test_a_huge_image_is_downscaled_and_boxes_map_back(analyzer):
    import cv2

    frame = cv2.resize(_frame_with(_face("happy")), (3200, 2400))
    faces = analyzer.analyze(frame)
    assert len(faces) == 1
    assert 850 < faces[0].box[0] < 1200  # 5x the box in the 640-wide frame


def test_no_face_is_an_empty_list(analyzer):
    assert analyzer.analyze(np.full((480, 640, 3), 120, np.uint8)) == []


def test_corrupt_empty_and_missing_images_are_clear_errors(tmp_path):
    with pytest.raises(MindwellError, match="not an image"):
        decode_image(b"not a picture", "x.jpg")
    with pytest.raises(MindwellError, match="empty"):
        decode_image(b"", "x.jpg")
    with pytest.raises(MindwellError, match="not found"):
        load_image(tmp_path / "nope.png")


def test_cli_json_and_no_face_exit_zero(tmp_path):
    import cv2

    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 90, np.uint8))
    result = subprocess.run([sys.executable, "-m", "mindwell", "analyze-face", str(blank),
                             "--json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"faces": []}
    plain = subprocess.run([sys.executable, "-m", "mindwell", "analyze-face", str(blank)],
                           capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0 and "No face found" in plain.stdout
    bad = tmp_path / "bad.jpg"
    bad.write_text("hello")
    broken = subprocess.run([sys.executable, "-m", "mindwell", "analyze-face", str(bad)],
                            capture_output=True, text=True, timeout=120)
    assert broken.returncode == 2 and "not an image" in broken.stderr
    assert "Traceback" not in broken.stderr


@pytest.mark.parametrize("model", ["mindwell", "fer"])
def test_eval_fer_on_the_smoke_set_writes_a_report(tmp_path, model):
    if not (FER / "smoke_70_manifest.csv").exists():
        pytest.skip("../shared/data/fer2013 is absent")
    name = _analyzer(model).model_name
    report, result = evaluate_fer(FER / "smoke_70_manifest.csv", tmp_path, model=model)
    assert result["n"] == 70
    # 10 faces per class; both networks score ~58-65 % on FER-2013's private test.
    assert 0.4 < result["accuracy"] < 0.95
    assert set(result["per_class"]) == set(EMOTIONS)
    text = report.read_text()
    assert "f1_macro" in text and "73.3%" in text and name in text
    assert (tmp_path / f"confusion_{name}.png").stat().st_size > 5_000


def test_manifest_problems_are_named(tmp_path):
    bad = tmp_path / "m.csv"
    bad.write_text("file,emotion\na.png,happy\n")
    with pytest.raises(MindwellError, match="path, label|label, path|path"):
        read_manifest(bad)
    odd = tmp_path / "n.csv"
    odd.write_text("path,label\na.png,contempt\n")
    with pytest.raises(MindwellError, match="contempt"):
        read_manifest(odd)


def _astronaut_bgr():
    pytest.importorskip("skimage")
    import cv2
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.mark.parametrize("model", ["mindwell", "fer"])
def test_a_real_photo_the_astronaut_smiles(model):
    faces = _analyzer(model).analyze(_astronaut_bgr())
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert 150 < x < 210 and 40 < y < 100 and 70 < w < 130 and w == h
    assert faces[0].top3[0][0] == "happy"


def test_webcam_timeline_keeps_labels_only_and_summarises(analyzer, tmp_path):
    import cv2

    from mindwell.vision.webcam import FaceTimeline

    video = tmp_path / "session.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (512, 512))
    for _ in range(4):
        writer.write(_astronaut_bgr())
    writer.write(np.full((512, 512, 3), 40, np.uint8))  # the person stepped away
    writer.release()
    timeline = FaceTimeline(str(video), interval=0.0, analyzer=analyzer).start()
    timeline._thread.join(timeout=30)
    timeline.stop()
    assert len(timeline.snapshots) == 5
    assert [s.top3[0][0] for s in list(timeline.snapshots)[:4]] == ["happy"] * 4
    assert timeline.snapshots[-1].top3 == []
    assert "mostly happy (4 of 4 webcam snapshots)" in timeline.summary()
    assert set(timeline.snapshots[0].to_dict()) == {"time", "top3"}  # no pixels kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["session.avi"]  # nothing written


def test_a_missing_camera_is_a_clear_error(analyzer, tmp_path):
    from mindwell.vision.webcam import FaceTimeline

    with pytest.raises(MindwellError, match="Cannot open"):
        FaceTimeline(str(tmp_path / "no-camera.avi"), analyzer=analyzer).start()
