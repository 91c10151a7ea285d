"""mindwell's own face-emotion CNN: data, network, augmentation, training and ONNX export.

Training needs torch (the ``train`` extra); the exported ``.onnx`` file runs with
onnxruntime alone (``mindwell.vision.faces``), so the default install stays CPU-sized and
never imports TensorFlow. The exported graph holds the whole preprocessing after the resize
(scaling, normalisation, centre crop, flip averaging), so inference and training see faces
the same way: grey, resized to 48x48, then the graph does the rest.

Data (``load_faces``): FER-2013's ``train_48x48.npz`` (arrays ``images``, ``labels``,
``label_names``), a manifest CSV (``path,label``, paths relative to the CSV) or an
ImageFolder-style directory with one subfolder of images per class (RAF-DB, AffectNet or
your own faces, where you have the licence).
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mindwell.errors import MindwellError
from mindwell.vision.faces import FACE_SIZE as IMAGE_SIZE  # every face: a 48x48 grey square
from mindwell.vision.faces import resize_face

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
TRAIN_HINT = "Install the training extra: pip install 'mindwell[train,vision]'"


def _torch():
    try:
        import torch
    except ImportError as err:
        raise MindwellError("Training the face network needs torch.", TRAIN_HINT) from err
    return torch


# ---------------------------------------------------------------- data


def _grey48(path: Path) -> np.ndarray:
    import cv2

    from mindwell.vision.faces import load_image

    image = load_image(path)
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return resize_face(grey)


def _folder_rows(root: Path) -> list[tuple[Path, str]]:
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    rows = [(image, folder.name) for folder in classes for image in sorted(folder.iterdir())
            if image.suffix.lower() in IMAGE_SUFFIXES]
    if not rows:
        raise MindwellError(f"{root} has no class subfolders with images.",
                            "Lay the faces out as DIR/<label>/<image>.jpg (ImageFolder style), "
                            "or pass an .npz or a path,label CSV manifest.")
    return rows


def manifest_rows(path: Path) -> list[tuple[Path, str]]:
    """(image path, label) rows of a path,label CSV, paths relative to the CSV."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"path", "label"} - set(reader.fieldnames or [])
        if missing:
            raise MindwellError(f"{path} lacks the column(s) {', '.join(sorted(missing))}.",
                                "The manifest needs a header row: path,label")
        return [(path.parent / row["path"], row["label"]) for row in reader]


def load_faces(source: Path, limit: int | None = None, seed: int = 0
               ) -> tuple[np.ndarray, list[str]]:
    """(images uint8 (N, 48, 48), label names per image) from an .npz, CSV or folder.

    ``limit`` keeps a random subset (for quick trials), the same one for the same seed.
    """
    source = Path(source)
    if not source.exists():
        raise MindwellError(f"Training data not found: {source}",
                            "Pass an .npz (images, labels, label_names), a path,label CSV "
                            "or a folder with one subfolder per class.")
    if source.suffix == ".npz":
        with np.load(source, allow_pickle=False) as data:
            missing = {"images", "labels", "label_names"} - set(data.files)
            if missing:
                raise MindwellError(f"{source} lacks the array(s) {sorted(missing)}.",
                                    "The .npz needs images (N,H,W uint8), labels (N ints) "
                                    "and label_names.")
            images, codes = data["images"], data["labels"].astype(int)
            names = [str(n) for n in data["label_names"]]
        order = _subset(len(codes), limit, seed)
        images = images[order]
        if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            images = np.stack([resize_face(face) for face in images])
        return images.astype(np.uint8), [names[c] for c in codes[order]]
    rows = manifest_rows(source) if source.suffix == ".csv" else _folder_rows(source)
    rows = [rows[i] for i in _subset(len(rows), limit, seed)]
    images = np.stack([_grey48(path) for path, _ in rows])
    return images, [label for _, label in rows]


def declared_classes(source: Path) -> tuple[str, ...] | None:
    """The class names an .npz declares (some may have no face in a --limit subset)."""
    if Path(source).suffix != ".npz":
        return None
    with np.load(source, allow_pickle=False) as data:
        return tuple(str(n) for n in data["label_names"]) if "label_names" in data else None


def _subset(n: int, limit: int | None, seed: int) -> np.ndarray:
    if not limit or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:limit])


