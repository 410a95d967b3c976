"""Small hand-made data for the classification-task tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import nn

from harness.tasks.features import Features

BG_CLASSES = ("00_dog", "01_bird", "02_wheeled vehicle")
# Per class: background colour and object colour (distinct from every background colour).
_BG = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200]], np.float32)
_FG = np.array([[240, 240, 0], [0, 240, 240], [240, 0, 240]], np.float32)


def gaussian_features(n_per: int, seed: int, n_classes: int = 4, dim: int = 64, sep: float = 5.0) -> Features:
    """Class-conditional Gaussians, separable along the class axes, with large nuisance
    directions that leak into the informative ones (so a heavily shrunk head fails)."""
    g = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for k in range(n_classes):
        z = torch.randn(n_per, dim, generator=g)
        z[:, n_classes:n_classes + 4] *= 10.0
        z[:, :n_classes] += 0.9 * z[:, n_classes:2 * n_classes]
        z[:, k] += sep
        xs.append(z)
        ys.append(torch.full((n_per,), k))
    return Features(torch.cat(xs), torch.cat(ys))


def write_image_folder(root: Path, classes: list[str], n_per: int, size: int = 24, seed: int = 0) -> None:
    """``root/<class>/<i>.png``: noise images whose mean colour depends on the class."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n_per):
            img = rng.normal(60 + 60 * c, 30, (size, size, 3)).clip(0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / name / f"{i}.png")


def backbone_file(path: Path, seed: int = 0) -> Path:
    """A ResNet-18 state dict without ``fc`` (the exported backbone format)."""
    torch.manual_seed(seed)
    state = {k: v for k, v in torchvision.models.resnet18().state_dict().items() if not k.startswith("fc.")}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def scene(fg_class: int, bg_class: int, rng: np.random.Generator, size: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """A noisy background of ``bg_class``'s colour with a square object of ``fg_class``'s
    colour at a random place; returns the image (uint8) and the object mask."""
    img = _BG[bg_class] + rng.normal(0, 25, (size, size, 3))
    mask = np.zeros((size, size), bool)
    side = int(rng.integers(8, 12))
    y, x = rng.integers(0, size - side, 2)
    mask[y:y + side, x:x + side] = True
    img[mask] = _FG[fg_class] + rng.normal(0, 25, (int(mask.sum()), 3))
    return img.clip(0, 255).astype(np.uint8), mask


def write_bg_challenge(root: Path, n_train: int = 30, n_val: int = 20, seed: int = 0) -> Path:
    """A 3-class Backgrounds Challenge tree: original/{train,val} (background matches the
    class), only_fg/val (black background), mixed_same/val (a background of the same class)
    and mixed_rand/val (the background of a random other class)."""
    rng = np.random.default_rng(seed)
    base = root / "bg_challenge"
    n_cls = len(BG_CLASSES)
    plans = {("original", "train"): lambda c: (c, c, False), ("original", "val"): lambda c: (c, c, False),
             ("only_fg", "val"): lambda c: (c, c, True), ("mixed_same", "val"): lambda c: (c, c, False),
             ("mixed_rand", "val"): lambda c: (c, int((c + rng.integers(1, n_cls)) % n_cls), False)}
    for (variant, split), plan in plans.items():
        for c, name in enumerate(BG_CLASSES):
            folder = base / variant / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n_train if split == "train" else n_val):
                fg, bg, black = plan(c)
                img, mask = scene(fg, bg, rng)
                if black:
                    img[~mask] = 0
                Image.fromarray(img).save(folder / f"{i}.png")
    return root


class SmallConvNet(nn.Module):
    """Two conv layers, global average pooling and a linear classifier; its "features"
    are the classifier's logits, so they carry only what the training task rewarded."""

    def __init__(self, n_classes: int = 3):
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1),
                                   nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)


def train_on_parts(keep: str, seed: int = 0, n: int = 90, steps: int = 80) -> nn.Module:
    """A SmallConvNet trained to classify scenes by one part: ``keep="bg"`` sees only the
    background (object pixels zeroed; background-biased), ``keep="fg"`` sees objects over
    the background of a random class (object-focused). Input: ImageNet-normalised images."""
    rng = np.random.default_rng(seed + 100)
    torch.manual_seed(seed)
    n_cls = len(BG_CLASSES)
    imgs, labels = [], []
    for i in range(n):
        c = i % n_cls
        img, mask = scene(c, c if keep == "bg" else int(rng.integers(n_cls)), rng)
        if keep == "bg":
            img[mask] = 0
        imgs.append(img)
        labels.append(c)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = (torch.tensor(np.stack(imgs)).permute(0, 3, 1, 2).float() / 255 - mean) / std
    y = torch.tensor(labels)
    net = SmallConvNet(n_cls)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return net.eval()
