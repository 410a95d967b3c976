# FCN R50-D8 on PASCAL VOC 2012 + SBD augmentation (train + aug = 10,582 images,
# evaluated on val, 1,449 images; 21 classes, 255 = ignore), 512x512 crops, 20k iterations
# at 16 images (4 per GPU on 4 GPUs), SGD lr 0.01 with poly decay, SyncBN.
# Metric: mIoU over the validation set (IoUMetric).
# As for ADE20K, the backbone is the pytorch-style `ResNet` (deep_stem=False) instead of
# the official ResNetV1c so that the SSL backbone's 7x7 stem loads.
_base_ = ['mmseg::fcn/fcn_r50-d8_4xb4-20k_voc12aug-512x512.py']

model = dict(
    pretrained=None,
    backbone=dict(type='ResNet', deep_stem=False, style='pytorch'))

default_hooks = dict(
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=2000,
        max_keep_ckpts=2))
