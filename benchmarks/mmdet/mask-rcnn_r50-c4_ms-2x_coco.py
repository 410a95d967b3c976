# Mask R-CNN R50-C4, 2x schedule, as MoCo's detectron2 configuration runs it
# (coco_R_50_C4_2x_moco.yaml over Base-RCNN-C4-BN.yaml), and ContraCAM after it:
# pytorch-style ResNet (stride in the 3x3 conv) with ImageNet RGB normalisation (the
# backbones are torchvision ResNets), nothing frozen, trainable SyncBN in the backbone and
# in the res5 RoI head, which ends in one extra norm layer (Res5ROIHeadsExtraNorm);
# multi-scale training (short side 640-800, step 32), test short side 800; 180k
# iterations at 16 images, lr 0.02 with detectron2's 1000-iteration linear warm-up,
# x0.1 at 120k and 160k. Precise BN (the statistics re-estimated on 200 training batches
# before the test, as Base-RCNN-C4-BN enables) is the task preset's precise_bn_iters.
# The res5 head (roi_head.shared_head) holds the backbone's layer4: the harness loads it
# from the same backbone file as the backbone (layers 1-3).
# Framework difference: detectron2 and mmdet differ in small details (RoIAlign alignment,
# anchor placement), so numbers from this config are mmdet numbers (about 1 AP apart).
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50-caffe-c4_1x_coco.py']

custom_imports = dict(
    imports=['harness.tasks.mm.modules'], allow_failed_imports=False)

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        frozen_stages=-1,
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch',
        init_cfg=None),
    roi_head=dict(
        shared_head=dict(
            type='ResLayerOutputNorm',
            norm_cfg=norm_cfg,
            norm_eval=False,
            style='pytorch')))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='RandomChoiceResize',
        scales=[(1333, 640), (1333, 672), (1333, 704), (1333, 736),
                (1333, 768), (1333, 800)],
        keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
train_dataloader = dict(
    batch_size=2,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(pipeline=train_pipeline))

max_iters = 180000
train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_iters,
        by_epoch=False,
        milestones=[120000, 160000],
        gamma=0.1)
]
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001))

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=5000,
        max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
