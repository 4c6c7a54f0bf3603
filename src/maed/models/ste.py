"""The spatial-temporal encoder ``ste``: a hybrid ResNetV2-50 (3 stages) + ViT-B trunk (ORIGINAL.md §1.3).

The convolutional part is timm's ``ResNetV2`` (non-pre-activation, GroupNorm, TF-"SAME" stem), built with
the weight standardisation of the timm release MAED vendored: ``(w - mean) / (std + 1e-5)`` with the
biased std. Current timm standardises as ``(w - mean) / sqrt(var + eps)``, which is not the same
function, so the convolution is defined here. Parameter names match the original (and timm's
``vit_base_r50_s16_224``), so both the authors' checkpoint and timm's ImageNet-21k weights load.

The same family comes in other sizes: input side (a multiple of 16; the token grid is side / 16 on each
axis), ViT width, depth, heads and MLP ratio, ResNetV2 stage depths and width (stem channels; the three
stages have 4x, 8x and 16x as many). The defaults are the original's R50 + ViT-B at 224 px.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from timm.layers import GroupNormAct, Mlp, trunc_normal_
from timm.layers.padding import pad_same
from torch import nn

from maed.errors import CheckpointError, ConfigError
from maed.models.attention import SpatioTemporalAttention

EMBED_DIM = 768
IMG_SIZE = 224
PATCH_STRIDE = 16  # the backbone's total stride: stem /4, then stages 2 and 3 halve again
NUM_PATCHES = (IMG_SIZE // PATCH_STRIDE) ** 2  # 196 cells of the 14 x 14 backbone output at 224 px
BACKBONE_LAYERS = (3, 4, 9)
BACKBONE_WIDTH = 64


def _tracing() -> bool:
    """True while torch.compile, torch.export / the ONNX exporter or TorchScript trace the model."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


