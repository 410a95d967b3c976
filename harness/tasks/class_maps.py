"""Class mappings of the distribution-shift sets (``benchmarks/class_maps/*.json``).

A mapping names a label space (``classes``, in the order of the classifier's outputs)
and, for each label, the classes of the shifted dataset whose images carry that label
(``targets``; an empty list leaves a label with no test image). The files are generated
from the class tables in ``benchmarks/class_maps/sources/`` by :func:`build_from_reference`
(and :func:`build_imagenet_r_9` for ImageNet-R-9); ``README.md`` there explains each
definition. Regenerate with ``python -m harness.tasks.class_maps``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from harness.core import paths
from harness.core.errors import ConfigError, DataError

SISCORE_9 = "siscore_9"
OBJECTNET_9 = "objectnet_9"
IMAGENET_R_9 = "imagenet_r_9"
# ImageNet-9 class names in label order (folders ``NN_name`` of the Backgrounds Challenge).
IN9_CLASSES = ("dog", "bird", "wheeled vehicle", "reptile", "carnivore", "insect", "musical instrument", "primate",
               "fish")
_SISCORE_9_KEY = "SI-Score-9 ("
_OBJECTNET_9_KEY = "ObjectNet-9 option A ("


def class_maps_dir() -> Path:
    return paths.benchmarks_dir() / "class_maps"


def reference_path() -> Path:
    return class_maps_dir() / "sources" / "shift_class_sets.json"


def _proposal(ref: dict[str, Any], prefix: str) -> Any:
    hits = [v for k, v in ref["proposals"].items() if k.startswith(prefix)]
    if len(hits) != 1:
        raise DataError(f"class reference: expected one proposal starting with {prefix!r}, found {len(hits)}")
    return hits[0]


def build_from_reference(ref: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """SI-Score-9 and ObjectNet-9 (option A) from the COCO/SI-Score/ObjectNet class tables."""
    space = list(_proposal(ref, _SISCORE_9_KEY))
    coco_ids = {e["name"]: e["id"] for e in ref["coco80"]}
    siscore_names = {e["name"] for e in ref["siscore61"]}
    to_siscore = {e["coco"]: e["siscore"] for e in ref["coco_siscore"] if e["tier"] in ("exact-string", "clean")}
    siscore = {
        "name": "SI-Score-9",
        "dataset": "siscore",
        "definition": "COCO classes whose name equals an SI-Score class name (exact string match); "
                      "each label takes the SI-Score class of the same name",
        "classes": space,
        "coco_ids": {c: coco_ids[c] for c in space},
        "targets": {c: [to_siscore[c]] for c in space},
    }
    for c, (t,) in siscore["targets"].items():
        if t not in siscore_names:
            raise DataError(f"class reference: SI-Score-9 label {c!r} maps to {t!r}, not an SI-Score class")

    option_a = _proposal(ref, _OBJECTNET_9_KEY)
    if list(option_a["label_space"]) != space:
        raise DataError("class reference: ObjectNet-9 option A label space differs from SI-Score-9")
    to_objectnet = {e["coco"]: e["objectnet"] for e in ref["coco_objectnet"] if e["tier"] == "clean"}
    folders = {e["name"]: e["folder"] for e in ref["objectnet313"]}
    targets: dict[str, list[str]] = {c: [] for c in space}
    names: dict[str, str] = {}
    for c in option_a["populated"]:
        name = to_objectnet[c]
        targets[c] = [folders[name]]
        names[folders[name]] = name
    objectnet = {
        "name": "ObjectNet-9",
        "dataset": "objectnet",
        "definition": "the SI-Score-9 label space; test images only from the labels whose COCO class has a "
                      "clean ObjectNet counterpart (others have no test image)",
        "classes": space,
        "coco_ids": {c: coco_ids[c] for c in space},
        "targets": targets,
        "target_names": names,
    }
    return {SISCORE_9: siscore, OBJECTNET_9: objectnet}


def build_imagenet_r_9(in_to_in9: dict[str, int], imagenet_wnids: list[str], imagenet_r_wnids: list[str]
                       ) -> dict[str, Any]:
    """ImageNet-R-9: each ImageNet-R class (a WordNet id) takes the ImageNet-9 label of its
    ImageNet-1k index (the Backgrounds Challenge's ``in_to_in9.json``; -1 = outside IN-9)."""
    if len(imagenet_wnids) != 1000 or sorted(imagenet_wnids) != list(imagenet_wnids):
        raise DataError("ImageNet-1k WordNet ids must be the 1000 ids in sorted (class index) order")
    index = {w: i for i, w in enumerate(imagenet_wnids)}
    targets: dict[str, list[str]] = {c: [] for c in IN9_CLASSES}
    for wnid in sorted(imagenet_r_wnids):
        label = int(in_to_in9[str(index[wnid])])
        if label >= 0:
            targets[IN9_CLASSES[label]].append(wnid)
    return {
        "name": "ImageNet-R-9",
        "dataset": "imagenet-r",
        "definition": "ImageNet-R classes projected onto the 9 ImageNet-9 super-classes through the "
                      "Backgrounds Challenge's ImageNet-1k -> ImageNet-9 table; classes outside IN-9 dropped",
        "classes": list(IN9_CLASSES),
        "targets": targets,
    }


def load_class_map(name: str, folder: Path | None = None) -> dict[str, Any]:
    """A mapping file, validated: every label of ``targets`` is in ``classes``."""
    path = (folder or class_maps_dir()) / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read class mapping ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: malformed JSON ({exc})") from exc
    if not isinstance(data.get("classes"), list) or not isinstance(data.get("targets"), dict):
        raise ConfigError(f"{path}: a class mapping needs a 'classes' list and a 'targets' mapping")
    stray = sorted(set(data["targets"]) - set(data["classes"]))
    if stray:
        raise ConfigError(f"{path}: targets name labels outside 'classes': {', '.join(stray)}")
    data["path"] = str(path)
    return data


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Regenerate benchmarks/class_maps/*.json.")
    ap.add_argument("--reference", type=Path, default=reference_path(), help="shift_class_sets.json")
    ap.add_argument("--out", type=Path, default=class_maps_dir())
    ap.add_argument("--in-to-in9", type=Path, help="Backgrounds Challenge in_to_in9.json (for ImageNet-R-9)")
    ap.add_argument("--imagenet-wnids", type=Path, help="text file: the 1000 ImageNet-1k WordNet ids, one a line")
    ap.add_argument("--imagenet-r-wnids", type=Path, help="text file: the 200 ImageNet-R WordNet ids, one a line")
    args = ap.parse_args(argv)
    for name, data in build_from_reference(json.loads(args.reference.read_text())).items():
        write_json(args.out / f"{name}.json", data)
    if args.in_to_in9:
        if not (args.imagenet_wnids and args.imagenet_r_wnids):
            ap.error("--in-to-in9 needs --imagenet-wnids and --imagenet-r-wnids")
        data = build_imagenet_r_9(json.loads(args.in_to_in9.read_text()), args.imagenet_wnids.read_text().split(),
                                  args.imagenet_r_wnids.read_text().split())
        write_json(args.out / f"{IMAGENET_R_9}.json", data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
