# UPerNet on a ViT-B/16 with the multi-level neck (MLN) on ADE20K (150 classes, label 0
# ignored), mmseg's ViT protocol: blocks 2, 5, 8, 11 as four maps resized by 4, 2, 1, 0.5,
# 512x512 crops, 160k iterations at 16 images (2 per GPU on 8 GPUs), AdamW lr 6e-5, weight
# decay 0.01 (none on the position embedding, class token and norms), 1500 linear warm-up
# iterations then poly decay, SyncBN in the heads, an FCN auxiliary head on block 11.
# The backbone is the timm ViT of the evaluated backbone file (`HarnessViT`, loaded
# strictly); the harness sets its arch and image size from the file, the head widths for
# its embedding width, the data root, the batch split over processes and the work dir.
_base_ = ['mmseg::vit/vit_vit-b16_mln_upernet_8xb2-160k_ade20k-512x512.py']

custom_imports = dict(imports=['harness.tasks.mm.vit_modules'], allow_failed_imports=False)

model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='HarnessViT',
        arch='vit_base_patch16',
        img_size=224,
        out_indices=(2, 5, 8, 11),
        final_norm=False,
        drop_path_rate=0.0))

default_hooks = dict(
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=16000,
        max_keep_ckpts=2))
