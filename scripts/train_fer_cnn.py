"""Can the project train a face emotion network that beats the shipped one?

FER-2013's training split is not in ../shared/data; its public test split (3,589 faces) is,
so this trains a small CNN on public_test (90 % train, 10 % validation for early stopping,
seed 42) and reports it on private_test once, beside the shipped fer TFLite network, at the
same speed measure (ms per face, 1 thread). The issue's rule: ship the project's model only
if it is better at similar speed.

    python scripts/train_fer_cnn.py [--data ../shared/data/fer2013] [--epochs 30]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mindwell.vision.evaluate import face_classifier, read_manifest
from mindwell.vision.faces import EMOTIONS, load_image


def load(manifest: Path) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    paths, labels = read_manifest(manifest)
    images = np.stack([cv2.cvtColor(load_image(p), cv2.COLOR_BGR2GRAY) for p in paths])
    return images.astype(np.float32) / 255.0, np.array([EMOTIONS.index(x) for x in labels])


def network() -> nn.Module:
    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                             nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Dropout(0.25))

    return nn.Sequential(block(1, 32), block(32, 64), block(64, 128), nn.Flatten(),
                         nn.Linear(128 * 6 * 6, 256), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(256, len(EMOTIONS)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/fer2013"))
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    torch.manual_seed(42)
    torch.set_num_threads(2)
    x, y = load(args.data / "public_test_manifest.csv")
    order = np.random.default_rng(42).permutation(len(y))
    cut = int(0.9 * len(y))
    train_idx, val_idx = order[:cut], order[cut:]
    xt = torch.tensor(x[:, None]) * 2 - 1
    yt = torch.tensor(y)
    model = network()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    best, best_state = 0.0, None
    for epoch in range(args.epochs):
        model.train()
        for batch in torch.tensor(train_idx)[torch.randperm(len(train_idx))].split(64):
            images = xt[batch]
            flip = torch.rand(len(batch)) < 0.5  # mirrored faces keep their emotion
            images[flip] = images[flip].flip(-1)
            loss = nn.functional.cross_entropy(model(images), yt[batch], label_smoothing=0.1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            accuracy = (model(xt[val_idx]).argmax(1) == yt[val_idx]).float().mean().item()
        if accuracy > best:
            best, best_state = accuracy, {k: v.clone() for k, v in model.state_dict().items()}
        print(f"epoch {epoch + 1}: validation accuracy {accuracy:.3f}")
    model.load_state_dict(best_state)
    model.eval()
    xp, yp = load(args.data / "private_test_manifest.csv")
    with torch.no_grad():
        probs = torch.cat([model(torch.tensor(xp[i:i + 256, None]) * 2 - 1)
                           for i in range(0, len(yp), 256)])
    from sklearn.metrics import f1_score

    predicted = probs.argmax(1).numpy()
    torch.set_num_threads(1)
    one = torch.tensor(xp[:1, None]) * 2 - 1
    with torch.no_grad():
        started = time.perf_counter()
        for _ in range(200):
            model(one)
    ms = 1000 * (time.perf_counter() - started) / 200
    shipped = face_classifier()
    paths, truth = read_manifest(args.data / "private_test_manifest.csv")
    shipped_pred = shipped.predict_proba(paths).argmax(1)
    truth_idx = np.array([EMOTIONS.index(t) for t in truth])
    print(f"project CNN (public_test-trained): accuracy {(predicted == yp).mean():.3f}, "
          f"macro F1 {f1_score(yp, predicted, average='macro'):.3f}, {ms:.2f} ms/face")
    print(f"shipped fer TFLite: accuracy {(shipped_pred == truth_idx).mean():.3f}, "
          f"macro F1 {f1_score(truth_idx, shipped_pred, average='macro'):.3f}")


if __name__ == "__main__":
    main()
