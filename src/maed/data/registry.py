"""Every dataset the project knows, in one table: adding a dataset is adding one :class:`DatasetInfo` here
(plus its reader module under ``maed.data.prepare`` when it has a raw format).

The table is read by ``maed.paths`` (default directories), ``maed.data.loaders`` (which names the
training and evaluation loaders accept, strides, image subsampling), ``maed.data.prepare`` and
``maed prepare`` (readers, splits, other spellings) and ``maed.eval`` (which datasets can be evaluated,
with which joints and regressor). Importing it is cheap: no numpy, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from maed.body.joints import H36M_TO_J14, H36M_TO_J17, H36M_TO_J17_FIXED, J49_TO_J14, J49_TO_MPII3D
from maed.errors import ConfigError


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset.

    name: the database name (``<name>_<split>_db.pt``), the name configs and commands use.
    directory: its default image root and raw directory, relative to the data directory (``maed.paths``).
    splits: the splits ``maed prepare`` can write.
    reader: the module under ``maed.data.prepare`` that reads the raw format (``RAW_TREE``,
        ``find_splits``, ``read_split``), or None when there is no raw reader.
    aliases: other spellings ``maed prepare`` accepts.
    stride_3d: an integer window stride replacing ``DATASET.OVERLAP`` when the dataset is a 3D training
        video set (the original's stride 8 for 3DPW train), or None.
    image_frame_step: as an image training set, every n-th row is read (the original's 1/5 of MPI-INF-3DHP).
    eval_joints: index map from the evaluated joints (the regressor's, or the model's 49) to the
        ground-truth joints, under the original protocol; None: the dataset is not an evaluation set.
    eval_joints_strict: the same under the strict protocol (default: ``eval_joints``).
    eval_regressor: the body model's joint regressor evaluation applies to predicted vertices
        (``"h36m"``: ``J_regressor_h36m.npy``), or None for the model's own 49 joints.
    eval_split: the split ``maed eval`` reads unless told otherwise (one of ``splits``): the set the
        paper's numbers come from.
    eval_gt_joints: the ground-truth joints compared (indices into the database's 49), or None for the
        original's rule: the joints confident in the first frame of a window.
    own_body_ground_truth: the ground-truth pose and shape are parameters of the run's own body model (a
        dataset rendered from it, ``maed synth``), so the loader reads them in that model's layout and PVE's
        ground-truth meshes come from that model; False: SMPL parameters (neutral SMPL meshes).
    generator: the command that writes this dataset's databases and images into one folder (then both
        ``--db-dir`` and ``--data-root``), for datasets made by the project rather than prepared from raw data.
    """

    name: str
    directory: str
    splits: tuple[str, ...]
    reader: str | None = None
    aliases: tuple[str, ...] = ()
    stride_3d: int | None = None
    image_frame_step: int = 1
    eval_joints: tuple[int, ...] | None = None
    eval_joints_strict: tuple[int, ...] | None = None
    eval_regressor: str | None = None
    eval_split: str = "test"
    eval_gt_joints: tuple[int, ...] | None = None
    own_body_ground_truth: bool = False
    generator: str | None = None

    @property
    def evaluable(self) -> bool:
        return self.eval_joints is not None

    @property
    def reader_module(self) -> str | None:
        return None if self.reader is None else f"maed.data.prepare.{self.reader}"

    def joint_ids(self, strict: bool = False) -> list[int]:
        """The evaluation index map (``strict``: the strict protocol's, with the H36M order fixed)."""
        if self.eval_joints is None:
            raise ConfigError(
                f"dataset {self.name!r} is not an evaluation set; expected one of {', '.join(EVAL_DATASETS)}"
            )
        return list(self.eval_joints_strict if strict and self.eval_joints_strict is not None else self.eval_joints)


#: regressor name -> its file in the body-model directory
REGRESSOR_FILES = {"h36m": "J_regressor_h36m.npy"}

DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        DatasetInfo(
            "3dpw",
            "3dpw",
            ("train", "val", "test"),
            reader="threedpw",
            aliases=("pw3d",),
            stride_3d=8,
            eval_joints=tuple(H36M_TO_J14),
            eval_regressor="h36m",
        ),
        DatasetInfo(
            "mpii3d",
            "mpi_inf_3dhp",
            ("train", "val"),
            reader="mpii3d",
            aliases=("mpi_inf_3dhp",),
            image_frame_step=5,
            eval_joints=tuple(J49_TO_MPII3D),
            eval_split="val",  # the MPI-INF-3DHP test set, under the original's name
        ),
        DatasetInfo(
            "h36m",
            "human3.6m",
            ("train", "test"),
            reader="h36m",
            # the original's H36M_TO_J17 does not match the ground truth's order (ORIGINAL.md §9); strict fixes it
            eval_joints=tuple(H36M_TO_J17),
            eval_joints_strict=tuple(H36M_TO_J17_FIXED),
            eval_regressor="h36m",
        ),
        DatasetInfo("insta", "insta_variety", ("train", "test"), reader="insta"),
        DatasetInfo(
            "synth",
            "synth",
            ("train", "val", "test"),
            # the 14 LSP joints of the model's own 49 against the same 14 of the rendered bodies (Anny has no
            # H36M regressor); the hips (2, 3 of the 14) centre both, as in the 3DPW protocol
            eval_joints=tuple(J49_TO_J14),
            eval_gt_joints=tuple(J49_TO_J14),
            own_body_ground_truth=True,
            generator="maed synth",
        ),
        DatasetInfo("posetrack", "posetrack", ("train", "val"), reader="posetrack"),
        DatasetInfo("pennaction", "penn_action", ("train",), reader="pennaction"),
        DatasetInfo("coco2014-all", "coco2014", ("train",), reader="coco", aliases=("coco2014", "coco")),
        DatasetInfo("mpii", "mpii", ("train",), reader="mpii"),
        DatasetInfo("lspet", "lspet", ("train",), reader="lspet"),
    )
}

#: the datasets ``maed eval`` and training validation accept
EVAL_DATASETS = tuple(name for name, d in DATASETS.items() if d.evaluable)


def dataset_info(name: str, *, option: str = "dataset") -> DatasetInfo:
    """The entry of a dataset name as configs use it (no aliases); ``ConfigError`` naming ``option`` else."""
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"{option}: unknown dataset {name!r}; expected one of {', '.join(DATASETS)}") from None


def canonical_name(name: str) -> str:
    """A dataset name or one of its aliases, any case (``coco2014`` -> ``coco2014-all``), as the database name."""
    key = str(name).lower()
    for d in DATASETS.values():
        if key == d.name or key in d.aliases:
            return d.name
    raise ConfigError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")


def eval_dataset_info(name: str, *, option: str = "--dataset") -> DatasetInfo:
    """The entry of an evaluation set; ``ConfigError`` naming ``option`` for any other name."""
    info = DATASETS.get(name)
    if info is None or not info.evaluable:
        raise ConfigError(f"{option} {name!r}: expected one of {', '.join(EVAL_DATASETS)}")
    return info
