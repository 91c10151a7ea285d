"""Train mindwell's face-emotion CNN and export it as ONNX (run later without torch).

FER-2013 (default): train on the 28,709 training faces, pick the checkpoint and the
test-time flip on public_test, then score private_test once with the exported file.
Your own data (RAF-DB, AffectNet, ... where you have the licence): --train and --val take a
folder with one subfolder per class (ImageFolder style), a path,label CSV or an .npz with
images/labels/label_names. Faces are turned grey and resized to 48x48.

A checkpoint is written after every epoch (OUT/last.pt, OUT/best.pt); rerunning the same
command resumes a cut run. --time-budget MIN schedules the learning rate by wall clock so a
run on a busy machine ends annealed within its budget; otherwise --epochs fixes it.

    python scripts/train_fer_cnn.py --time-budget 85                  # FER-2013, ~1.5 h on 1 core
    python scripts/train_fer_cnn.py --limit 300 --epochs 1 --out runs/fer-tiny   # smoke test
    python scripts/train_fer_cnn.py --train raf/train --val raf/test --test "" \\
        --export runs/raf/face_emotion.onnx
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from mindwell.errors import MindwellError
from mindwell.vision import cnn
from mindwell.vision.faces import EMOTIONS

FER = Path("../shared/data/fer2013")
SHIPPED = Path("src/mindwell/vision/models/face_emotion.onnx")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, default=FER / "train_48x48.npz")
    parser.add_argument("--val", type=Path, default=FER / "public_test_manifest.csv",
                        help="tuning split: picks the checkpoint and the flip ('' for none)")
    parser.add_argument("--test", type=Path, default=FER / "private_test_manifest.csv",
                        help="scored once, with the exported file ('' to skip)")
    parser.add_argument("--out", type=Path, default=Path("runs/fer-cnn"))
    parser.add_argument("--export", type=Path, default=None,
                        help=f"ONNX file to write (default OUT/face_emotion.onnx; the "
                             f"package ships {SHIPPED})")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--time-budget", type=float, default=None, metavar="MIN",
                        help="train for this many minutes, learning rate scheduled by time")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--crop", type=int, default=40)
    parser.add_argument("--widths", default="32,64,128,256")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 was faster than 2 on a busy 2-core machine)")
    parser.add_argument("--limit", type=int, default=None, help="train on a random subset")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--fresh", action="store_true", help="ignore OUT/last.pt")
    return parser.parse_args()


def log(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


def onnx_probs(path: Path, images: np.ndarray) -> np.ndarray:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options,
                                           providers=["CPUExecutionProvider"])
    faces = images.astype(np.float32)[:, None]
    return np.concatenate([session.run(None, {"faces": faces[i:i + 256]})[0]
                           for i in range(0, len(faces), 256)])


def run(args: argparse.Namespace) -> dict:
    torch = cnn._torch()
    started = time.time()
    images, names = cnn.load_faces(args.train, args.limit, args.seed)
    classes = cnn.declared_classes(args.train) or tuple(sorted(set(names)))
    if set(classes) == set(EMOTIONS):
        classes = EMOTIONS  # FER-2013's labels: keep the order the app reads them in
    labels = cnn.encode(names, classes, str(args.train))
    log(f"train: {len(labels)} faces from {args.train}, classes {', '.join(classes)}")
    val_images = val_labels = None
    if str(args.val) not in ("", "."):
        val_images, val_names = cnn.load_faces(args.val)
        val_labels = cnn.encode(val_names, classes, str(args.val))
        log(f"val: {len(val_labels)} faces from {args.val}")
    config = cnn.TrainConfig(epochs=args.epochs, time_budget_min=args.time_budget,
                             batch=args.batch, lr=args.lr, crop=args.crop,
                             widths=tuple(int(w) for w in args.widths.split(",")),
                             seed=args.seed, threads=args.threads, limit=args.limit,
                             classes=classes)
    summary = cnn.train(images, labels, val_images, val_labels, config, args.out,
                        resume=not args.fresh, log=log)
    log(f"trained {summary['epochs']} epochs in {summary['train_minutes']} min")

    best = args.out / ("best.pt" if val_images is not None else "last.pt")
    model, saved = cnn.load_checkpoint(best)
    mean, std = saved["mean"], saved["std"]
    flip, chosen = False, {}
    if val_images is not None:
        xv = (torch.from_numpy(val_images).float()[:, None] / 255.0 - mean) / std
        for option in (False, True):
            scored = cnn.metrics(val_labels, cnn.predict(model, xv, config.crop, option),
                                 classes)
            chosen[option] = scored
            log(f"val ({'flip average' if option else 'one view'}): accuracy "
                f"{scored['accuracy']:.4f}, macro F1 {scored['f1_macro']:.4f}")
        flip = chosen[True]["accuracy"] > chosen[False]["accuracy"]
    export = args.export or args.out / "face_emotion.onnx"
    val_report = chosen.get(flip, {})
    cnn.export_onnx(model, export, classes, mean, std, config.crop, flip, {
        "name": "mindwell-fer-cnn", "trained_on": str(args.train),
        "epochs": saved["state"]["epoch"], "train_minutes": summary["train_minutes"],
        "val_accuracy": round(val_report.get("accuracy", float("nan")), 4),
        "widths": args.widths})
    log(f"exported {export} ({export.stat().st_size / 1e6:.2f} MB), flip average {flip}")
    result = {"classes": classes, "epochs": saved["state"]["epoch"],
              "train_minutes": summary["train_minutes"],
              "wall_minutes": round((time.time() - started) / 60, 1),
              "parameters": sum(p.numel() for p in model.parameters()),
              "onnx": str(export), "onnx_mb": round(export.stat().st_size / 1e6, 2),
              "flip_average": flip, "val": val_report, "history": summary["history"]}
    if str(args.test) not in ("", "."):
        test_images, test_names = cnn.load_faces(args.test)
        truth = cnn.encode(test_names, classes, str(args.test))
        result["test"] = cnn.metrics(truth, onnx_probs(export, test_images), classes)
        log(f"test (exported file, scored once): accuracy {result['test']['accuracy']:.4f}, "
            f"macro F1 {result['test']['f1_macro']:.4f}")
    (args.out / "summary.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def main() -> None:
    try:
        run(arguments())
    except MindwellError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
