"""SMPL through ``smplx.SMPLLayer``, loaded without chumpy, with the original's 49 output joints (ORIGINAL.md §2)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maed.body.base import BodyModel, BodyOutput
from maed.body.joints import NUM_EXTRA_JOINTS, SMPL_JOINT_MAP
from maed.errors import AssetError, ConfigError
from maed.utils.safe_pickle import load_npz, load_smpl_pickle

GENDERS = ("neutral", "male", "female")
EXTRA_REGRESSOR = "J_regressor_extra.npy"
H36M_REGRESSOR = "J_regressor_h36m.npy"
MEAN_PARAMS = "smpl_mean_params.npz"
SMPL_SOURCE = "https://smpl.is.tue.mpg.de"
SPIN_DATA_SOURCE = "http://visiondata.cis.upenn.edu/spin/data.tar.gz"

# the official release names, accepted when SMPL_<GENDER>.pkl is absent
_OFFICIAL_TOKENS = {"neutral": ("neutral",), "male": ("m", "male"), "female": ("f", "female")}
_REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")


def _expected_files(gender: str) -> list[tuple[str, str]]:
    return [
        (f"SMPL_{gender.upper()}.pkl", f"the SMPL model (or SMPL_{gender.upper()}.npz), from {SMPL_SOURCE}"),
        (EXTRA_REGRESSOR, "9 x 6890 extra joint regressor"),
        (H36M_REGRESSOR, "17 x 6890 Human3.6M joint regressor, for evaluation"),
        (MEAN_PARAMS, "SPIN mean pose/shape/camera, for the iterative decoder"),
    ]


def asset_error(model_dir: str | os.PathLike | None, problem: str, gender: str = "neutral") -> AssetError:
    """The one error for a missing or malformed SMPL directory: what is wrong, what is expected, where from."""
    where = Path(model_dir).expanduser().resolve() if model_dir else None
    lines = [f"SMPL body model: {problem}", f"  directory searched: {where if where else '(none given)'}"]
    lines.append("  expected files:")
    for name, what in _expected_files(gender):
        status = "found" if where is not None and (where / name).is_file() else "missing"
        lines.append(f"    {name:24s} [{status}] {what}")
    lines += [
        f"  SMPL_{gender.upper()}.pkl: register and download SMPL from {SMPL_SOURCE} (the neutral model "
        "comes with SMPLify / SMPL 1.1); rename the file or keep its official name.",
        f"  {EXTRA_REGRESSOR}, {H36M_REGRESSOR}, {MEAN_PARAMS}: from the SPIN/VIBE data release "
        f"{SPIN_DATA_SOURCE} (also linked from the MAED README's data instructions).",
        "  Their licences forbid redistribution, so maed never ships or downloads them. Point "
        "PATHS.BODY_MODEL_DIR / --body-model-dir / $MAED_DATA_DIR/smpl_data at the directory.",
    ]
    return AssetError("\n".join(lines))


def find_model_file(model_dir: Path, gender: str) -> Path | None:
    """SMPL_<GENDER>.pkl / .npz, else an official ``basicModel_<g>_lbs_10_207_0_v1.x.x.pkl`` name."""
    for ext in ("pkl", "npz"):
        p = model_dir / f"SMPL_{gender.upper()}.{ext}"
        if p.is_file():
            return p
    if model_dir.is_dir():
        for p in sorted(model_dir.iterdir()):
            name = p.name.lower()
            official = name.startswith("basicmodel_") and name.endswith(".pkl") and "_lbs_" in name
            if official and name[len("basicmodel_") :].split("_lbs_")[0] in _OFFICIAL_TOKENS[gender]:
                return p
    return None


def load_smpl_data(path: str | os.PathLike) -> dict[str, Any]:
    """Read an SMPL model file (.pkl, chumpy or not, or .npz) into plain arrays, checking keys and shapes."""
    path = Path(path)
    data = load_npz(path) if path.suffix == ".npz" else load_smpl_pickle(path, required=_REQUIRED_KEYS)
    missing = [k for k in _REQUIRED_KEYS if k not in data]
    if missing:
        raise AssetError(f"{path}: not an SMPL model file, missing keys {missing} (has {sorted(data)})")
    V = np.shape(data["v_template"])[0]
    checks = {
        "v_template": (V, 3),
        "shapedirs": (V, 3, None),
        "posedirs": (V, 3, None),
        "J_regressor": (None, V),
        "weights": (V, None),
        "kintree_table": (2, None),
        "f": (None, 3),
    }
    for key, want in checks.items():
        got = np.shape(data[key])
        if len(got) != len(want) or any(w is not None and g != w for g, w in zip(got, want)):
            raise AssetError(f"{path}: '{key}' has shape {got}, expected {want} (None = any)")
    return data


def _load_regressor(path: Path, rows: int, num_vertices: int) -> np.ndarray:
    try:
        reg = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise AssetError(f"{path}: not a readable .npy array ({e})") from None
    if reg.shape != (rows, num_vertices):
        raise AssetError(f"{path}: shape {reg.shape}, expected ({rows}, {num_vertices})")
    return reg


def load_mean_params(model_dir: str | os.PathLike | None) -> dict[str, np.ndarray]:
    """SPIN's ``smpl_mean_params.npz``: pose (144,) in 6D, shape (10,), cam (3,) = (s, tx, ty), float32."""
    if model_dir is None:
        raise asset_error(None, f"no directory given to look for {MEAN_PARAMS}")
    path = Path(model_dir).expanduser() / MEAN_PARAMS
    if not path.is_file():
        raise asset_error(model_dir, f"{MEAN_PARAMS} not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            out = {k: np.asarray(npz[k], dtype=np.float32).reshape(-1) for k in ("pose", "shape", "cam")}
    except (KeyError, OSError, ValueError) as e:
        raise asset_error(model_dir, f"{path.name} is malformed ({type(e).__name__}: {e})") from None
    if out["pose"].size != 144 or out["cam"].size != 3:
        raise asset_error(
            model_dir, f"{path.name}: pose has {out['pose'].size} values (expected 144), cam {out['cam'].size} (3)"
        )
    return out


class SMPL(BodyModel):
    """SMPL with the original MAED/SPIN output joints.

    Outputs (metres): verts B x 6890 x 3 and joints B x 49 x 3 = smplx's 45 joints (24 SMPL + 21 vertex
    joints) and the 9 ``J_regressor_extra`` joints, selected through ``SMPL_JOINT_MAP`` (OpenPose-25, then
    the 24 ground-truth joints). Numerically identical to ``smplx.SMPL`` fed the same arrays.

    Buffers: ``faces`` (F x 3 int64), ``J_regressor_extra`` (9 x V), ``J_regressor_h36m`` (17 x V, or None
    when the file is absent), ``joint_map`` (49,), and the ``smplx.SMPLLayer``'s under ``layer.``.
    """

    name = "smpl"

    def __init__(self, model_dir: str | os.PathLike | None, gender: str = "neutral", num_betas: int = 10):
        super().__init__()
        import smplx
        from smplx.utils import Struct

        if gender not in GENDERS:
            raise ConfigError(f"SMPL gender {gender!r}: expected one of {GENDERS}")
        if model_dir is None:
            raise asset_error(None, "no body-model directory given", gender)
        model_dir = Path(model_dir).expanduser()
        if not model_dir.is_dir():
            raise asset_error(model_dir, "directory not found", gender)
        model_file = find_model_file(model_dir, gender)
        extra_file = model_dir / EXTRA_REGRESSOR
        missing = [
            n
            for n, p in ((f"SMPL_{gender.upper()}.pkl", model_file), (EXTRA_REGRESSOR, extra_file))
            if p is None or not Path(p).is_file()
        ]
        if missing:
            raise asset_error(model_dir, f"missing {', '.join(missing)}", gender)
        try:
            data = load_smpl_data(model_file)
            num_vertices = int(np.shape(data["v_template"])[0])
            extra = _load_regressor(extra_file, NUM_EXTRA_JOINTS, num_vertices)
            h36m_file = model_dir / H36M_REGRESSOR
            h36m = _load_regressor(h36m_file, 17, num_vertices) if h36m_file.is_file() else None
        except AssetError as e:
            raise asset_error(model_dir, f"malformed file: {e}", gender) from None
        if num_vertices <= _max_vertex_joint_id():
            raise asset_error(
                model_dir, f"{model_file.name} has {num_vertices} vertices; SMPL's vertex joints need 6890", gender
            )

        self.model_file = model_file
        self.layer = smplx.SMPLLayer(
            model_path=str(model_dir), data_struct=Struct(**data), num_betas=num_betas, gender=gender
        )
        parents = self.layer.parents.tolist()
        parents[0] = -1
        self.parents = parents
        self.num_betas = self.layer.num_betas
        self.num_output_joints = len(SMPL_JOINT_MAP)
        self.register_buffer("faces", torch.as_tensor(np.asarray(data["f"], dtype=np.int64)))
        self.register_buffer("J_regressor_extra", torch.as_tensor(extra, dtype=torch.float32))
        h36m_t = None if h36m is None else torch.as_tensor(h36m, dtype=torch.float32)
        self.register_buffer("J_regressor_h36m", h36m_t)
        self.register_buffer("joint_map", torch.tensor(SMPL_JOINT_MAP, dtype=torch.long))

    @property
    def num_vertices(self) -> int:
        return int(self.layer.v_template.shape[0])

    def forward(self, rotmat: torch.Tensor, betas: torch.Tensor) -> BodyOutput:
        """rotmat: B x 24 x 3 x 3 local rotations (root first); betas: B x 10. Returns metres, 49 joints."""
        from smplx.lbs import vertices2joints

        out = self.layer(betas=betas, global_orient=rotmat[:, :1], body_pose=rotmat[:, 1:])
        extra = vertices2joints(self.J_regressor_extra, out.vertices)  # (B, 9, 3)
        joints = torch.cat([out.joints, extra], dim=1)[:, self.joint_map]  # (B, 54, 3) -> (B, 49, 3)
        return BodyOutput(verts=out.vertices, joints=joints)

    def forward_axis_angle(self, pose: torch.Tensor, betas: torch.Tensor) -> BodyOutput:
        """Ground-truth parameters: pose B x 72 axis-angle (global orient first), betas B x 10."""
        from smplx.lbs import batch_rodrigues

        B = pose.shape[0]
        rotmat = batch_rodrigues(pose.reshape(-1, 3)).reshape(B, -1, 3, 3)
        return self.forward(rotmat, betas)

    def extra_repr(self) -> str:
        return f"model_file={self.model_file}, num_betas={self.num_betas}, vertices={self.num_vertices}"


def _max_vertex_joint_id() -> int:
    from smplx.vertex_ids import vertex_ids

    return max(vertex_ids["smplh"].values())
