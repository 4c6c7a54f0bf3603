"""Spatial / temporal multi-head self-attention of the MAED spatial-temporal encoder (ORIGINAL.md §1.4).

Tokens arrive frame-major: a batch of ``B = N * T`` frames, each with ``n`` tokens of width ``C``, where
consecutive groups of ``T`` frames belong to one clip. All modes share one ``qkv`` projection and one
output ``proj``; they differ in which tokens attend to which:

- ``vanilla``: within a frame (n x n per frame).
- ``temporal`` inside ``series``/``parallel``: across the T frames of a clip, separately per token
  position (T x T per token).
- ``parallel``: both from the same q, k, v, fused by per-frame, per-channel softmax weights from
  ``ts_attn`` (the weights of channel c are features 2c (spatial) and 2c+1 (temporal)).
- ``series``: spatial, then the *same* ``qkv`` applied again to its output, then temporal.
- ``coupling``: joint space-time attention over all T*n tokens of a clip.
- ``temporal`` as a mode: tokens averaged per frame, one temporal attention over the clip; the
  block's residual broadcasts the (B, 1, C) result to all tokens.

Every attention goes through ``F.scaled_dot_product_attention`` (default scale d^-0.5, as the original),
except bfloat16 on CPU: there PyTorch's fused kernel is about half as fast as the explicit
``softmax(q k^T / sqrt(d)) v`` for these small problems (197 tokens, or 16 frames), so that is computed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ATTENTION_MODES = ("vanilla", "series", "parallel", "coupling", "temporal")


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v over the last two axes; q, k, v: ... x L x d (4 or more axes)."""
    if q.device.type == "cpu" and q.dtype == torch.bfloat16:
        return ((q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5).softmax(dim=-1) @ v
    if q.ndim == 4:
        return F.scaled_dot_product_attention(q, k, v)
    # the ONNX exporter takes 4-d attention only: fold the leading axes into one
    lead = q.shape[:-3]
    q, k, v = (t.reshape(-1, *t.shape[-3:]) for t in (q, k, v))
    return F.scaled_dot_product_attention(q, k, v).reshape(*lead, *q.shape[-3:])


class SpatioTemporalAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, mode: str = "vanilla", qkv_bias: bool = True):
        super().__init__()
        if mode not in ATTENTION_MODES:
            raise ValueError(f"attention mode {mode!r}: expected one of {', '.join(ATTENTION_MODES)}")
        if dim % num_heads:
            raise ValueError(f"attention width {dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.mode = mode
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        if mode == "parallel":
            self.ts_attn = nn.Linear(dim * 2, dim * 2)
        self.proj = nn.Linear(dim, dim)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, n, C = x.shape
        qkv = self.qkv(x).reshape(B, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]  # each (B, H, n, d)

    @staticmethod
    def _spatial(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        B, H, n, d = q.shape
        x = attention(q, k, v)  # (B, H, n, d)
        return x.transpose(1, 2).reshape(B, n, H * d)

    @staticmethod
    def _temporal(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, seqlen: int) -> torch.Tensor:
        B, H, n, d = q.shape

        def to_time(t: torch.Tensor) -> torch.Tensor:  # (N*T, H, n, d) -> (N, H, n, T, d)
            return t.reshape(-1, seqlen, H, n, d).permute(0, 2, 3, 1, 4)

        x = attention(to_time(q), to_time(k), to_time(v))  # (N, H, n, T, d)
        return x.permute(0, 3, 2, 1, 4).reshape(B, n, H * d)  # (N, T, n, H, d) -> (B, n, C)

    @staticmethod
    def _coupling(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, seqlen: int) -> torch.Tensor:
        B, H, n, d = q.shape

        def to_clip(t: torch.Tensor) -> torch.Tensor:  # (N*T, H, n, d) -> (N, H, T*n, d)
            return t.reshape(-1, seqlen, H, n, d).transpose(1, 2).reshape(-1, H, seqlen * n, d)

        x = attention(to_clip(q), to_clip(k), to_clip(v))  # (N, H, T*n, d)
        x = x.reshape(-1, H, seqlen, n, d).transpose(1, 2).reshape(B, H, n, d)
        return x.transpose(1, 2).reshape(B, n, H * d)

    def forward(self, x: torch.Tensor, seqlen: int = 1) -> torch.Tensor:
        """x: (N*T) x n x C tokens, frames of a clip consecutive. Returns (N*T) x n x C
        (``temporal`` mode: (N*T) x 1 x C)."""
        B, n, C = x.shape
        if self.mode == "vanilla":
            out = self._spatial(*self._qkv(x))
        elif self.mode == "parallel":
            q, k, v = self._qkv(x)
            x_t = self._temporal(q, k, v, seqlen)
            x_s = self._spatial(q, k, v)
            # per-frame fusion weights from the token mean of both branches; channel c of the
            # (B, 1, 2C) logits pairs features 2c (spatial) and 2c+1 (temporal)
            alpha = self.ts_attn(torch.cat([x_s, x_t], dim=-1).mean(dim=1, keepdim=True))
            a_s, a_t = alpha.reshape(B, 1, C, 2).softmax(dim=-1).unbind(dim=-1)  # each (B, 1, C), stride 2
            out = x_t * a_t.contiguous() + x_s * a_s.contiguous()  # contiguous weights broadcast faster
        elif self.mode == "series":
            out = self._spatial(*self._qkv(x))
            out = self._temporal(*self._qkv(out), seqlen)
        elif self.mode == "coupling":
            out = self._coupling(*self._qkv(x), seqlen)
        else:  # temporal
            out = self._temporal(*self._qkv(x.mean(dim=1, keepdim=True)), seqlen)
        return self.proj(out)