def encode(labels: list[str], classes: tuple[str, ...], source: str) -> np.ndarray:
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise MindwellError(f"{source} has labels the training set does not: {unknown}.",
                            f"Use the training labels: {', '.join(classes)}.")
    index = {name: i for i, name in enumerate(classes)}
    return np.array([index[label] for label in labels], dtype=np.int64)


# ---------------------------------------------------------------- network


def network(classes: int = 7, widths: tuple[int, ...] = (32, 64, 128, 256), convs: int = 2,
            dropout: float = 0.3):
    """A VGG-style CNN: stages of 3x3 conv + BatchNorm + ReLU, max-pooling between stages,
    global average pooling and one linear layer (any input size works)."""
    from torch import nn

    layers: list = []
    channels = 1
    for stage, width in enumerate(widths):
        for _ in range(convs):
            layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False),
                       nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            channels = width
        if stage < len(widths) - 1:
            layers.append(nn.MaxPool2d(2))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
               nn.Linear(channels, classes)]
    return nn.Sequential(*layers)


def augment(x, crop: int, rotate: float = 10.0, scale: float = 0.1, shift: float = 4.0,
            erase: float = 0.25, generator=None):
    """A batch (N,1,48,48) of normalised faces, randomly rotated, scaled, shifted, mirrored,
    cropped to ``crop`` (one resampling), jittered in brightness/contrast and partly erased."""
    torch = _torch()
    from torch.nn import functional

    n, size = x.shape[0], x.shape[-1]

    def uniform(low, high):
        return low + (high - low) * torch.rand(n, generator=generator)

    angle = uniform(-1, 1) * math.radians(rotate)
    zoom = uniform(1 - scale, 1 + scale)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    ratio = crop / size
    cos, sin = torch.cos(angle) * ratio / zoom, torch.sin(angle) * ratio / zoom
    tx, ty = (uniform(-1, 1) * shift / (size / 2) for _ in range(2))
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1),
                         torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = functional.affine_grid(theta, [n, 1, crop, crop], align_corners=False)
    out = functional.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
    out = out * uniform(0.8, 1.2)[:, None, None, None] + uniform(-0.2, 0.2)[:, None, None, None]
    if erase > 0:  # random erasing: a rectangle of 2-20 % of the face set to the mean
        area = uniform(0.02, 0.2) * crop * crop
        aspect = torch.exp(uniform(math.log(0.3), math.log(3.3)))
        h = (area * aspect).sqrt().clamp(1, crop).long()
        w = (area / aspect).sqrt().clamp(1, crop).long()
        y0 = (uniform(0, 1) * (crop - h + 1)).long()
        x0 = (uniform(0, 1) * (crop - w + 1)).long()
        steps = torch.arange(crop)
        rows = (steps[None] >= y0[:, None]) & (steps[None] < (y0 + h)[:, None])
        cols = (steps[None] >= x0[:, None]) & (steps[None] < (x0 + w)[:, None])
        chosen = torch.rand(n, generator=generator) < erase
        mask = rows[:, :, None] & cols[:, None, :] & chosen[:, None, None]
        out = out.masked_fill(mask[:, None], 0.0)
    return out


def centre(x, crop: int):
    offset = (x.shape[-1] - crop) // 2
    return x[..., offset:offset + crop, offset:offset + crop]


def deployable(model, mean: float, std: float, crop: int, flip: bool):
    """The trained network wrapped with its preprocessing: grey 0-255 (N,1,48,48) in,
    class probabilities out."""
    torch = _torch()

    class Deployed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, faces):
            x = centre((faces / 255.0 - mean) / std, crop)
            if not flip:
                return torch.softmax(self.model(x), dim=1)
            # Mirrored faces keep their emotion: both views in one batch, probabilities averaged.
            probs = torch.softmax(self.model(torch.cat([x, x.flip(-1)])), dim=1)
            return (probs[: x.shape[0]] + probs[x.shape[0]:]) / 2

    return Deployed().eval()


# ---------------------------------------------------------------- training


