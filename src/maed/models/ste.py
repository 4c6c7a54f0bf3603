"""The spatial-temporal encoder ``ste``: a hybrid ResNetV2-50 (3 stages) + ViT-B trunk (ORIGINAL.md §1.3).

The convolutional part is timm's ``ResNetV2`` (non-pre-activation, GroupNorm, TF-"SAME" stem), built with
the weight standardisation of the timm release MAED vendored: ``(w - mean) / (std + 1e-5)`` with the
biased std. Current timm standardises as ``(w - mean) / sqrt(var + eps)``, which is not the same
function, so the convolution is defined here. Parameter names match the original (and timm's
``vit_base_r50_s16_224``), so both the authors' checkpoint and timm's ImageNet-21k weights load.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from timm.layers import GroupNormAct, Mlp, trunc_normal_
from timm.layers.padding import pad_same
from torch import nn

from maed.errors import ConfigError
from maed.models.attention import SpatioTemporalAttention

EMBED_DIM = 768
NUM_PATCHES = 196  # (224 / 16)^2 feature-map cells of the 14 x 14 backbone output


class StdConv2dSame(nn.Conv2d):
    """Bias-free conv with per-output-channel weight standardisation and TF "SAME" dynamic padding."""

    def __init__(
        self,
        in_channel,
        out_channels,
        kernel_size,
        stride=1,
        padding="SAME",
        dilation=1,
        groups=1,
        bias=False,
        eps=1e-5,
        **kwargs,
    ):
        super().__init__(
            in_channel, out_channels, kernel_size, stride=stride, padding=0, dilation=dilation, groups=groups, bias=bias
        )
        self.eps = eps

    def standardized_weight(self) -> torch.Tensor:
        std, mean = torch.std_mean(self.weight, dim=[1, 2, 3], keepdim=True, unbiased=False)
        return (self.weight - mean) / (std + self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_same(x, self.kernel_size, self.stride, self.dilation)
        return F.conv2d(x, self.standardized_weight(), self.bias, self.stride, 0, self.dilation, self.groups)


def build_hybrid_backbone() -> nn.Module:
    """ResNetV2-50 stem + stages (3, 4, 9): B x 3 x 224 x 224 -> B x 1024 x 14 x 14."""
    from timm.models.resnetv2 import ResNetV2

    return ResNetV2(
        layers=(3, 4, 9),
        num_classes=0,
        global_pool="",
        preact=False,
        stem_type="same",
        conv_layer=partial(StdConv2dSame, eps=1e-5),
        norm_layer=partial(GroupNormAct, num_groups=32, eps=1e-5),
    )


class HybridEmbed(nn.Module):
    """CNN feature map -> tokens: B x 3 x 224 x 224 -> B x 196 x C."""

    def __init__(self, embed_dim: int = EMBED_DIM):
        super().__init__()
        self.backbone = build_hybrid_backbone()
        self.proj = nn.Conv2d(1024, embed_dim, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.backbone.forward_features(x)  # (B, 1024, 14, 14)
        return self.proj(x).flatten(2).transpose(1, 2)


class Block(nn.Module):
    """Pre-norm transformer block with spatial-temporal attention."""

    def __init__(self, dim: int, num_heads: int, mode: str, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = SpatioTemporalAttention(dim, num_heads, mode=mode, qkv_bias=True)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=nn.GELU)

    def forward(self, x: torch.Tensor, seqlen: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), seqlen)
        return x + self.mlp(self.norm2(x))


class PreLogits(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.fc = nn.Linear(dim, dim)
        self.act = nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.fc(x))


class SpatioTemporalEncoder(nn.Module):
    """Hybrid R50 + ViT encoder; one 768-d feature per frame.

    Args:
        num_blocks: transformer depth (6 in MAED's stage 2).
        num_heads: attention heads.
        st_mode: attention mode (see ``maed.models.attention``).
        max_seqlen: frames covered by the learned temporal embedding (16 in the original).
        interp_temp_embed: accept clips longer than ``max_seqlen`` by linearly interpolating the
            temporal embedding; without it such clips raise an error.
    """

    feat_dim = EMBED_DIM
    uses_seqlen = True

    def __init__(
        self,
        num_blocks: int = 6,
        num_heads: int = 12,
        st_mode: str = "parallel",
        max_seqlen: int = 16,
        interp_temp_embed: bool = False,
    ):
        super().__init__()
        dim = EMBED_DIM
        self.st_mode = st_mode
        self.max_seqlen = max_seqlen
        self.interp_temp_embed = interp_temp_embed
        self.patch_embed = HybridEmbed(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, NUM_PATCHES + 1, dim))
        self.has_temp_embed = st_mode in ("series", "parallel", "coupling")
        if self.has_temp_embed:
            self.temp_embed = nn.Parameter(torch.zeros(1, max_seqlen, 1, dim))
        self.blocks = nn.ModuleList(Block(dim, num_heads, st_mode) for _ in range(num_blocks))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pre_logits = PreLogits(dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        trunc_normal_(self.pos_embed, std=0.02)
        trunc_normal_(self.cls_token, std=0.02)
        if self.has_temp_embed:
            trunc_normal_(self.temp_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def check_seqlen(self, seqlen: int) -> None:
        if self.has_temp_embed and seqlen > self.max_seqlen and not self.interp_temp_embed:
            raise ConfigError(
                f"clip length T={seqlen} exceeds the {self.max_seqlen} frames of the learned temporal embedding "
                f"({self.st_mode} attention); use T <= {self.max_seqlen}, or allow longer clips with "
                "MODEL.ENCODER.INTERP_TEMP_EMBED=True (interp_temp_embed=True), which interpolates the embedding"
            )

    def temporal_embedding(self, seqlen: int) -> torch.Tensor:
        """1 x T x 1 x C: the learned embedding's first T slots, or its interpolation to T > max_seqlen."""
        if seqlen <= self.max_seqlen:
            return self.temp_embed[:, :seqlen]
        # linear resampling along time of the (C, max_seqlen) curve to T samples
        emb = self.temp_embed[0, :, 0].t().unsqueeze(0)  # (1, C, max_seqlen)
        emb = F.interpolate(emb, size=seqlen, mode="linear", align_corners=True)
        return emb[0].t()[None, :, None, :]

    def forward_features(self, x: torch.Tensor, seqlen: int = 1) -> torch.Tensor:
        """x: (N*T) x 3 x 224 x 224 -> (N*T) x 197 x C tokens after the final norm."""
        self.check_seqlen(seqlen)
        B = x.shape[0]
        if B % seqlen:
            raise ValueError(f"batch of {B} frames is not a whole number of clips of {seqlen} frames")
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1) + self.pos_embed
        if self.has_temp_embed:
            n, C = x.shape[1:]
            x = (x.reshape(-1, seqlen, n, C) + self.temporal_embedding(seqlen)).reshape(B, n, C)
        for blk in self.blocks:
            x = blk(x, seqlen)
        return self.norm(x)

    def forward(self, x: torch.Tensor, seqlen: int = 1) -> torch.Tensor:
        """x: (N*T) x 3 x 224 x 224 ImageNet-normalised crops -> (N*T) x 768 features."""
        return self.pre_logits(self.forward_features(x, seqlen)[:, 0])


def timm_hybrid_filter(state_dict: dict, num_blocks: int) -> dict:
    """Map timm's ``vit_base_r50_s16_224`` (ImageNet-21k) weights onto a ``num_blocks``-deep encoder.

    Keeps the first ``num_blocks`` transformer blocks (the original loaded a 12-block file into 6
    blocks and ignored the rest), drops the classifier head, and reshapes a linear patch projection.
    """
    out = {}
    for k, v in state_dict.items():
        if k.startswith(("head.", "fc_norm.")):
            continue
        if k.startswith("blocks.") and int(k.split(".")[1]) >= num_blocks:
            continue
        if k == "patch_embed.proj.weight" and v.ndim == 2:
            v = v.reshape(v.shape[0], -1, 1, 1)
        out[k] = v
    # pos_embed of a different grid is not supported: the hybrid always sees 14 x 14 cells
    if "pos_embed" in out and out["pos_embed"].shape[1] != NUM_PATCHES + 1:
        side = int(math.sqrt(out["pos_embed"].shape[1] - 1))
        raise ValueError(f"pos_embed for a {side}x{side} grid; expected 14x14 (224 px input)")
    return out
