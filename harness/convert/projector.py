"""The projection head of a public SSL checkpoint, as a harness head (``heads.pth``).

ContraCAM needs the projector of the contrastive model beside its backbone. Where a
public layout keeps it is known per backbone prefix (:data:`PROJECTOR_PREFIXES`):

==========================  ===============================  ============================
backbone prefix             projector keys                   module
==========================  ===============================  ============================
``module.encoder_q.``       ``module.encoder_q.fc.*``        MoCo v2 ``Linear-ReLU-Linear``
                                                             (MoCo v1: one ``Linear``)
``encoder_q.0.``            ``encoder_q.1.mlp.*``            OpenSelfSup MoCo neck
``backbone.``               ``neck.mlp.*``                   mmselfsup / OpenSelfSup neck
``online_net.0.``           ``online_net.1.mlp.*``           OpenSelfSup BYOL
                                                             ``Linear-BN-ReLU-Linear``
==========================  ===============================  ============================

The head is rebuilt as :func:`harness.pretrain.models.build_head` of an ``mlp`` spec
inferred from the weights and loaded strictly. Our ``Linear`` before a BN has no bias; a
source bias there is folded into the BN running mean (``running_mean - bias``), which is
exact in eval mode, where CAMs run.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn as nn

PROJECTOR = "projector"
PROJECTOR_PREFIXES = {
    "module.encoder_q.": "module.encoder_q.fc.",
    "encoder_q.0.": "encoder_q.1.mlp.",
    "backbone.": "neck.mlp.",
    "module.backbone.": "module.neck.mlp.",
    "online_net.0.": "online_net.1.mlp.",
    "module.online_net.0.": "module.online_net.1.mlp.",
}


class ProjectorNotFound(Exception):
    """The checkpoint has no projector in a form we rebuild (the reason is the message)."""


def import_projector(state: Mapping[str, torch.Tensor], backbone_prefix: str
                     ) -> tuple[nn.Module, dict[str, Any], str]:
    """``(head, spec, source prefix)`` of the checkpoint's projector (eval mode), or
    :class:`ProjectorNotFound` saying why not."""
    from harness.core.heads import build_head, mlp_spec

    prefix = PROJECTOR_PREFIXES.get(backbone_prefix)
    if prefix is None:
        raise ProjectorNotFound(f"no known projector location for the layout with prefix {backbone_prefix!r}")
    src = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not src:
        raise ProjectorNotFound(f"no keys under {prefix!r}")
    if set(src) <= {"weight", "bias"}:  # one Linear (MoCo v1)
        src = {f"0.{k}": v for k, v in src.items()}
    modules: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in src.items():
        index, _, name = key.partition(".")
        if not index.isdigit():
            raise ProjectorNotFound(f"unexpected key {prefix + key!r} (not an nn.Sequential)")
        modules.setdefault(int(index), {})[name] = value
    linears = [i for i in sorted(modules) if modules[i].get("weight", torch.empty(0)).ndim == 2]
    if not linears:
        raise ProjectorNotFound(f"no Linear layer under {prefix!r}")
    dims = [int(modules[linears[0]]["weight"].shape[1])] + [int(modules[i]["weight"].shape[0]) for i in linears]
    has_bn = any("running_mean" in m for m in modules.values())
    spec = mlp_spec(dims, bn=has_bn)
    head = build_head(spec)
    target = _fold_linear_bias_into_bn(modules) if has_bn else src
    try:
        head.load_state_dict(target, strict=True)
    except RuntimeError as exc:
        raise ProjectorNotFound(f"the modules under {prefix!r} are not an {'-'.join(map(str, dims))} MLP "
                                f"{'with' if has_bn else 'without'} BN as we build it ({exc})") from None
    return head.eval(), spec, prefix


def _fold_linear_bias_into_bn(modules: dict[int, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The state with each BN-preceding Linear's bias moved into that BN's running mean."""
    out = {f"{i}.{name}": v for i, m in modules.items() for name, v in m.items()}
    for i, m in modules.items():
        bn = modules.get(i + 1, {})
        if "bias" in m and m.get("weight", torch.empty(0)).ndim == 2 and "running_mean" in bn:
            out[f"{i + 1}.running_mean"] = bn["running_mean"] - m["bias"]
            del out[f"{i}.bias"]
    return out