@dataclass
class TrainConfig:
    epochs: int = 30
    time_budget_min: float | None = None  # schedule by wall clock instead of epochs
    batch: int = 128
    lr: float = 0.05  # peak learning rate of SGD with Nesterov momentum
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup: float = 0.15  # share of the schedule spent warming up (one-cycle)
    label_smoothing: float = 0.1
    crop: int = 40
    widths: tuple[int, ...] = (32, 64, 128, 256)
    convs: int = 2
    dropout: float = 0.3
    rotate: float = 10.0
    scale: float = 0.1
    erase: float = 0.25
    seed: int = 42
    threads: int = 1
    limit: int | None = None
    classes: tuple[str, ...] = field(default_factory=tuple)


def lr_at(progress: float, config: TrainConfig) -> float:
    """One-cycle: linear warm-up from lr/25, then cosine down to zero."""
    progress = min(max(progress, 0.0), 1.0)
    if progress < config.warmup:
        return config.lr * (0.04 + 0.96 * progress / config.warmup)
    tail = (progress - config.warmup) / max(1e-9, 1 - config.warmup)
    return config.lr * 0.5 * (1 + math.cos(math.pi * tail))


def predict(model, x, crop: int, flip: bool = False, batch: int = 512) -> np.ndarray:
    torch = _torch()
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch):
            chunk = centre(x[start:start + batch], crop)
            probs = torch.softmax(model(chunk), 1)
            if flip:
                probs = (probs + torch.softmax(model(chunk.flip(-1)), 1)) / 2
            out.append(probs)
    return torch.cat(out).numpy()


def metrics(truth: np.ndarray, probs: np.ndarray, classes: tuple[str, ...]) -> dict:
    predicted = probs.argmax(1)
    k = len(classes)
    confusion = np.zeros((k, k), dtype=int)
    np.add.at(confusion, (truth, predicted), 1)
    per_class, f1s, recalls = {}, [], []
    for i, name in enumerate(classes):
        tp = confusion[i, i]
        precision = tp / max(1, confusion[:, i].sum())
        recall = tp / max(1, confusion[i].sum())
        f1 = 2 * precision * recall / max(1e-12, precision + recall)
        per_class[name] = {"precision": float(precision), "recall": float(recall),
                           "f1": float(f1), "support": int(confusion[i].sum())}
        if confusion[i].sum():
            f1s.append(f1)
            recalls.append(recall)
    return {"n": len(truth), "accuracy": float((predicted == truth).mean()),
            "f1_macro": float(np.mean(f1s)), "balanced_accuracy": float(np.mean(recalls)),
            "per_class": per_class, "confusion": confusion.tolist()}


def _save(state: dict, path: Path) -> None:
    torch = _torch()
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a run cut mid-write keeps the previous checkpoint


