"""ContraCAM inference speed, and its cost relative to pretraining, measured side by side.

Prints CAM images/s (``--iterations`` refinement steps, default T = 10) and the images/s
of one MoCo v2 training step (query forward + backward, key forward, on the two views)
for the same architecture and resolution on this machine, then the estimate

    CAM stage / pretraining stage = t_cam(T) / (epochs x t_train)

per image (the CAM stage visits every image once; pretraining visits it once per
epoch). With ``--crf`` the dense CRF (CPU) of the box extraction is timed and added to
the CAM side. The default settings are the paper recipe's (ResNet-50, 224 px,
expand_res 2, T = 10, 800 epochs); ``--arch resnet18 --size 64`` gives the tiny
recipe's. Usage::

    python benchmarks/perf/contracam_cam.py [--arch resnet50] [--size 224] [--batch 8] [--crf]
"""
from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch


def seconds_per_call(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    from harness.cam.boxes import CRF_DEFAULTS, crf_available, dense_crf
    from harness.cam.contrastive import ContrastiveCAM
    from harness.pretrain.moco import MoCoV2Model

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--expand-res", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=800)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--crf", action="store_true", help="time the dense CRF too (needs pydensecrf)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    moco = MoCoV2Model(args.arch, queue=4096).to(dev)
    x1 = torch.randn(args.batch, 3, args.size, args.size, device=dev)
    x2 = torch.randn_like(x1)
    opt = torch.optim.SGD([p for p in moco.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)

    def train_step() -> None:
        out = moco({"view1": x1, "view2": x2})
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        moco.after_step(0, 1)
        sync()

    t_train = seconds_per_call(train_step, args.repeats) / args.batch

    cam = ContrastiveCAM(copy.deepcopy(moco.backbone), copy.deepcopy(moco.projector), args.expand_res).to(dev)

    def cam_step() -> None:
        cam(x1, iterations=args.iterations)
        sync()

    t_cam = seconds_per_call(cam_step, args.repeats) / args.batch
    t_crf = 0.0
    if args.crf:
        if not crf_available():
            raise SystemExit("--crf: pydensecrf is not installed (pip install pydensecrf2)")
        rng = np.random.default_rng(0)
        image = rng.integers(0, 255, (args.size, args.size, 3), dtype=np.uint8)
        prob = rng.random((args.size, args.size)).astype(np.float32)
        t_crf = seconds_per_call(lambda: dense_crf(image, prob, **CRF_DEFAULTS), args.repeats)

    print(f"device {dev}, {args.threads} CPU threads, {args.arch} at {args.size} px, batch {args.batch}")
    print(f"CAM (T={args.iterations}, expand_res {args.expand_res}): {1 / t_cam:.2f} images/s")
    print(f"MoCo v2 training step (2 views, fwd+bwd): {1 / t_train:.2f} images/s")
    if args.crf:
        print(f"dense CRF ({CRF_DEFAULTS['iterations']} iterations, CPU): {1 / t_crf:.2f} images/s")
    per_image_cam = t_cam + t_crf
    ratio = per_image_cam / (args.epochs * t_train)
    print(f"one CAM pass / one training epoch, per image: {per_image_cam / t_train:.2f}")
    print(f"estimated CAM stage / pretraining stage at {args.epochs} epochs: {100 * ratio:.2f}% "
          f"({'within' if ratio <= 0.15 else 'above'} the 15% budget)")


if __name__ == "__main__":
    main()
