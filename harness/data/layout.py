"""Where each dataset lives under a data root, in its official on-disk layout.

A data root holds any subset of these folders. The synthetic benchmark writes all of
them into one root, in exactly these layouts, so the same readers serve both.
"""
from __future__ import annotations

COCO = "coco"  # {train2017,val2017}/<12-digit id>.jpg, annotations/instances_{train,val}2017.json
COCO_CROP = "coco_crop"  # {train,val}/<category name>/<ann id>.jpg (COCO-Crop style object crops)
ADE20K = "ade/ADEChallengeData2016"  # {images,annotations}/{training,validation}/ADE_*.{jpg,png}
VOC = "VOCdevkit"  # VOC2012/{JPEGImages,SegmentationClass,SegmentationClassAug,...}, VOC2007/...
BG_CHALLENGE = "bg_challenge"  # <variant>/{train,val}/<NN_class>/<name>.JPEG, fg_mask/val/...npy
OBJECTNET = "objectnet-1.0"  # images/<folder>/<hash>.png, mappings/*.json
SISCORE = "siscore"  # {area,rotation,location20_area02_min0pc}/<class>/<id>.jpg + metadata.csv
OPEN_IMAGES = "openimages"  # {train,validation}/<ImageID>.jpg, annotation CSVs, masks/
CUB = "CUB_200_2011"  # images.txt, image_class_labels.txt, ..., segmentations/
FLOWERS = "flowers-102"  # jpg/, imagelabels.mat, setid.mat (+ segmim/ for localization)
FOOD = "food-101"  # images/<class>/<id>.jpg, meta/{train,test}.txt
PETS = "oxford-iiit-pet"  # images/, annotations/{trainval,test}.txt, annotations/trimaps/
CIFAR10 = "cifar-10-batches-py"
CIFAR100 = "cifar-100-python"
OPENIMAGE_MINI = "openimage_mini"  # a build of `harness data openimage-mini --out <root>/openimage_mini`

# The synthetic benchmark's nine object classes: the COCO classes that SI-Score also has
# by exact name (see benchmarks/class_maps/), so the shift mappings apply to it unchanged.
SYNTHETIC_CLASSES = ("backpack", "banana", "broccoli", "kite", "orange", "pizza", "toaster", "vase", "zebra")
