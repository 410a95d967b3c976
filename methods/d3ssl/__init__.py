"""D3SSL: de-coupled and de-positioned dense (RoI-level) self-supervised learning.

A reconstruction of arXiv 2303.16947 (no public code) on a SoCo-style RoI base; see
``README.md`` in this folder for what is known and what is our choice. Stages:
``proposals`` (selective search or annotation boxes) -> ``pretrain`` (exports the
backbone). The ``*-base`` recipes switch both modules off (the dense RoI baseline).

Only light imports here: planning imports this module in the parent process.
"""
from __future__ import annotations

from typing import Any

from harness.api import Method, Stage


class D3SSL(Method):
    name = "d3ssl"
    paper = "https://arxiv.org/abs/2303.16947"

    def stages(self, cfg: dict[str, Any]) -> list[Stage]:
        return [
            Stage("proposals", run="harness_methods.d3ssl.stages.proposals:run_proposals", version="1",
                  reads=("data", "proposals")),
            Stage("pretrain", run="harness_methods.d3ssl.stages.pretrain:run_pretrain", version="2", exports_backbone=True),
        ]