class StdConv2dSame(nn.Conv2d):
    """Bias-free conv with per-output-channel weight standardisation and TF "SAME" dynamic padding.

    The standardised weight depends on the weight only, so without autograd (inference) it is computed once
    and reused until the weight changes (an in-place update such as an optimiser step or a load bumps the
    tensor's version; ``.to()`` gives new storage). With autograd enabled it is recomputed on every call, as
    training needs. ``cache_standardized = False`` turns the reuse off (the original's behaviour).
    The weight is standardised in its own precision and then cast to the input's, so float32 master
    weights serve a bfloat16 forward without losing precision in the standardisation.
    """

    cache_standardized = True

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
        self._cached: tuple[tuple, torch.Tensor] | None = None

    def _compute_standardized(self) -> torch.Tensor:
        std, mean = torch.std_mean(self.weight, dim=[1, 2, 3], keepdim=True, unbiased=False)
        return (self.weight - mean) / (std + self.eps)

    def standardized_weight(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """(w - mean) / (std + eps) per output channel, in ``dtype`` (default: the weight's)."""
        dtype = dtype or self.weight.dtype
        if not self.cache_standardized or torch.is_grad_enabled() or _tracing():
            return self._compute_standardized().to(dtype)
        w = self.weight
        key = (w._version, w.data_ptr(), w.device, dtype)
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, self._compute_standardized().to(dtype))
        return self._cached[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_same(x, self.kernel_size, self.stride, self.dilation)
        weight = self.standardized_weight(x.dtype if x.dtype != self.weight.dtype else None)
        return F.conv2d(x, weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MaxPool2dSame(nn.Module):
    """3 x 3 / 2 max pooling with TF "SAME" padding (the stem pool); identical to timm's ``MaxPool2dSame``.

    On CPU the pooling runs on a channels-last copy: PyTorch's channels-first max-pool kernel is about ten
    times slower there, and the max is exact in any layout (``channels_last_on_cpu = False`` turns it off).
    """

    channels_last_on_cpu = True

    def __init__(self, kernel_size: int = 3, stride: int = 2):
        super().__init__()
        self.kernel_size = (kernel_size, kernel_size)
        self.stride = (stride, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_same(x, self.kernel_size, self.stride, value=-float("inf"))
        if (
            not self.channels_last_on_cpu
            or x.device.type != "cpu"
            or x.is_contiguous(memory_format=torch.channels_last)
            or _tracing()
        ):
            return F.max_pool2d(x, self.kernel_size, self.stride)
        y = F.max_pool2d(x.contiguous(memory_format=torch.channels_last), self.kernel_size, self.stride)
        return y.contiguous()


def build_hybrid_backbone(
    layers: tuple[int, ...] | list[int] = BACKBONE_LAYERS, width: int = BACKBONE_WIDTH
) -> nn.Module:
    """ResNetV2 stem + three bottleneck stages: B x 3 x S x S -> B x 16w x S/16 x S/16.

    ``layers``: blocks per stage ((3, 4, 9): the original's R50 minus its last stage). ``width`` w: stem
    channels; the stages output 4w, 8w and 16w channels (64 -> 256, 512, 1024 as in ResNet-50). GroupNorm
    has 32 groups, so w must be a multiple of 32.
    """
    from timm.models.resnetv2 import ResNetV2

    if len(layers) != 3 or min(layers) < 1:
        raise ValueError(f"backbone layers {list(layers)}: expected three stage depths, each at least 1")
    if width < 32 or width % 32:
        raise ValueError(f"backbone width {width}: expected a multiple of 32 (GroupNorm uses 32 groups)")
    net = ResNetV2(
        layers=tuple(layers),
        channels=(4 * width, 8 * width, 16 * width),
        stem_chs=width,
        num_classes=0,
        global_pool="",
        preact=False,
        stem_type="same",
        conv_layer=partial(StdConv2dSame, eps=1e-5),
        norm_layer=partial(GroupNormAct, num_groups=32, eps=1e-5),
    )
    net.stem.pool = MaxPool2dSame(kernel_size=3, stride=2)
    return net


class JointHeatmapHead(nn.Module):
    """Auxiliary 2D joints from a feature map of stride ``stride`` (integral regression, Sun et al. 2018): a 1 x 1
    convolution gives one heatmap per joint, a softmax over its cells turns it into a distribution, and the
    joint is that distribution's mean cell centre. B x C x H x W -> B x K x 2 in the crop's [-1, 1]
    coordinates (``2 px / S - 1``, pixel centres at integers, as the datasets' ``kp_2d``)."""

    def __init__(self, in_channels: int, num_joints: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(in_channels, num_joints, kernel_size=1)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        B, _, H, W = feat.shape
        prob = self.conv(feat).flatten(2).float().softmax(dim=-1)  # (B, K, H*W)
        s = self.stride
        xs = 2.0 * (torch.arange(W, device=feat.device) * s + (s - 1) / 2) / (W * s) - 1.0
        ys = 2.0 * (torch.arange(H, device=feat.device) * s + (s - 1) / 2) / (H * s) - 1.0
        centres = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(H * W, 2)
        return prob @ centres


class HybridEmbed(nn.Module):
    """CNN feature map -> tokens: B x 3 x S x S -> B x (S/16)^2 x C (224 px: 196 tokens).

    ``joint_heatmap_joints`` K > 0 adds a :class:`JointHeatmapHead` on the second stage's output (stride 8):
    training-only 2D joints that give the backbone a dense signal of where the body's parts are.
    """

    def __init__(
        self,
        embed_dim: int = EMBED_DIM,
        layers: tuple[int, ...] | list[int] = BACKBONE_LAYERS,
        width: int = BACKBONE_WIDTH,
        joint_heatmap_joints: int = 0,
    ):
        super().__init__()
        self.backbone = build_hybrid_backbone(layers, width)
        self.proj = nn.Conv2d(16 * width, embed_dim, kernel_size=1)
        self.joint_head = JointHeatmapHead(8 * width, joint_heatmap_joints, stride=8) if joint_heatmap_joints else None

    def forward(self, x: torch.Tensor, run=None, joints: bool = False):
        """``run(module, x)`` calls each piece (stem, each stage); activation checkpointing passes its own.
        ``joints=True`` also returns the heatmap head's B x K x 2 joints."""
        run = run or _call
        bb = self.backbone
        x = run(bb.stem, x)
        kp = None
        for i, stage in enumerate(bb.stages):
            x = run(stage, x)
            if joints and i == 1:
                kp = self.joint_head(x)
        x = bb.norm(x)  # (B, 16w, S/16, S/16); the same steps as timm's forward_features
        tokens = self.proj(x).flatten(2).transpose(1, 2)
        return (tokens, kp) if joints else tokens


def _call(module: nn.Module, *args):
    return module(*args)


def _checkpointed(module: nn.Module, *args):
    """Run ``module`` without keeping its activations; backward recomputes them."""
    return torch.utils.checkpoint.checkpoint(module, *args, use_reentrant=False)


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


#: how a frame's tokens become its feature (``SpatioTemporalEncoder``'s ``pool``)
POOLS = ("cls", "mean", "grid")
GRID_POOL_CHANNELS = 16  # per-token channels kept by the "grid" pool before it reads the whole grid


class PreLogits(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.fc = nn.Linear(dim, dim)
        self.act = nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.fc(x))


def init_transformer_weights(module: nn.Module) -> None:
    """ViT initialisation of every linear layer (truncated normal, std 0.02; zero bias) and LayerNorm (identity)
    inside ``module``."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class TemporalEmbeddingMixin:
    """The learned temporal embedding the encoders with ``series``, ``parallel`` or ``coupling`` attention add
    to every token of a frame. Expects ``has_temp_embed``, ``max_seqlen``, ``interp_temp_embed``, ``st_mode``
    and (when ``has_temp_embed``) the 1 x max_seqlen x 1 x C parameter ``temp_embed``."""

    has_temp_embed: bool
    max_seqlen: int
    interp_temp_embed: bool
    st_mode: str
    temp_embed: torch.Tensor

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


class SpatioTemporalEncoder(TemporalEmbeddingMixin, nn.Module):
    """Hybrid ResNetV2 + ViT encoder; one ``embed_dim`` feature per frame (768 for the original).

    Args:
        num_blocks: transformer depth (6 in MAED's stage 2).
        num_heads: attention heads; must divide ``embed_dim``.
        st_mode: attention mode (see ``maed.models.attention``).
        max_seqlen: frames covered by the learned temporal embedding (16 in the original).
        interp_temp_embed: accept clips longer than ``max_seqlen`` by linearly interpolating the
            temporal embedding; without it such clips raise an error.
        img_size: side S of the square input crops in pixels, a multiple of 16 (224 in the original);
            the token grid is S/16 x S/16 and ``pos_embed`` has (S/16)^2 + 1 slots.
        embed_dim: ViT width C and the output feature width (768).
        mlp_ratio: hidden width of each block's MLP as a multiple of C (4).
        backbone_layers: ResNetV2 blocks per stage ((3, 4, 9)).
        backbone_width: ResNetV2 stem channels w; stages have 4w, 8w, 16w (64).
        pool: the frame feature fed to ``pre_logits``: ``"cls"`` the class token's output (the original),
            ``"mean"`` the mean of the patch tokens' outputs, or ``"grid"``: each patch token reduced to
            ``GRID_POOL_CHANNELS`` channels and the whole grid read by one linear layer, which keeps where on the
            grid each part was seen (for models trained from scratch, docs/SYNTH.md).
        grad_checkpoint: in training, keep only the inputs of the backbone's stem and stages and of each
            transformer block, and recompute their insides during backward (activation checkpointing:
            much less memory for about one more forward pass of compute). Same gradients.
        joint_heatmap_joints: K > 0 adds an auxiliary 2D-joint head on the backbone's stride-8 features
            (:class:`JointHeatmapHead`), computed only when ``forward(..., joints=True)`` asks for it (the
            training loss ``LOSS.JOINT_HEATMAP_W``); 0, the original, has none.
    """

    uses_seqlen = True
    input_kind = "images"

    def __init__(
        self,
        num_blocks: int = 6,
        num_heads: int = 12,
        st_mode: str = "parallel",
        max_seqlen: int = 16,
        interp_temp_embed: bool = False,
        img_size: int = IMG_SIZE,
        embed_dim: int = EMBED_DIM,
        mlp_ratio: float = 4.0,
        backbone_layers: tuple[int, ...] | list[int] = BACKBONE_LAYERS,
        backbone_width: int = BACKBONE_WIDTH,
        grad_checkpoint: bool = False,
        pool: str = "cls",
        joint_heatmap_joints: int = 0,
    ):
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"pool {pool!r}: expected one of {POOLS}")
        self.pool = pool
        if img_size < PATCH_STRIDE or img_size % PATCH_STRIDE:
            raise ValueError(f"input size {img_size}: expected a positive multiple of {PATCH_STRIDE} pixels")
        dim = embed_dim
        self.feat_dim = dim
        self.img_size = img_size
        self.st_mode = st_mode
        self.max_seqlen = max_seqlen
        self.interp_temp_embed = interp_temp_embed
        self.grad_checkpoint = grad_checkpoint
        self.patch_embed = HybridEmbed(
            dim, layers=backbone_layers, width=backbone_width, joint_heatmap_joints=joint_heatmap_joints
        )
        self.num_patches = (img_size // PATCH_STRIDE) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches + 1, dim))
        self.has_temp_embed = st_mode in ("series", "parallel", "coupling")
        if self.has_temp_embed:
            self.temp_embed = nn.Parameter(torch.zeros(1, max_seqlen, 1, dim))
        self.blocks = nn.ModuleList(Block(dim, num_heads, st_mode, mlp_ratio=mlp_ratio) for _ in range(num_blocks))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        if pool == "grid":
            self.grid_reduce = nn.Linear(dim, GRID_POOL_CHANNELS)
            self.grid_read = nn.Linear(self.num_patches * GRID_POOL_CHANNELS, dim)
        self.pre_logits = PreLogits(dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        trunc_normal_(self.pos_embed, std=0.02)
        trunc_normal_(self.cls_token, std=0.02)
        if self.has_temp_embed:
            trunc_normal_(self.temp_embed, std=0.02)
        init_transformer_weights(self)

    @property
    def has_joint_heatmap(self) -> bool:
        return self.patch_embed.joint_head is not None

    def forward_features(self, x: torch.Tensor, seqlen: int = 1, joints: bool = False):
        """x: (N*T) x 3 x S x S -> (N*T) x (1 + (S/16)^2) x C tokens after the final norm (and, with
        ``joints=True``, the heatmap head's (N*T) x K x 2 joints)."""
        self.check_seqlen(seqlen)
        B = x.shape[0]
        x = x.to(self.pos_embed.dtype)  # a bfloat16 encoder (maed.models.fast) takes bfloat16 crops
        if tuple(x.shape[-2:]) != (self.img_size, self.img_size):
            raise ValueError(
                f"input crops of {x.shape[-2]} x {x.shape[-1]} pixels; this encoder was built for "
                f"{self.img_size} x {self.img_size} (DATASET.WIDTH/HEIGHT)"
            )
        if B % seqlen:
            raise ValueError(f"batch of {B} frames is not a whole number of clips of {seqlen} frames")
        run = _checkpointed if self.grad_checkpoint and torch.is_grad_enabled() else _call
        kp = None
        if joints:
            if not self.has_joint_heatmap:
                raise ValueError("joints=True: this encoder has no joint heatmap head (joint_heatmap_joints=0)")
            x, kp = self.patch_embed(x, run=run, joints=True)
        else:
            x = self.patch_embed(x, run=run)
        x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1) + self.pos_embed
        if self.has_temp_embed:
            n, C = x.shape[1:]
            x = (x.reshape(-1, seqlen, n, C) + self.temporal_embedding(seqlen)).reshape(B, n, C)
        for blk in self.blocks:
            x = run(blk, x, seqlen)
        return (self.norm(x), kp) if joints else self.norm(x)

    def forward(self, x: torch.Tensor, seqlen: int = 1, joints: bool = False):
        """x: (N*T) x 3 x S x S ImageNet-normalised crops -> (N*T) x C features (and, with ``joints=True``,
        the heatmap head's (N*T) x K x 2 joints)."""
        if not joints:
            return self.pre_logits(self.pool_tokens(self.forward_features(x, seqlen)))
        tokens, kp = self.forward_features(x, seqlen, joints=True)
        return self.pre_logits(self.pool_tokens(tokens)), kp

    def pool_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """B x (1 + n) x C tokens -> B x C frame features, as ``pool`` says."""
        if self.pool == "cls":
            return tokens[:, 0]
        if self.pool == "mean":
            return tokens[:, 1:].mean(dim=1)
        return self.grid_read(self.grid_reduce(tokens[:, 1:]).flatten(1))


def timm_hybrid_filter(state_dict: dict, num_blocks: int, num_patches: int = NUM_PATCHES) -> dict:
    """Map timm's ``vit_base_r50_s16_224`` (ImageNet-21k) weights onto a ``num_blocks``-deep encoder.

    Keeps the first ``num_blocks`` transformer blocks (the original loaded a 12-block file into 6
    blocks and ignored the rest), drops the classifier head, and reshapes a linear patch projection.
    ``num_patches`` is the encoder's token grid size ((S/16)^2); a ``pos_embed`` for another grid is refused.
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
    # resampling pos_embed to another grid is not supported
    if "pos_embed" in out and out["pos_embed"].shape[1] != num_patches + 1:
        side, want = int(math.sqrt(out["pos_embed"].shape[1] - 1)), int(math.sqrt(num_patches))
        raise CheckpointError(
            f"pos_embed for a {side}x{side} token grid; this encoder has {want}x{want} ({want * PATCH_STRIDE} px input)"
        )
    return out
