"""`maed export onnx` on a small model in the authors' checkpoint layout: the graph runs in onnxruntime with
other clip sizes than the one traced and matches PyTorch float32."""

from __future__ import annotations

import pytest
import torch
import yaml

from maed.cli import main
from maed.models import build_model

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

SMALL = {
    "DATASET": {"WIDTH": 64, "HEIGHT": 64},
    "MODEL": {
        "ENCODER": {
            "BACKBONE_LAYERS": [1, 1, 1],
            "BACKBONE_WIDTH": 32,
            "EMBED_DIM": 64,
            "NUM_HEADS": 4,
            "NUM_BLOCKS": 1,
            "SPA_TEMP_MODE": "parallel",
        },
        "DECODER": {"HIDDEN_DIM": 128},
    },
}


@pytest.fixture(scope="module")
def authors_checkpoint(tmp_path_factory, smpl_body):
    """A small model saved as the authors' release is: DDP's ``module.`` prefix, SMPL buffers inside."""
    tmp = tmp_path_factory.mktemp("onnx")
    cfg_path = tmp / "small.yaml"
    cfg_path.write_text(yaml.safe_dump({"_BASE_": "stage2", **SMALL}))
    torch.manual_seed(0)
    model = build_model(str(cfg_path), body_model=smpl_body).eval()
    with torch.no_grad():  # a mesh that moves with the input, so that agreement means something
        for name, p in model.decoder.named_parameters():
            if name.endswith("weight") and ("joint_regs" in name or "dec" in name):
                p.mul_(10)
    sd = {"module." + k: v for k, v in model.state_dict().items()}
    sd["module.decoder.smpl.v_template"] = torch.zeros(6890, 3)
    sd["module.decoder.smpl.J_regressor_extra"] = torch.zeros(9, 6890)
    torch.save({"state_dict": sd, "epoch": 3, "performance": 50.0}, tmp / "model_best.pth.tar")
    return tmp / "model_best.pth.tar", cfg_path, model


def test_export_matches_pytorch_for_any_clip_size(authors_checkpoint, smpl_dir, tmp_path, capsys):
    import onnx
    import onnxruntime as ort

    from maed.models import load_model

    ckpt, cfg_path, _ = authors_checkpoint
    # the reference: the checkpoint as a user loads it, which must hold its float32 weights, not bf16 ones
    model = load_model(ckpt, body_model_dir=smpl_dir, config=str(cfg_path))
    assert all(p.dtype == torch.float32 for p in model.parameters())
    out = tmp_path / "maed.onnx"
    rc = main(
        ["export", "onnx", "--checkpoint", str(ckpt), "--config", str(cfg_path)]
        + ["--body-model-dir", str(smpl_dir), "--out", str(out), "--seqlen", "3"]
    )
    assert rc == 0 and "vertices" in capsys.readouterr().out
    graph = onnx.load(str(out), load_external_data=False).graph
    assert [i.name for i in graph.input] == ["images"]
    assert [o.name for o in graph.output] == ["theta", "kp_3d", "kp_2d", "verts"]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(5)
    for n, t in ((1, 1), (3, 16), (2, 5)):  # other than the traced (2, 3): N and T are dynamic
        x = torch.randn(n, t, 3, 64, 64, generator=g)
        theta, kp_3d, kp_2d, verts = session.run(None, {"images": x.numpy()})
        with torch.no_grad():
            ref = model(x)
        assert verts.shape == (n, t, 6890, 3) and theta.shape == (n, t, 85)
        assert abs(torch.from_numpy(verts) - ref["verts"]).max() < 1e-3  # 1 mm
        assert abs(torch.from_numpy(kp_3d) - ref["kp_3d"]).max() < 1e-3
        assert abs(torch.from_numpy(kp_2d) - ref["kp_2d"]).max() < 1e-4
    assert (ref["verts"][0] - ref["verts"][1]).abs().max() > 0.01  # the outputs do depend on the input