def train(train_images: np.ndarray, train_labels: np.ndarray,
          val_images: np.ndarray | None, val_labels: np.ndarray | None,
          config: TrainConfig, out_dir: Path, resume: bool = True,
          log: Callable[[str], None] = print) -> dict:
    """Train with checkpoints after every epoch (``last.pt``, ``best.pt`` by validation
    accuracy) and resume from ``last.pt`` when it exists. Returns the run summary."""
    torch = _torch()
    from torch import nn

    torch.set_num_threads(config.threads)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    classes = config.classes
    mean = float(train_images.mean() / 255.0)
    std = float(train_images.std() / 255.0)
    xt = (torch.from_numpy(train_images).float()[:, None] / 255.0 - mean) / std
    yt = torch.from_numpy(train_labels)
    xv = yv = None
    if val_images is not None:
        xv = (torch.from_numpy(val_images).float()[:, None] / 255.0 - mean) / std
        yv = np.asarray(val_labels)

    torch.manual_seed(config.seed)
    model = network(len(classes), config.widths, config.convs, config.dropout)
    model = model.to(memory_format=torch.channels_last)
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = torch.optim.SGD([{"params": decay, "weight_decay": config.weight_decay},
                                 {"params": rest, "weight_decay": 0.0}],
                                lr=config.lr, momentum=config.momentum, nesterov=True)
    generator = torch.Generator().manual_seed(config.seed)
    state = {"epoch": 0, "step": 0, "elapsed": 0.0, "history": [], "best": -1.0}
    last = out_dir / "last.pt"
    if resume and last.exists():
        saved = torch.load(last, weights_only=False)
        if saved["config"] != asdict(config):
            raise MindwellError(f"{last} was trained with other settings.",
                                "Use the same options to resume, or --fresh to start over "
                                "(or another --out).")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        generator.set_state(saved["generator"])
        state = saved["state"]
        log(f"resumed from {last}: epoch {state['epoch']}, {state['elapsed'] / 60:.1f} min "
            "trained")

    steps_per_epoch = math.ceil(len(yt) / config.batch)
    total_steps = config.epochs * steps_per_epoch
    budget = config.time_budget_min * 60 if config.time_budget_min else None

    def progress() -> float:
        return state["elapsed"] / budget if budget else state["step"] / total_steps

    def finished() -> bool:
        return progress() >= 1.0 or (not budget and state["epoch"] >= config.epochs)

    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    while not finished():
        model.train()
        started = time.perf_counter()
        order = torch.randperm(len(yt), generator=generator)
        seen = correct = 0
        loss_sum = 0.0
        for batch in order.split(config.batch):
            if len(batch) < 2:
                continue  # BatchNorm needs two faces
            step_start = time.perf_counter()
            lr = lr_at(progress(), config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            images = augment(xt[batch], config.crop, config.rotate, config.scale,
                             erase=config.erase, generator=generator)
            images = images.contiguous(memory_format=torch.channels_last)
            logits = model(images)
            loss = criterion(logits, yt[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(batch)
            correct += int((logits.argmax(1) == yt[batch]).sum())
            loss_sum += loss.item() * len(batch)
            state["step"] += 1
            state["elapsed"] += time.perf_counter() - step_start
            if budget and progress() >= 1.0:
                break  # the wall-clock budget is spent; the schedule has reached zero
        state["epoch"] += 1
        row = {"epoch": state["epoch"], "epoch_s": round(time.perf_counter() - started, 1),
               "train_loss": round(loss_sum / max(1, seen), 4),
               "train_accuracy": round(correct / max(1, seen), 4), "lr_end": round(lr, 5),
               "elapsed_min": round(state["elapsed"] / 60, 2), "faces": seen}
        if xv is not None:
            scored = metrics(yv, predict(model, xv, config.crop), classes)
            row.update(val_accuracy=round(scored["accuracy"], 4),
                       val_f1_macro=round(scored["f1_macro"], 4))
        state["history"].append(row)
        log(json.dumps(row))
        checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "generator": generator.get_state(), "state": state,
                      "config": asdict(config), "mean": mean, "std": std}
        score = row.get("val_accuracy", row["train_accuracy"])
        if score > state["best"]:
            state["best"] = score
            _save(checkpoint, out_dir / "best.pt")
        _save(checkpoint, last)
    return {"epochs": state["epoch"], "train_minutes": round(state["elapsed"] / 60, 1),
            "history": state["history"], "mean": mean, "std": std}


def load_checkpoint(path: Path):
    """(model in eval mode, saved checkpoint dict) from a ``.pt`` written by ``train``."""
    torch = _torch()
    saved = torch.load(path, weights_only=False)
    config = saved["config"]
    model = network(len(config["classes"]), tuple(config["widths"]), config["convs"],
                    config["dropout"])
    model.load_state_dict(saved["model"])
    return model.eval(), saved


def export_onnx(model, path: Path, classes: tuple[str, ...], mean: float, std: float,
                crop: int, flip: bool, metadata: dict | None = None) -> Path:
    """Write the network with its preprocessing as ONNX (opset 17, dynamic batch)."""
    torch = _torch()
    try:
        import onnx
    except ImportError as err:
        raise MindwellError("Exporting needs the onnx package.", "pip install onnx") from err
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapped = deployable(model.eval().to(memory_format=torch.contiguous_format), mean, std,
                         crop, flip)
    example = torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE)
    with warnings.catch_warnings():  # the TorchScript exporter warns it is the legacy one
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(wrapped, (example,), str(path), input_names=["faces"],
                          output_names=["probabilities"], opset_version=17, dynamo=False,
                          dynamic_axes={"faces": {0: "batch"}, "probabilities": {0: "batch"}})
    proto = onnx.load(str(path))
    info = {"labels": json.dumps(list(classes)), "image_size": str(IMAGE_SIZE),
            "input": "grey 0-255, resized to 48x48, shape (N,1,48,48) float32",
            "crop": str(crop), "flip_average": str(flip), "mean": f"{mean:.6f}",
            "std": f"{std:.6f}", **{k: str(v) for k, v in (metadata or {}).items()}}
    for key, value in info.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
    return path
