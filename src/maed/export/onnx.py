"""MAED as an ONNX model: clip in, parameters, joints and mesh out (the body model is part of the graph).

Graph interface:

- input ``images``: N x T x 3 x S x S float32, ImageNet-normalised RGB crops (S = the model's crop size,
  224 for the original); for a model with the ``keypoints`` encoder, input ``keypoints``: N x T x K x C float32
  landmarks (x, y in [-1, 1] of the crop box, visibility, optionally the world position; K and C fixed).
- outputs ``theta`` N x T x (3 + 3J + B), ``kp_3d`` N x T x K x 3 (metres), ``kp_2d`` N x T x K x 2 ([-1, 1]),
  ``verts`` N x T x V x 3 (metres); the same tensors as ``MAED.forward``.

Dynamic axes: N (clips) and T (frames per clip). For attention modes with a learned temporal embedding
(``series``, ``parallel``, ``coupling``) T runs from 1 to ``MODEL.ENCODER.MAX_SEQLEN`` (16); a model built
with ``INTERP_TEMP_EMBED=True`` is exported for that range too (the interpolation branch is not in the
graph). ``vanilla`` and ``temporal`` take any T. S is fixed.

Exporter: ``torch.onnx.export(..., dynamo=True)`` (torch.export, then onnxscript). The TorchScript exporter
also runs but records the SMPL layer's batch size as a constant (smplx computes it with Python's ``max``),
so its graph only accepts the N x T it was traced with. What makes the dynamo export work:

- attention over more than four axes is folded to four (``maed.models.attention``; the ONNX translation
  takes 4-d attention only);
- during the export only, smplx's ``SMPLLayer`` runs through :func:`_smpl_layer_forward`, the same
  ``smplx.lbs.lbs`` call with the kinematic parents as Python integers (smplx indexes a Python list with a
  tensor, which torch.export cannot trace) and without ``len(tensor)``, which would fix the batch size;
  Anny's phenotype interpolation gets the same treatment of ``len`` (``_LEN_OF_BATCH_MODULES``);
- ``torch.searchsorted`` (Anny's phenotype interpolation) has no ONNX operator: :func:`_searchsorted_1d`
  translates it.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import torch
from torch import nn

from maed.errors import ConfigError, MaedError
from maed.models.keypoints import random_keypoints
from maed.utils.io import atomic_path

OUTPUT_NAMES = ("theta", "kp_3d", "kp_2d", "verts")
#: the graph's input is named after what the model takes (``MAED.input_kind``)
INPUT_NAMES = ("images", "keypoints")


class ExportError(MaedError):
    """The model could not be exported, or the exported graph disagrees with PyTorch."""


class _Outputs(nn.Module):
    """images or keypoints -> (theta, kp_3d, kp_2d, verts): the exporter wants a tuple of tensors."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(inputs)
        return tuple(getattr(out, name) for name in OUTPUT_NAMES)


def example_clip(model: nn.Module, n: int, t: int, seed: int = 0) -> torch.Tensor:
    """A random clip of ``n`` x ``t`` frames in ``model``'s input layout: N x T x 3 x S x S normal noise for
    image encoders, N x T x K x C landmarks (``maed.models.keypoints.random_keypoints``) for the keypoint one."""
    generator = torch.Generator().manual_seed(seed)
    encoder = model.encoder
    if getattr(model, "input_kind", "images") == "keypoints":
        return random_keypoints(n, t, encoder.num_keypoints, encoder.world, generator=generator)
    side = getattr(encoder, "img_size", 224)
    return torch.randn(n, t, 3, side, side, generator=generator)


class _IntParents(list):
    """Kinematic parents as Python integers, with the ``.shape`` smplx reads from its parents tensor."""

    @property
    def shape(self) -> tuple[int]:
        return (len(self),)


def _smpl_layer_forward(layer, parents: _IntParents, betas=None, global_orient=None, body_pose=None, **_unused):
    """``smplx.SMPLLayer.forward`` for rotation matrices, traceable: same ``lbs`` call, joint selection and
    mapping; ``parents`` as Python integers, the batch size from the tensors' shapes instead of ``len()``."""
    from smplx.lbs import lbs
    from smplx.utils import SMPLOutput

    full_pose = torch.cat(
        [global_orient.reshape(-1, 1, 3, 3), body_pose.reshape(-1, layer.NUM_BODY_JOINTS, 3, 3)], dim=1
    )
    vertices, joints = lbs(
        betas,
        full_pose,
        layer.v_template,
        layer.shapedirs,
        layer.posedirs,
        layer.J_regressor,
        parents,
        layer.lbs_weights,
        pose2rot=False,
    )
    joints = layer.vertex_joint_selector(vertices, joints)
    if layer.joint_mapper is not None:
        joints = layer.joint_mapper(joints)
    return SMPLOutput(vertices=vertices, joints=joints, betas=betas, global_orient=global_orient, body_pose=body_pose)


#: modules of body-model packages that size tensors with ``len(batch_tensor)``, which fixes the batch size
#: in a trace; during export their ``len`` is the first dimension as torch.export sees it
_LEN_OF_BATCH_MODULES = ("anny.utils.interpolation",)


def _first_dim(x):
    return x.shape[0]


