"""The fast inference path (maed.models.fast) against the plain float32 model, and the pieces it relies on."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import maed
from maed.errors import ConfigError
from maed.models import build_model
from maed.models.attention import attention
from maed.models.fast import bf16_matrix_instructions, optimize_for_inference, resolve_precision
from maed.models.ste import StdConv2dSame

TINY = [
    "DATASET.WIDTH=64",
    "DATASET.HEIGHT=64",
    "MODEL.ENCODER.BACKBONE_LAYERS=[1,1,1]",
    "MODEL.ENCODER.BACKBONE_WIDTH=32",
    "MODEL.ENCODER.EMBED_DIM=64",
    "MODEL.ENCODER.NUM_HEADS=4",
    "MODEL.ENCODER.NUM_BLOCKS=1",
    "MODEL.DECODER.HIDDEN_DIM=128",
]


@pytest.fixture(scope="module")
def tiny_model(smpl_body):
    """Seeded weights; the decoder's output layers scaled up from their near-zero initialisation so that
    the mesh moves with the input (a model whose output ignores the input would agree with anything)."""
    torch.manual_seed(0)
    model = build_model("stage2", body_model=smpl_body, overrides=TINY).eval()
    with torch.no_grad():
        for name, p in model.decoder.named_parameters():
            if name.endswith("weight") and ("joint_regs" in name or "dec" in name):
                p.mul_(10)
    return model


def _clips():
    return torch.randn(2, 4, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def test_bf16_path_agrees_with_float32_within_5mm(tiny_model):
    fast = optimize_for_inference(copy.deepcopy(tiny_model), precision="bf16")
    x = _clips()
    with torch.no_grad():
        ref, out = tiny_model(x), fast(x)
    motion = (ref["verts"][0] - ref["verts"][1]).abs().max()
    assert motion > 0.02, "the reference barely moves with the input: the check would have no teeth"
    assert (out["verts"] - ref["verts"]).abs().max() < 0.005
    assert (out["kp_3d"] - ref["kp_3d"]).abs().max() < 0.005
    assert all(v.dtype == torch.float32 for v in out.values())
    # bf16 really ran: the outputs differ, the encoder holds bf16 except the float32 conv masters
    assert not torch.equal(out["verts"], ref["verts"])
    enc = fast.encoder
    assert enc.pos_embed.dtype == torch.bfloat16 and enc.blocks[0].attn.qkv.weight.dtype == torch.bfloat16
    assert all(m.weight.dtype == torch.float32 for m in enc.modules() if isinstance(m, StdConv2dSame))
    assert fast.decoder.fc1.weight.dtype == torch.float32
    assert fast.inference_setup.precision == "bf16"


def test_fp32_path_is_the_reference(tiny_model):
    fast = optimize_for_inference(copy.deepcopy(tiny_model), precision="fp32")
    x = _clips()
    with torch.no_grad():
        torch.testing.assert_close(fast(x)["verts"], tiny_model(x)["verts"], atol=1e-6, rtol=0)


def test_standardised_weight_is_reused_until_the_weight_changes():
    torch.manual_seed(0)
    conv = StdConv2dSame(4, 8, kernel_size=3)
    with torch.no_grad():
        first = conv.standardized_weight()
        assert conv.standardized_weight() is first  # computed once
    opt = torch.optim.SGD(conv.parameters(), lr=0.5)
    conv(torch.randn(1, 4, 8, 8)).sum().backward()  # with autograd: recomputed, differentiable
    opt.step()
    with torch.no_grad():
        after_step = conv.standardized_weight()
        assert after_step is not first and not torch.equal(after_step, first)
        conv.load_state_dict({"weight": torch.randn(8, 4, 3, 3)})
        after_load = conv.standardized_weight()
        assert after_load is not after_step
        expected = (conv.weight - conv.weight.mean((1, 2, 3), keepdim=True)) / (
            conv.weight.std((1, 2, 3), keepdim=True, unbiased=False) + 1e-5
        )
        torch.testing.assert_close(after_load, expected)
    w = conv.standardized_weight()
    assert w.requires_grad and w is not after_load


def test_precision_choice(monkeypatch):
    has = bf16_matrix_instructions("cpu")
    assert resolve_precision("auto", "cpu") == ("bf16" if has else "fp32")
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": False, "amx_bf16": False})
    assert bf16_matrix_instructions("cpu") is None and resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": True, "amx_bf16": False})
    assert bf16_matrix_instructions("cpu") == "AVX512-BF16" and resolve_precision("AUTO", "cpu") == "bf16"
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        resolve_precision("tf32", "cpu")
    with pytest.raises(ConfigError, match="fp8"):
        resolve_precision("fp8", "cpu")


def test_load_model_gives_the_float32_numbers_by_default_even_where_bf16_is_native(
    tiny_model, smpl_dir, tmp_path, monkeypatch
):
    """The same call gives the same numbers on every machine: float32 unless bf16 is asked for, also on a CPU
    with bf16 matrix instructions (claimed here, so the test bites on any machine)."""
    from maed.config import load_config
    from maed.models.checkpoint import make_checkpoint

    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": True, "amx_bf16": False})
    assert resolve_precision("auto", "cpu") == "bf16"
    torch.save(make_checkpoint(tiny_model, load_config("stage2", TINY).to_dict()), tmp_path / "ck.pt")
    default = maed.load_model(tmp_path / "ck.pt", body_model_dir=smpl_dir)
    auto = maed.load_model(tmp_path / "ck.pt", body_model_dir=smpl_dir, precision="auto")
    plain = maed.load_model(tmp_path / "ck.pt", body_model_dir=smpl_dir, optimize=False)
    assert default.inference_setup.precision == "fp32" and auto.inference_setup.precision == "bf16"
    assert all(p.dtype == torch.float32 for p in default.parameters()) and not default.training
    assert plain.encoder.pos_embed.dtype == torch.float32 and not hasattr(plain, "inference_setup")
    x = _clips()
    with torch.no_grad():
        reference = tiny_model(x)["verts"]
        torch.testing.assert_close(default(x)["verts"], reference, atol=1e-6, rtol=0)
        torch.testing.assert_close(plain(x)["verts"], reference)
        bf16_diff = (auto(x)["verts"] - reference).abs().max()
        assert 1e-5 < bf16_diff < 0.005  # bf16 is an explicit choice: close, not the same
    with pytest.raises(ConfigError, match="precision"):
        maed.load_model(tmp_path / "ck.pt", body_model_dir=smpl_dir, precision="half")


def test_bf16_attention_on_cpu_matches_the_fused_kernel():
    g = torch.Generator().manual_seed(0)
    for shape in ((3, 4, 17, 16), (2, 4, 5, 16, 8)):  # spatial (B, H, n, d) and temporal (N, H, n, T, d)
        q, k, v = (torch.randn(shape, generator=g) for _ in range(3))
        ref = F.scaled_dot_product_attention(*(t.reshape(-1, *shape[-3:]) for t in (q, k, v))).reshape(shape)
        torch.testing.assert_close(attention(q, k, v), ref, atol=1e-5, rtol=1e-5)  # float32: the fused kernel
        low = attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
        assert low.dtype == torch.bfloat16 and (low.float() - ref).abs().max() < 0.05


def test_activation_checkpointing_gives_the_same_gradients_with_less_memory(smpl_body):
    from maed.bench.train import saved_activation_bytes

    torch.manual_seed(0)
    plain = build_model("stage2", body_model=smpl_body, overrides=TINY)
    ckpt = copy.deepcopy(plain)
    ckpt.encoder.grad_checkpoint = True
    plain.eval(), ckpt.eval()  # no dropout: the same forward twice
    x = _clips()
    for m in (plain, ckpt):
        out = m(x)
        (out["verts"].square().mean() + out["kp_2d"].square().mean()).backward()
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=1e-5, msg=name)
    assert saved_activation_bytes(ckpt, x) < 0.6 * saved_activation_bytes(plain, x)
