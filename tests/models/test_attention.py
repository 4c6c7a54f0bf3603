"""The attention modes against a direct, loop-based reading of ORIGINAL.md §1.4 (one clip, one token at a time)."""

import pytest
import torch

from maed.models.attention import SpatioTemporalAttention

N, T, n, C, H = 2, 3, 5, 8, 2
d = C // H


def _heads(x):  # (..., C) -> (H, ..., d) head-major channels
    return torch.stack([x[..., h * d : (h + 1) * d] for h in range(H)])


def _attend(q, k, v):  # q, k, v: (L, d) for one head
    w = torch.softmax(q @ k.t() / d**0.5, dim=-1)
    return w @ v


def _spatial_ref(attn, x):  # x: (B, n, C)
    q, k, v = attn.qkv(x).split(C, dim=-1)
    out = torch.zeros_like(x)
    for b in range(x.shape[0]):
        for h in range(H):
            out[b, :, h * d : (h + 1) * d] = _attend(_heads(q[b])[h], _heads(k[b])[h], _heads(v[b])[h])
    return out


def _temporal_ref(attn, x):  # attention over the T frames of a clip, per token position
    q, k, v = attn.qkv(x).split(C, dim=-1)
    out = torch.zeros_like(x)
    L = x.shape[1]
    for clip in range(N):
        frames = slice(clip * T, (clip + 1) * T)
        for tok in range(L):
            for h in range(H):
                qs = q[frames, tok, h * d : (h + 1) * d]
                ks = k[frames, tok, h * d : (h + 1) * d]
                vs = v[frames, tok, h * d : (h + 1) * d]
                out[frames, tok, h * d : (h + 1) * d] = _attend(qs, ks, vs)
    return out


@pytest.fixture
def x():
    torch.manual_seed(0)
    return torch.randn(N * T, n, C)


def _make(mode):
    torch.manual_seed(1)
    return SpatioTemporalAttention(C, H, mode=mode).eval()


def test_vanilla_is_per_frame_attention(x):
    attn = _make("vanilla")
    with torch.no_grad():
        torch.testing.assert_close(attn(x, T), attn.proj(_spatial_ref(attn, x)), atol=1e-5, rtol=1e-5)


def test_parallel_fuses_interleaved_weights(x):
    attn = _make("parallel")
    with torch.no_grad():
        xs, xt = _spatial_ref(attn, x), _temporal_ref(attn, x)
        logits = attn.ts_attn(torch.cat([xs, xt], -1).mean(1, keepdim=True))  # (B, 1, 2C)
        # feature 2c is the spatial weight of channel c, 2c+1 the temporal one
        ws, wt = logits[..., 0::2], logits[..., 1::2]
        a_s = torch.exp(ws) / (torch.exp(ws) + torch.exp(wt))
        expected = attn.proj(xs * a_s + xt * (1 - a_s))
        torch.testing.assert_close(attn(x, T), expected, atol=1e-5, rtol=1e-5)


def test_series_reapplies_qkv_between_spatial_and_temporal(x):
    attn = _make("series")
    with torch.no_grad():
        expected = attn.proj(_temporal_ref(attn, _spatial_ref(attn, x)))
        torch.testing.assert_close(attn(x, T), expected, atol=1e-5, rtol=1e-5)


def test_coupling_attends_over_all_tokens_of_a_clip(x):
    attn = _make("coupling")
    with torch.no_grad():
        q, k, v = attn.qkv(x).split(C, dim=-1)
        out = torch.zeros_like(x)
        for clip in range(N):
            frames = slice(clip * T, (clip + 1) * T)
            for h in range(H):
                sl = slice(h * d, (h + 1) * d)
                o = _attend(
                    q[frames, :, sl].reshape(T * n, d),
                    k[frames, :, sl].reshape(T * n, d),
                    v[frames, :, sl].reshape(T * n, d),
                )
                out[frames, :, sl] = o.reshape(T, n, d)
        torch.testing.assert_close(attn(x, T), attn.proj(out), atol=1e-5, rtol=1e-5)


def test_temporal_mode_attends_over_token_means(x):
    attn = _make("temporal")
    with torch.no_grad():
        got = attn(x, T)
        assert got.shape == (N * T, 1, C)
        torch.testing.assert_close(got, attn.proj(_temporal_ref(attn, x.mean(1, keepdim=True))), atol=1e-5, rtol=1e-5)


def test_clips_do_not_leak_into_each_other(x):
    attn = _make("parallel")
    with torch.no_grad():
        y = x.clone()
        y[T:] += 1.0  # change only the second clip
        torch.testing.assert_close(attn(x, T)[:T], attn(y, T)[:T])
        assert not torch.allclose(attn(x, T)[T:], attn(y, T)[T:])


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="vanilla"):
        SpatioTemporalAttention(C, H, mode="diagonal")