@contextmanager
def exportable(model: nn.Module):
    """Within this context ``model``'s SMPL layers (if any) run through :func:`_smpl_layer_forward`, and the
    modules of ``_LEN_OF_BATCH_MODULES`` that are loaded read batch sizes from shapes."""
    import sys

    try:
        from smplx import SMPLLayer
    except ImportError:  # no SMPL in this model then
        SMPLLayer = ()
    layers = [m for m in model.modules() if SMPLLayer and isinstance(m, SMPLLayer)]
    for layer in layers:
        parents = _IntParents(int(p) for p in layer.parents)  # read here: inside the trace they are symbolic
        layer.forward = partial(_smpl_layer_forward, layer, parents)
    patched = [sys.modules[name] for name in _LEN_OF_BATCH_MODULES if name in sys.modules]
    for module in patched:
        module.len = _first_dim  # found before the builtin by the module's functions
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward
        for module in patched:
            del module.len


def _searchsorted_1d(sorted_sequence, values, out_int32: bool = False, right: bool = False, side=None, sorter=None):
    """ONNX translation of ``torch.searchsorted`` on a sorted 1-d sequence (ONNX has no such operator; Anny's
    phenotype interpolation uses it): the index is the count of entries below each value (``left``), or
    below or equal (``right``). Sorters are not supported."""
    from onnxscript import INT32, INT64
    from onnxscript import opset18 as op

    column = op.Unsqueeze(values, [-1])  # (..., 1) against (n,)
    before = op.LessOrEqual(sorted_sequence, column) if right or side == "right" else op.Less(sorted_sequence, column)
    index = op.ReduceSum(op.Cast(before, to=INT64.dtype), [-1], keepdims=0)
    return op.Cast(index, to=INT32.dtype) if out_int32 else index


def _check_plain_float32(model: nn.Module) -> None:
    setup = getattr(model, "inference_setup", None)
    if setup is not None or any(p.dtype != torch.float32 for p in model.parameters()):
        raise ConfigError(
            "ONNX export takes the plain float32 model: load it with maed.load_model(..., optimize=False)"
        )


def export_onnx(
    model: nn.Module,
    out: str | os.PathLike,
    *,
    example_shape: tuple[int, int] = (2, 4),
    opset: int = 18,
) -> Path:
    """Write ``model`` (a float32 MAED in eval mode, on CPU) as an ONNX file at ``out``, atomically.

    ``example_shape`` is the (N, T) of the clip traced; N and T stay dynamic in the graph (see the module
    docstring for their ranges). Returns the written path.
    """
    _check_plain_float32(model)
    model = model.eval()
    encoder = model.encoder
    n, t = example_shape
    max_t = encoder.max_seqlen if getattr(encoder, "has_temp_embed", False) else None
    if max_t is not None:
        t = min(t, max_t)
    inputs = example_clip(model, n, t)
    input_name = getattr(model, "input_kind", "images")
    dims = {0: torch.export.Dim("N", min=1), 1: torch.export.Dim("T", min=1, max=max_t or 1 << 16)}
    out = Path(out)
    try:
        import onnx  # noqa: F401  (the exporter needs both)
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise MaedError(
            f"ONNX export needs onnx and onnxscript ({e}); install them with `pip install maed[onnx]`"
        ) from None
    with atomic_path(out) as tmp, torch.no_grad(), exportable(model):
        try:
            program = torch.onnx.export(
                _Outputs(model).eval(),
                (inputs,),
                dynamo=True,
                input_names=[input_name],
                output_names=list(OUTPUT_NAMES),
                dynamic_shapes=(dims,),
                opset_version=opset,
                custom_translation_table={torch.ops.aten.searchsorted.Tensor: _searchsorted_1d},
                verbose=False,
            )
        except Exception as e:  # the exporter's errors are long; keep its first line and say what was exported
            raise ExportError(
                f"ONNX export of the model failed ({type(e).__name__}); run `maed --traceback export onnx ...` "
                "for the exporter's report"
            ) from e
        program.save(str(tmp))
    return out


def onnx_session(path: str | os.PathLike, threads: int | None = None):
    """An onnxruntime CPU session for an exported model."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise MaedError(
            f"running ONNX models needs onnxruntime ({e}); install it with `pip install maed[onnx]`"
        ) from None
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def compare_with_pytorch(path: str | os.PathLike, model: nn.Module, images: torch.Tensor) -> dict[str, float]:
    """Max absolute difference per output between onnxruntime and PyTorch (``model`` float32) on ``images``
    (a clip in the model's input layout, :func:`example_clip`); vertices and joints in metres. Also
    ``onnx_seconds`` and ``torch_seconds``."""
    session = onnx_session(path)
    t0 = time.perf_counter()
    got = session.run(list(OUTPUT_NAMES), {session.get_inputs()[0].name: images.numpy()})
    onnx_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with torch.no_grad():
        ref = _Outputs(model.eval())(images)
    torch_s = time.perf_counter() - t0
    diffs = {name: float((torch.from_numpy(g) - r).abs().max()) for name, g, r in zip(OUTPUT_NAMES, got, ref)}
    return {**diffs, "onnx_seconds": onnx_s, "torch_seconds": torch_s}