def test_export_refuses_a_directory_and_an_optimised_model(authors_checkpoint, smpl_dir, tmp_path, capsys):
    from maed.errors import ConfigError
    from maed.export.onnx import export_onnx
    from maed.models.fast import optimize_for_inference

    ckpt, cfg_path, model = authors_checkpoint
    rc = main(
        ["export", "onnx", "--checkpoint", str(ckpt), "--config", str(cfg_path)]
        + ["--body-model-dir", str(smpl_dir), "--out", str(tmp_path)]
    )
    assert rc == 2 and "is a directory" in capsys.readouterr().err
    import copy

    fast = optimize_for_inference(copy.deepcopy(model), precision="bf16")
    with pytest.raises(ConfigError, match="optimize=False"):
        export_onnx(fast, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_searchsorted_translation_matches_torch(tmp_path):
    """Anny's phenotype interpolation needs torch.searchsorted, which ONNX lacks; the translation must give
    torch's indices in every interval, at the anchors themselves, and outside the range."""
    import onnxruntime as ort

    from maed.export.onnx import _searchsorted_1d

    class Search(torch.nn.Module):
        def __init__(self, right: bool):
            super().__init__()
            self.register_buffer("anchors", torch.tensor([0.0, 0.1, 0.5, 0.5, 0.9, 1.0]))
            self.right = right

        def forward(self, v):
            return torch.searchsorted(self.anchors, v, right=self.right)

    v = torch.tensor([-1.0, 0.0, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 1.0, 2.0])
    for right in (False, True):
        path = tmp_path / f"search_{right}.onnx"
        dims = {"v": {0: torch.export.Dim("B", min=1)}}
        program = torch.onnx.export(
            Search(right).eval(),
            (v,),
            dynamo=True,
            dynamic_shapes=dims,
            custom_translation_table={torch.ops.aten.searchsorted.Tensor: _searchsorted_1d},
        )
        program.save(str(path))
        (got,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"v": v.numpy()})
        assert got.tolist() == torch.searchsorted(Search(right).anchors, v, right=right).tolist()


def test_keypoint_model_exports_with_a_keypoints_input_and_matches_pytorch(smpl_body, smpl_dir, tmp_path, capsys):
    import onnx
    import onnxruntime as ort

    from maed.config import load_config
    from maed.models.checkpoint import make_checkpoint
    from maed.models.keypoints import random_keypoints
    from maed.utils.io import atomic_torch_save

    cfg = load_config(
        "stage2",
        [
            "MODEL.ENCODER.BACKBONE=keypoints",
            "MODEL.ENCODER.KP_WORLD=True",
            "MODEL.ENCODER.EMBED_DIM=32",
            "MODEL.ENCODER.NUM_HEADS=4",
            "MODEL.ENCODER.NUM_BLOCKS=1",
            "MODEL.ENCODER.SPA_TEMP_MODE=parallel",
            "MODEL.DECODER.HIDDEN_DIM=64",
        ],
    )
    torch.manual_seed(0)
    model = build_model(cfg, body_model=smpl_body).eval()
    with torch.no_grad():  # a mesh that moves with the input, so that agreement means something
        for name, p in model.decoder.named_parameters():
            if name.endswith("weight") and ("joint_regs" in name or "dec" in name):
                p.mul_(10)
    ckpt = tmp_path / "kp.pt"
    atomic_torch_save(make_checkpoint(model, cfg.to_dict()), ckpt)
    out = tmp_path / "kp.onnx"
    rc = main(["export", "onnx", "--checkpoint", str(ckpt), "--body-model-dir", str(smpl_dir), "--out", str(out)])
    assert rc == 0 and "vertices" in capsys.readouterr().out
    graph = onnx.load(str(out), load_external_data=False).graph
    assert [i.name for i in graph.input] == ["keypoints"]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(5)
    for n, t in ((1, 1), (3, 16), (2, 5)):  # other than the traced (2, 4): N and T are dynamic
        x = random_keypoints(n, t, world=True, generator=g)
        hidden = x[..., 2] == 0
        x[..., :2][hidden] = float("nan")  # hidden landmarks' positions are ignored in the graph too
        theta, kp_3d, kp_2d, verts = session.run(None, {"keypoints": x.numpy()})
        with torch.no_grad():
            ref = model(x)
        assert verts.shape == (n, t, 6890, 3) and theta.shape == (n, t, 85)
        assert abs(torch.from_numpy(verts) - ref["verts"]).max() < 1e-3  # 1 mm
        assert abs(torch.from_numpy(kp_2d) - ref["kp_2d"]).max() < 1e-4
    assert (ref["verts"][0] - ref["verts"][1]).abs().max() > 0.01  # the outputs do depend on the input
