"""Building a body model by name (``maed.body.build_body_model``) or from a config."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from maed.body import BODY_MODELS
from maed.body.anny_model import AnnyBody
from maed.body.layout import pose_layout
from maed.body.smpl import SMPL
from maed.errors import ConfigError
from maed.paths import data_dir, resolve_paths

if TYPE_CHECKING:
    from maed.body.base import BodyModel


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
    key = str(name).lower()
    if key not in BODY_MODELS:
        raise ConfigError(f"MODEL.BODY_MODEL: unknown body model {name!r}; expected one of {BODY_MODELS}")
    layout = pose_layout(key, rig)  # checks the rig
    if key == "smpl":
        return SMPL(model_dir=data_dir() / "smpl_data" if model_dir is None else model_dir, gender=gender)

    return AnnyBody(rig=layout.rig)


def body_model_from_config(cfg, model_dir: str | os.PathLike | None = None) -> BodyModel:
    """The one way a config becomes a body model: ``MODEL.BODY_MODEL`` with ``MODEL.BODY_RIG``, built from
    ``model_dir`` (default ``PATHS.BODY_MODEL_DIR``, or ``<data dir>/smpl_data``)."""
    if model_dir is None:
        model_dir = resolve_paths(cfg.PATHS)["body_model_dir"]
    return build_body_model(cfg.MODEL.BODY_MODEL, model_dir=model_dir, rig=cfg.MODEL.BODY_RIG)
