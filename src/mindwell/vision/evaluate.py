"""`mindwell eval fer`: a face emotion model on a FER-2013 manifest (path,label per row).

FER-2013 images are already 48x48 grey face crops, so they go straight to the emotion
network (no detection), as every published FER-2013 number does. The report reuses the
classifier report: accuracy, weighted and macro F1, per-class table, confusion matrix and
calibration. ``--model`` picks the network: mindwell's CNN (default), fer's, or an .onnx.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mindwell.analysis.evaluate import Classifier, score, write_report
from mindwell.errors import MindwellError
from mindwell.vision.cnn import manifest_rows
from mindwell.vision.faces import EMOTIONS, FaceAnalyzer, load_image

# Published anchors on the FER-2013 private test set.
ANCHORS = {"best single network (Khaireddin & Chen 2021)": 0.733,
           "typical small CNN": 0.655}


def read_manifest(path: Path, limit: int | None = None) -> tuple[list[Path], list[str]]:
    path = Path(path)
    if not path.exists():
        raise MindwellError(f"Manifest not found: {path}",
                            "Pass a CSV with columns path,label (paths relative to it).")
    rows = manifest_rows(path)
    rows = rows[:limit] if limit else rows
    unknown = sorted({label for _, label in rows} - set(EMOTIONS))
    if unknown:
        raise MindwellError(f"{path} has labels the model does not know: {unknown}.",
                            f"Use FER-2013's labels: {', '.join(EMOTIONS)}.")
    return [image for image, _ in rows], [label for _, label in rows]


def face_classifier(analyzer: FaceAnalyzer | None = None) -> Classifier:
    analyzer = analyzer or FaceAnalyzer()
    labels = EMOTIONS if set(analyzer.labels) == set(EMOTIONS) else analyzer.labels

    def predict(paths: list[Path]) -> np.ndarray:
        out = []
        for path in paths:
            emotions = analyzer.analyze(load_image(path), cropped=True)[0].emotions
            out.append([emotions[label] for label in labels])
        return np.array(out)

    return Classifier(analyzer.model_name, labels, predict)


def evaluate_fer(manifest: Path, out_dir: Path, limit: int | None = None,
                 model: str | Path | None = None) -> tuple[Path, dict]:
    paths, truth = read_manifest(manifest, limit)
    classifier = face_classifier(FaceAnalyzer(model=model))
    result = score(classifier, paths, truth)
    report = write_report({classifier.name: (classifier, result)}, str(manifest), out_dir)
    lines = ["", "Published anchors on the FER-2013 private test set:"]
    lines += [f"- {name}: accuracy {value:.1%}" for name, value in ANCHORS.items()]
    report.write_text(report.read_text() + "\n".join(lines) + "\n")
    return report, result
