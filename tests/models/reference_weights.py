"""Deterministic, non-degenerate weights for a checkpoint layout, and the input they are run on.

``tests/fixtures/original_outputs/<layout>.npz`` holds what the ORIGINAL MAED code computed with exactly
these weights and this input (the original was run once outside this repository; its code is not
here). The test rebuilds the same weights and compares our outputs against those numbers.
"""

from __future__ import annotations

import torch

IDENTITY_6D = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
VERTEX_STEP = 50  # store every 50th vertex
CLIP_SHAPE = (1, 4, 3, 224, 224)  # N, T, 3, H, W


def reference_state_dict(layout: list, seed: int = 0) -> dict[str, torch.Tensor]:
    """Weights for every ``[name, shape]`` of a layout, scaled so that attention is peaked, the fusion
    weights matter, norms and embeddings differ from their defaults and KTD starts near the identity."""
    g = torch.Generator().manual_seed(seed)

    def rn(shape, std):
        return torch.randn(shape, generator=g) * std

    sd = {}
    for name, shape in layout:
        shape = tuple(shape)
        if name.endswith("num_batches_tracked"):
            t = torch.tensor(0)
        elif name.endswith("running_mean"):
            t = rn(shape, 0.1)
        elif name.endswith("running_var"):
            t = 0.5 + torch.rand(shape, generator=g)
        elif name.endswith("qkv.weight"):
            t = rn(shape, 0.06)
        elif name.endswith("ts_attn.weight"):
            t = rn(shape, 0.05)
        elif name.endswith(("temp_embed", "pos_embed", "cls_token")):
            t = rn(shape, 0.2)
        elif "joint_regs" in name:
            t = rn(shape, 0.05) if name.endswith("weight") else IDENTITY_6D + rn(shape, 0.3)
        elif name.endswith("decshape.bias"):
            t = rn(shape, 1.0)
        elif name.endswith("deccam.bias"):
            t = torch.tensor([0.9, 0.0, 0.0]) + rn(shape, 0.05)
        elif name.endswith(("decshape.weight", "decpose.weight", "deccam.weight")):
            t = rn(shape, 0.01)
        elif name.endswith("init_pose"):
            t = IDENTITY_6D.repeat(shape[-1] // 6).reshape(shape) + rn(shape, 0.1)
        elif name.endswith("init_shape"):
            t = rn(shape, 0.5)
        elif name.endswith("init_cam"):
            t = torch.tensor([[0.9, 0.0, 0.0]])
        elif len(shape) == 1 and name.endswith(".weight"):  # GroupNorm / LayerNorm / BatchNorm scale
            t = 1.0 + rn(shape, 0.1)
        elif len(shape) == 1:
            t = rn(shape, 0.05)
        else:
            fan_in = 1
            for s in shape[1:]:
                fan_in *= s
            t = rn(shape, fan_in**-0.5)
        sd[name] = t.float() if t.is_floating_point() else t
    return sd


def reference_input(seed: int = 0) -> torch.Tensor:
    return torch.randn(CLIP_SHAPE, generator=torch.Generator().manual_seed(seed))


def summarize(out) -> dict[str, torch.Tensor]:
    """The stored subset of a model's outputs."""
    return {
        "verts": out["verts"][:, :, ::VERTEX_STEP],
        "kp_3d": out["kp_3d"],
        "kp_2d": out["kp_2d"],
        "rotmat": out["rotmat"],
    }
