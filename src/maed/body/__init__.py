"""Body models (SMPL, Anny) behind one interface, joint conventions and geometry.

Importing this package imports neither smplx nor anny; they are loaded when a model is built.
"""

from __future__ import annotations

import os

from maed.body.base import BodyModel, BodyOutput, ancestors
from maed.body.geometry import (
    axis_angle_to_rotmat,
    batch_rodrigues,
    convert_crop_cam_to_orig_img,
    rot6d_to_rotmat,
    rotmat_to_6d,
    rotmat_to_axis_angle,
    similarity_procrustes,
    weak_perspective_projection,
)
from maed.errors import ConfigError

BODY_MODELS = ("smpl", "anny")

__all__ = [
    "BODY_MODELS",
    "BodyModel",
    "BodyOutput",
    "ancestors",
    "axis_angle_to_rotmat",
    "batch_rodrigues",
    "body_model_from_config",
    "build_body_model",
    "convert_crop_cam_to_orig_img",
    "rot6d_to_rotmat",
    "rotmat_to_6d",
    "rotmat_to_axis_angle",
    "similarity_procrustes",
    "weak_perspective_projection",
]


def build_body_model(
    name: str = "smpl", model_dir: str | os.PathLike | None = None, gender: str = "neutral"
) -> BodyModel:
    """Build a body model by name.

    ``smpl``: the user's SMPL files from ``model_dir`` (default ``$MAED_DATA_DIR/smpl_data``; see
    ``maed.body.smpl``; a missing file raises one ``AssetError`` listing what is expected and where to get
    it). ``anny``: the free Anny model from the
    ``anny`` package (``pip install maed[anny]``); ``model_dir`` and ``gender`` are not used.
    """
    key = str(name).lower()
    if key == "smpl":
        from maed.body.smpl import SMPL

        if model_dir is None:
            from maed.paths import data_dir

            model_dir = data_dir() / "smpl_data"
        return SMPL(model_dir=model_dir, gender=gender)
    if key == "anny":
        from maed.body.anny_model import AnnyBody

        return AnnyBody()
    raise ConfigError(f"MODEL.BODY_MODEL: unknown body model {name!r}; expected one of {BODY_MODELS}")


def body_model_from_config(cfg) -> BodyModel:
    """``MODEL.BODY_MODEL`` built from ``PATHS.BODY_MODEL_DIR`` (or ``<data dir>/smpl_data``)."""
    from maed.paths import resolve_paths

    return build_body_model(cfg.MODEL.BODY_MODEL, model_dir=resolve_paths(cfg.PATHS)["body_model_dir"])
