"""Body models (SMPL, Anny) behind one interface, joint conventions and geometry.

Importing this package imports neither torch, smplx nor anny: the re-exported names load their module on
first use, and the body models load theirs when one is built.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from maed.errors import ConfigError

if TYPE_CHECKING:
    from maed.body.base import BodyModel

BODY_MODELS = ("smpl", "anny")

#: re-exported names -> the submodule defining them, imported on first use so that importing
#: ``maed.body.joints`` (plain lists) or this package does not import torch
_EXPORTS = {
    "BodyModel": "maed.body.base",
    "BodyOutput": "maed.body.base",
    "ancestors": "maed.body.base",
    "axis_angle_to_rotmat": "maed.body.geometry",
    "batch_rodrigues": "maed.body.geometry",
    "convert_crop_cam_to_orig_img": "maed.body.geometry",
    "rot6d_to_rotmat": "maed.body.geometry",
    "rotmat_to_6d": "maed.body.geometry",
    "rotmat_to_axis_angle": "maed.body.geometry",
    "similarity_procrustes": "maed.body.geometry",
    "weak_perspective_projection": "maed.body.geometry",
    "PoseLayout": "maed.body.joints",
    "pose_layout": "maed.body.joints",
}

__all__ = ["BODY_MODELS", "body_model_from_config", "build_body_model", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'maed.body' has no attribute {name!r}")


def build_body_model(
    name: str = "smpl", model_dir: str | os.PathLike | None = None, gender: str = "neutral", rig: str = ""
) -> BodyModel:
    """Build a body model by name.

    ``smpl``: the user's SMPL files from ``model_dir`` (default ``$MAED_DATA_DIR/smpl_data``; see
    ``maed.body.smpl``; a missing file raises one ``AssetError`` listing what is expected and where to get
    it); ``rig`` must be empty. ``anny``: the free Anny model from the ``anny`` package (``pip install
    maed[anny]``) with ``rig`` ``"anny"`` (104 bones, the default for ``""``) or ``"cmu_mb"`` (31 bones);
    ``model_dir`` and ``gender`` are not used.
    """
    from maed.body.joints import pose_layout

    key = str(name).lower()
    if key not in BODY_MODELS:
        raise ConfigError(f"MODEL.BODY_MODEL: unknown body model {name!r}; expected one of {BODY_MODELS}")
    layout = pose_layout(key, rig)  # checks the rig
    if key == "smpl":
        from maed.body.smpl import SMPL

        if model_dir is None:
            from maed.paths import data_dir

            model_dir = data_dir() / "smpl_data"
        return SMPL(model_dir=model_dir, gender=gender)
    from maed.body.anny_model import AnnyBody

    return AnnyBody(rig=layout.rig)


def body_model_from_config(cfg, model_dir: str | os.PathLike | None = None) -> BodyModel:
    """The one way a config becomes a body model: ``MODEL.BODY_MODEL`` with ``MODEL.BODY_RIG``, built from
    ``model_dir`` (default ``PATHS.BODY_MODEL_DIR``, or ``<data dir>/smpl_data``)."""
    from maed.paths import resolve_paths

    if model_dir is None:
        model_dir = resolve_paths(cfg.PATHS)["body_model_dir"]
    return build_body_model(cfg.MODEL.BODY_MODEL, model_dir=model_dir, rig=cfg.MODEL.BODY_RIG)
