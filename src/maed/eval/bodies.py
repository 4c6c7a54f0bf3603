"""What evaluation compares with: the joint regressor applied to predicted vertices and the body model of the
ground-truth meshes, for ``maed eval`` and for validation during training alike."""

from __future__ import annotations

import os

import torch

from maed.body import build_body_model
from maed.data.registry import REGRESSOR_FILES, eval_dataset_info
from maed.errors import AssetError


def evaluation_bodies(
    body_model: torch.nn.Module,
    dataset: str,
    *,
    body_model_dir: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    what: str = "evaluation",
    fix: str = "",
) -> tuple[torch.Tensor | None, torch.nn.Module | None]:
    """(joint regressor, ground-truth body model) for evaluating a model with ``body_model`` on ``dataset``;
    shared by ``maed eval`` and validation during training.

    The regressor is the dataset's (``maed.data.registry``: the H36M one for 3DPW and Human3.6M, None for
    MPI-INF-3DHP's own 49 joints), taken from the model's body model; without it one ``AssetError`` names
    the file (``what`` says who needs it, ``fix`` is appended). The ground-truth meshes of PVE come from
    the model's own body model when the dataset's ground truth is that model's parameters (``synth``:
    Anny with the run's rig, or SMPL); for the real datasets from neutral SMPL: the model's own body model
    when it is SMPL, else SMPL built from ``body_model_dir`` when the files are there, else None (PVE is
    then reported as null).
    """
    info = eval_dataset_info(dataset)
    regressor = info.eval_regressor
    J_regressor = None
    if regressor is not None:
        J_regressor = getattr(body_model, f"J_regressor_{regressor}", None)
        if J_regressor is None:
            raise AssetError(
                f"{what} needs {REGRESSOR_FILES[regressor]} (the 17 x 6890 Human3.6M regressor) in the body-model "
                f"directory ({body_model_dir or 'PATHS.BODY_MODEL_DIR'}), with MODEL.BODY_MODEL=smpl{fix}"
            )
    if info.own_body_ground_truth or (
        getattr(body_model, "name", "") == "smpl" and hasattr(body_model, "forward_axis_angle")
    ):
        return J_regressor, body_model
    if body_model_dir is None:
        return J_regressor, None

    try:
        gt_body = build_body_model("smpl", model_dir=body_model_dir)
    except AssetError:
        return J_regressor, None  # PVE needs SMPL ground-truth meshes; reported as null without them
    return J_regressor, gt_body.to(device) if device is not None else gt_body
