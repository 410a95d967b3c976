"""Reader of ObjectNet 1.0 images, its label mappings, and its framed-image loader."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from harness.data import layout
from harness.data.fileio import MalformedDataError, read_json, require_dir, sub_dirs
from harness.data.folders import images_in
from harness.data.images import load_rgb
from harness.data.image_sets import ClassificationSet

FRAME_PX = 2  # ObjectNet images carry a 2-pixel border that is not part of the photo


def objectnet_dir(data_root: Path) -> Path:
    """``<data_root>/objectnet-1.0``."""
    return Path(data_root) / layout.OBJECTNET


def read_objectnet(data_root: Path, folders: list[str] | None = None) -> ClassificationSet:
    """Read ``objectnet-1.0/images/<folder>/<hash>.png``; label = index of the folder in ``folders``.

    ``folders=None`` takes every folder (sorted; 313 in the release). Given ``folders`` must
    all exist; other folders are skipped. ``classes`` are the folder names (their display
    labels come from ``read_objectnet_folder_labels``). Load images with
    ``load_objectnet_image``, which removes the border.
    """
    image_root = require_dir(objectnet_dir(data_root) / "images", "ObjectNet images/<folder>/*.png")
    folders = sub_dirs(image_root) if folders is None else list(folders)
    samples = []
    for label, folder in enumerate(folders):
        sub = require_dir(image_root / folder, f"ObjectNet class folder {folder!r}")
        samples.extend((path, label) for path in images_in(sub))
    if not samples:
        raise MalformedDataError(image_root, "no images in the selected folders; expected <folder>/<hash>.png")
    return ClassificationSet(name="objectnet", root=image_root, classes=folders, samples=samples)


def read_objectnet_folder_labels(data_root: Path) -> dict[str, str]:
    """``mappings/folder_to_objectnet_label.json``: folder name -> ObjectNet display label."""
    path = objectnet_dir(data_root) / "mappings" / "folder_to_objectnet_label.json"
    return _str_map(path, read_json(path, "a JSON object folder name -> ObjectNet label"))


def read_objectnet_to_imagenet(data_root: Path) -> dict[str, list[str]]:
    """``mappings/objectnet_to_imagenet_1k.json``: ObjectNet label -> its ImageNet-1k class names.

    The file joins several ImageNet classes with "; " (e.g. "analog clock; digital clock");
    they are returned as a list.
    """
    path = objectnet_dir(data_root) / "mappings" / "objectnet_to_imagenet_1k.json"
    mapping = _str_map(path, read_json(path, "a JSON object ObjectNet label -> '; '-joined ImageNet names"))
    return {label: [name.strip() for name in names.split(";") if name.strip()] for label, names in mapping.items()}


def load_objectnet_image(path: Path, frame: int = FRAME_PX) -> Image.Image:
    """The RGB image at ``path`` with its ``frame``-pixel border cropped on every side."""
    image = load_rgb(path)
    width, height = image.size
    if width <= 2 * frame or height <= 2 * frame:
        raise MalformedDataError(path, f"image {width}x{height} is too small to crop a {frame}-px frame")
    return image.crop((frame, frame, width - frame, height - frame))


def _str_map(path: Path, data: object) -> dict[str, str]:
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise MalformedDataError(path, "expected a JSON object mapping strings to strings")
    return data
