# FCN R50-D8 on OpenImage-MINI's semantic maps: C + 1 classes (0 = background, 1..C the
# build's classes), 255 = ignore (boxes without a mask); no reduce_zero_label. Model,
# crops and augmentation as the VOC12aug protocol (512x512 crops of images resized to
# (2048, 512) x [0.5, 2], SyncBN, SGD with poly decay, 20k-iteration schedule); the
# schedule comes from the task preset (benchmarks/tasks/oim_seg.yaml).
# As for ADE20K and VOC, the backbone is the pytorch-style `ResNet` (deep_stem=False) so
# that the SSL backbone's 7x7 stem loads. The harness sets the data root, the classes and
# the head widths, the backbone init, the batch split over processes and the work dir.
_base_ = [
    'mmseg::_base_/models/fcn_r50-d8.py', 'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_20k.py'
]

crop_size = (512, 512)
model = dict(
    pretrained=None,
    data_preprocessor=dict(size=crop_size),
    backbone=dict(type='ResNet', deep_stem=False, style='pytorch'))

dataset_type = 'BaseSegDataset'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(
        type='RandomResize',
        scale=(2048, 512),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root='data/openimage_mini',
        data_prefix=dict(img_path='images/train', seg_map_path='seg/train'),
        img_suffix='.jpg',
        seg_map_suffix='.png',
        reduce_zero_label=False,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root='data/openimage_mini',
        data_prefix=dict(img_path='images/val', seg_map_path='seg/val'),
        img_suffix='.jpg',
        seg_map_suffix='.png',
        reduce_zero_label=False,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

default_hooks = dict(
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=2000,
        max_keep_ckpts=2))
