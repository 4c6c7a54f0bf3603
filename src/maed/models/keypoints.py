"""The ``keypoints`` encoder: MAED's spatial-temporal transformer over body landmarks instead of image patches.

Each frame is K landmark tokens (BlazePose's 33 by default) plus a class token, which starts as an embedding
of the whole frame's landmarks (a small MLP over all of them). A landmark's channels are its
position x, y in [-1, 1] of the person's square crop box, its visibility in [0, 1], and, with ``world=True``,
its metric world position (metres, around the hips). The tokens pass through the same :class:`Block` s as
the image encoder's patches, so in every attention mode spatial attention runs over the landmarks of a frame
and temporal attention over the frames of each landmark; the class token's output, through the same
``pre_logits`` head, is the frame's feature for the unchanged decoder.

A landmark whose visibility is 0 (not detected, or outside the frame) carries no position: its position
channels are zeroed before the embedding and its token is replaced by a learned ``missing_token`` (plus the
landmark's own embedding, so the network knows which one is missing), so whatever coordinates such a
landmark holds cannot change the output.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.utils.checkpoint
from timm.layers import trunc_normal_
from torch import nn

from maed.data.transforms import BASE_SCALE
from maed.models.ste import Block, PreLogits, TemporalEmbeddingMixin, _call, _checkpointed, init_transformer_weights

#: BlazePose's landmarks (MediaPipe Pose / BlazePose GHUM 3D)
NUM_KEYPOINTS = 33
#: the channels of a landmark token: image position and visibility, then (``world=True``) the metric position
IMAGE_CHANNELS = ("x", "y", "visibility")
WORLD_CHANNELS = ("world_x", "world_y", "world_z")
VISIBILITY_CHANNEL = IMAGE_CHANNELS.index("visibility")


class LandmarkEmbedding(nn.Module):
    """One linear map per landmark: (B, K, C) -> (B, K, D), landmark k by its own ``weight[k]`` (C x D) and
    ``bias[k]``. A map shared by all landmarks would leave a token's identity to the small learned
    ``landmark_embed`` alone, which training grows only slowly; a map of its own makes "where is this
    landmark" and "which landmark is it" one input from the first step."""

    def __init__(self, num_keypoints: int, in_features: int, out_features: int):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(num_keypoints, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(num_keypoints, out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # PyTorch's nn.Linear default, per landmark: uniform in +-1/sqrt(C)
        bound = 1.0 / self.in_features**0.5
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bkc,kcd->bkd", x, self.weight) + self.bias


class KeypointEncoder(TemporalEmbeddingMixin, nn.Module):
    """Landmark tokens -> one ``embed_dim`` feature per frame: (N*T) x K x C -> (N*T) x C'.

    Args:
        num_keypoints: K landmarks per frame (33, BlazePose's).
        world: three more input channels per landmark, its metric world position (metres around the hips).
        num_blocks: transformer depth.
        num_heads: attention heads; must divide ``embed_dim``.
        st_mode: attention mode (see ``maed.models.attention``).
        max_seqlen: frames covered by the learned temporal embedding (modes ``series``, ``parallel``,
            ``coupling``).
        interp_temp_embed: accept clips longer than ``max_seqlen`` by interpolating the temporal embedding.
        embed_dim: token width, and the output feature width.
        mlp_ratio: hidden width of each block's MLP as a multiple of ``embed_dim``.
        grad_checkpoint: in training, recompute each block's insides during backward instead of keeping them.
    """

    uses_seqlen = True
    input_kind = "keypoints"

    def __init__(
        self,
        num_keypoints: int = NUM_KEYPOINTS,
        world: bool = False,
        num_blocks: int = 4,
        num_heads: int = 4,
        st_mode: str = "parallel",
        max_seqlen: int = 16,
        interp_temp_embed: bool = False,
        embed_dim: int = 128,
        mlp_ratio: float = 4.0,
        grad_checkpoint: bool = False,
    ):
        super().__init__()
        if num_keypoints < 1:
            raise ValueError(f"num_keypoints={num_keypoints}: expected at least one landmark")
        dim = embed_dim
        self.feat_dim = dim
        self.num_keypoints = num_keypoints
        self.world = world
        self.channel_names = IMAGE_CHANNELS + (WORLD_CHANNELS if world else ())
        self.in_channels = len(self.channel_names)
        self.st_mode = st_mode
        self.max_seqlen = max_seqlen
        self.interp_temp_embed = interp_temp_embed
        self.grad_checkpoint = grad_checkpoint
        self.kp_embed = LandmarkEmbedding(num_keypoints, self.in_channels, dim)
        self.landmark_embed = nn.Parameter(torch.zeros(1, num_keypoints, dim))
        self.missing_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        # the class token starts as a summary of the whole frame (every landmark's channels, hidden ones
        # zeroed), so the frame's feature carries the pose from the first step; the blocks refine it
        self.frame_embed = nn.Sequential(
            nn.Linear(num_keypoints * self.in_channels, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim)
        )
        self.has_temp_embed = st_mode in ("series", "parallel", "coupling")
        if self.has_temp_embed:
            self.temp_embed = nn.Parameter(torch.zeros(1, max_seqlen, 1, dim))
        self.blocks = nn.ModuleList(Block(dim, num_heads, st_mode, mlp_ratio=mlp_ratio) for _ in range(num_blocks))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pre_logits = PreLogits(dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for p in (self.landmark_embed, self.missing_token, self.cls_token):
            trunc_normal_(p, std=0.02)
        if self.has_temp_embed:
            trunc_normal_(self.temp_embed, std=0.02)
        init_transformer_weights(self)
        for layer in self.frame_embed:  # a plain MLP over the frame's landmarks: PyTorch's default
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
        # the input projections keep PyTorch's default (as the image encoder's convolutional patch projection
        # does): weights of order 1/sqrt(C), so positions are not drowned by the 0.02-scale learned embeddings
        self.kp_embed.reset_parameters()

    def embed_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(N*T) x K x C landmarks -> (N*T) x (1 + K) x D tokens: the class token, then one per landmark."""
        B = x.shape[0]
        x = x.to(self.landmark_embed.dtype)  # a bfloat16 encoder (maed.models.fast) takes bfloat16 landmarks
        visible = x[..., VISIBILITY_CHANNEL : VISIBILITY_CHANNEL + 1] > 0  # (B, K, 1)
        # where, not a product: a hidden landmark's coordinates may be anything, NaN included
        x = torch.where(visible, x, torch.zeros_like(x))
        tokens = torch.where(visible, self.kp_embed(x), self.missing_token) + self.landmark_embed  # (B, K, D)
        cls = self.cls_token + self.frame_embed(x.reshape(B, -1))[:, None]
        return torch.cat([cls, tokens], dim=1)

    def forward_features(self, x: torch.Tensor, seqlen: int = 1) -> torch.Tensor:
        """x: (N*T) x K x C landmarks, the T frames of each clip consecutive -> (N*T) x (1 + K) x D tokens
        after the final norm."""
        self.check_seqlen(seqlen)
        if x.ndim != 3 or tuple(x.shape[1:]) != (self.num_keypoints, self.in_channels):
            raise ValueError(
                f"landmarks of shape {tuple(x.shape)}; this encoder takes (N*T) x {self.num_keypoints} x "
                f"{self.in_channels} ({', '.join(self.channel_names)} of each landmark)"
            )
        B = x.shape[0]
        if B % seqlen:
            raise ValueError(f"batch of {B} frames is not a whole number of clips of {seqlen} frames")
        x = self.embed_tokens(x)
        if self.has_temp_embed:
            n, D = x.shape[1:]
            x = (x.reshape(-1, seqlen, n, D) + self.temporal_embedding(seqlen)).reshape(B, n, D)
        run = _checkpointed if self.grad_checkpoint and torch.is_grad_enabled() else _call
        for blk in self.blocks:
            x = run(blk, x, seqlen)
        return self.norm(x)

    def forward(self, x: torch.Tensor, seqlen: int = 1) -> torch.Tensor:
        """x: (N*T) x K x C landmarks -> (N*T) x D frame features (the class token's output)."""
        return self.pre_logits(self.forward_features(x, seqlen)[:, 0])


def random_keypoints(
    n: int,
    t: int,
    num_keypoints: int = NUM_KEYPOINTS,
    world: bool = False,
    *,
    hidden: float = 0.2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A random N x T x K x C landmark clip in the encoder's input layout, for checks and exports: positions
    uniform in [-0.9, 0.9], visibilities uniform in [0, 1] with a fraction ``hidden`` of them 0, world
    positions normal with 0.3 m spread."""
    shape = (n, t, num_keypoints)
    xy = torch.rand(*shape, 2, generator=generator) * 1.8 - 0.9
    vis = torch.rand(*shape, 1, generator=generator)
    vis = torch.where(torch.rand(*shape, 1, generator=generator) < hidden, torch.zeros_like(vis), vis)
    parts = [xy, vis]
    if world:
        parts.append(0.3 * torch.randn(*shape, 3, generator=generator))
    return torch.cat(parts, dim=-1)


#: landmark visibility (BlazePose's, in [0, 1]) above which a landmark is given to the model as seen
SEEN = 0.5
#: the body joints BlazePose also reports, as (index in the 49-joint layout, index in BlazePose's 33):
#: right/left ankle, knee, hip, wrist, elbow, shoulder (BlazePose's "hip" sits a little off a rig's hip joint)
JOINT49_TO_BLAZEPOSE = (
    (25, 28), (26, 26), (27, 24), (28, 23), (29, 25), (30, 27),
    (31, 16), (32, 14), (33, 12), (34, 11), (35, 13), (36, 15),
)  # fmt: skip
#: changes when :func:`inputs_from_landmarks` gives other inputs for the same landmarks (the demo's stage
#: cache then recomputes its predictions): 2 = landmarks outside the frame count as unseen
KEYPOINT_INPUTS_VERSION = 2


def inputs_from_landmarks(landmarks: np.ndarray, boxes: np.ndarray, frame_size, *, seen: float = SEEN) -> np.ndarray:
    """Detected landmarks as the encoder's input, the one conversion demo, evaluation and the synthetic
    training data share.

    landmarks (..., K, >=4): x, y pixels, (z), visibility last; boxes (..., 4): the square boxes (cx, cy,
    side, side) pixels; frame_size: the frame's (width, height) pixels, (2,) or (..., 2) per frame.
    Returns (..., K, 3) float32: x, y in [-1, 1] of the crop (``BASE_SCALE`` x the box, as the image
    model's crops) and visibility 1 where the detector's is above ``seen`` and the landmark lies inside the
    frame, else 0 with the position zeroed. (BlazePose places landmarks beyond the frame's edge, a
    portrait's knees, at high visibility: guesses the model is not to take for sightings.)
    """

    lm = np.asarray(landmarks, np.float64)
    boxes = np.asarray(boxes, np.float64)
    size = np.asarray(frame_size, np.float64)
    if size.shape[-1:] != (2,) or (size <= 0).any():
        raise ValueError(f"frame_size: expected positive (width, height), got {frame_size!r}")
    half = (BASE_SCALE * boxes[..., 2] / 2)[..., None, None]
    xy = (lm[..., :2] - boxes[..., None, :2]) / half
    width, height = size[..., 0, None], size[..., 1, None]  # against the K landmarks of each frame
    inside = (lm[..., 0] >= 0) & (lm[..., 0] < width) & (lm[..., 1] >= 0) & (lm[..., 1] < height)
    vis = ((lm[..., -1] > seen) & inside).astype(np.float64)
    return np.concatenate([xy * vis[..., None], vis[..., None]], axis=-1).astype(np.float32)
