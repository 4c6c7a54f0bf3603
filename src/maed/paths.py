"""Where the user's data lives: the one reader of ``MAED_DATA_DIR``.

``MAED_DATA_DIR`` (default ``./data``) holds the user's licence-gated assets in the tree documented in
``docs/DATA.md``::

    data/
      smpl_data/     SMPL_NEUTRAL.pkl, J_regressor_extra.npy, J_regressor_h36m.npy, smpl_mean_params.npz
      database/      <dataset>_<split>_db.pt
      3dpw/ mpi_inf_3dhp/ ...   raw images per dataset (directories from ``maed.data.registry``)
"""

from __future__ import annotations

import os
from pathlib import Path

from maed.data.registry import DATASETS
from maed.errors import AssetError


def data_dir() -> Path:
    """``$MAED_DATA_DIR``, or ``./data``."""
    return Path(os.environ.get("MAED_DATA_DIR", "data"))


#: the model shipped with the project and its sample clip, relative to the source checkout
DEFAULT_CHECKPOINT = Path("checkpoints") / "maed_kp_anny.pt"
SAMPLE_CLIP = Path("samples") / "two_people.mp4"


def project_root() -> Path:
    """The source checkout this package runs from (``src/maed/paths.py`` -> the repository root)."""
    return Path(__file__).resolve().parents[2]


def default_checkpoint() -> Path:
    """The shipped default model (``checkpoints/maed_kp_anny.pt`` of the checkout); ``AssetError`` when this
    installation has none, saying which options to give instead."""
    path = project_root() / DEFAULT_CHECKPOINT
    if not path.is_file():
        raise AssetError(
            f"no default model in this installation ({path} not found). Give a model explicitly: "
            "--checkpoint CKPT (a maed checkpoint, or the authors' model_best.pth.tar with "
            "--config configs/config_stage2.yaml --body-model-dir <your SMPL files>), or --keypoints-only for "
            "people and body keypoints without a mesh model"
        )
    return path


def sample_clip() -> Path:
    """The committed sample clip (``samples/two_people.mp4``: two Anny people, made by ``maed synth --video``);
    ``AssetError`` when this installation has none."""
    path = project_root() / SAMPLE_CLIP
    if not path.is_file():
        raise AssetError(f"no sample clip in this installation ({path} not found); give a video: maed demo INPUT")
    return path


def resolve_paths(paths_cfg) -> dict:
    """Fill the empty entries of a ``PathsConfig`` from the data directory. Returns plain strings."""
    root = Path(paths_cfg.DATA_DIR) if paths_cfg.DATA_DIR else data_dir()
    roots = {name: str(root / info.directory) for name, info in DATASETS.items()}
    roots.update(paths_cfg.DATASET_ROOTS)
    return {
        "data_dir": str(root),
        "db_dir": paths_cfg.DB_DIR or str(root / "database"),
        "body_model_dir": paths_cfg.BODY_MODEL_DIR or str(root / "smpl_data"),
        "dataset_roots": roots,
    }
