# Mask R-CNN on a plain ViT-B/16 with ViTDet's simple feature pyramid (Li et al. 2022,
# detectron2 projects/ViTDet mask_rcnn_vitdet_b_100ep): the pyramid is built from the last
# block's map alone (strides 4-32 by deconvolution / identity / max-pooling, stride 64 by
# pooling), LayerNorm in the pyramid and the heads (4conv1fc box head, 2-conv RPN head),
# large-scale jitter at 1024 (scale 0.1-2.0, 1024 crop), 100 epochs = 184,375 iterations
# at 64 images, AdamW lr 1e-4 betas (0.9, 0.999) weight decay 0.1 (none on norms, biases,
# position embedding, class token), layer-wise lr decay 0.7, drop path 0.1, 250 warm-up
# iterations, x0.1 at 163,889 and 177,546; test at 1024 on the long side.
# What differs from ViTDet: the backbone is exactly the pretrained network (global attention
# in every block; no window attention, relative position biases or absolute-position
# re-interpolation at 1024 beyond timm's bicubic resampling), because the evaluated file
# holds just those weights. The harness sets the arch and image size from the file, the
# widths, the data root, the batch split over processes and the work dir.
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py']

custom_imports = dict(imports=['harness.tasks.mm.vit_modules'], allow_failed_imports=False)

image_size = (1024, 1024)
norm_cfg = dict(type='LN2d', requires_grad=True)
model = dict(
    data_preprocessor=dict(pad_size_divisor=64),
    backbone=dict(
        _delete_=True,
        type='HarnessViT',
        arch='vit_base_patch16',
        img_size=224,
        out_indices=(11,),
        final_norm=False,
        drop_path_rate=0.1),
    neck=dict(
        _delete_=True,
        type='SimpleFeaturePyramid',
        in_channels=768,
        out_channels=256,
        scale_factors=(4.0, 2.0, 1.0, 0.5),
        top_pool=True),
    rpn_head=dict(num_convs=2),
    roi_head=dict(
        bbox_head=dict(
            type='Shared4Conv1FCBBoxHead',
            conv_out_channels=256,
            norm_cfg=norm_cfg),
        mask_head=dict(norm_cfg=norm_cfg)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.1, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=image_size, recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(batch_size=4, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='ViTLayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    paramwise_cfg=dict(layer_decay_rate=0.7, num_layers=12))

max_iters = 184375
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
    dict(type='MultiStepLR', begin=0, end=max_iters, by_epoch=False, milestones=[163889, 177546], gamma=0.1)
]
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=10000, max_keep_ckpts=2))
