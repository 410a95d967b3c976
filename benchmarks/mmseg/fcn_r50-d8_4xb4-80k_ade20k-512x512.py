# FCN R50-D8 on ADE20K (150 classes, label 0 = "other" is ignored: reduce_zero_label),
# 512x512 crops, 80k iterations at 16 images (4 per GPU on 4 GPUs), SGD lr 0.01 with
# poly decay, SyncBN. Metric: mIoU over the validation set (IoUMetric).
# The official config uses ResNetV1c (a deep 3-conv stem); an SSL torchvision ResNet has
# the plain 7x7 stem, so the backbone here is the pytorch-style `ResNet` (deep_stem=False)
# whose parameter names match the backbone file. The harness sets the backbone init, the
# data root, the batch split over processes and the work dir.
_base_ = ['mmseg::fcn/fcn_r50-d8_4xb4-80k_ade20k-512x512.py']

model = dict(
    pretrained=None,
    backbone=dict(type='ResNet', deep_stem=False, style='pytorch'))

default_hooks = dict(
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=8000,
        max_keep_ckpts=2))
