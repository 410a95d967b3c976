# Mask R-CNN R50-FPN on OpenImage-MINI: the COCO transfer protocol's model and training
# recipe (mask-rcnn_r50_fpn_ms-1x_coco.py: full fine-tuning, SyncBN in backbone, FPN and
# heads, 4conv1fc box head, multi-scale training 640-800) on the COCO-format files of an
# OpenImage-MINI build. Boxes without a mask are iscrowd=1: ignored in training and in
# pycocotools' evaluation. The schedule comes from the task preset
# (benchmarks/tasks/oim_det.yaml); the harness sets the data root, the classes (C, from
# classes.json), the evaluator's annotation file, the backbone init, the batch split over
# processes and the work dir.
_base_ = ['./mask-rcnn_r50_fpn_ms-1x_coco.py']

train_dataloader = dict(
    dataset=dict(
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='images/train/')))
val_dataloader = dict(
    dataset=dict(
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='images/val/')))
test_dataloader = val_dataloader
