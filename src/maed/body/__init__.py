"""Body models (SMPL, Anny) behind one interface, joint conventions and geometry.

Importing this package imports neither torch, smplx nor anny: the re-exported names load their module on
first use, and the body models load theirs when one is built.
"""

from __future__ import annotations

import importlib

BODY_MODELS = ("smpl", "anny")

#: re-exported names -> the submodule defining them, imported on first use so that importing
#: ``maed.body.joints`` (plain lists) or this package does not import torch
_EXPORTS = {
    "build_body_model": "maed.body.factory",
    "body_model_from_config": "maed.body.factory",
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
    "PoseLayout": "maed.body.layout",
    "pose_layout": "maed.body.layout",
}

__all__ = ["BODY_MODELS", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:  # start-up: the submodule on first use (torch takes ~2 s to import)
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'maed.body' has no attribute {name!r}")
