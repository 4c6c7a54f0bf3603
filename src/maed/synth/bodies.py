"""The body model of a synthetic run and what the generator derives from it once per process.

Anny (the default; rig ``cmu_mb`` or ``anny``) or, for users who have it, SMPL. Shapes are drawn per
split: training and validation people from the training ranges, test people with at least one
phenotype from held-out ranges the training split never sees (so every test body lies outside the
training shape box):

============  ================  =========================================
phenotype     train / val       held out (test)
============  ================  =========================================
gender        0 - 1             (same)
age           0.55 - 0.9        0.9 - 1.0 (older)
muscle        0.1 - 0.9         (same)
weight        0.15 - 0.8        0 - 0.15 or 0.8 - 1
height        0.15 - 0.85       0 - 0.15 or 0.85 - 1
proportions   0 - 0.7           0.7 - 1
============  ================  =========================================

Test people draw each of age, weight, height and proportions from the held-out range with probability
one half, and at least one of them. SMPL betas: N(0, 1) clipped to +-2 for training; test people have
one or two of the first three betas at 2 to 3 in magnitude.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from maed.body import build_body_model
from maed.body.joints import JOINT_IDS, JOINT_NAMES
from maed.body.layout import PoseLayout, pose_layout
from maed.synth.appearance import vertex_parts
from maed.synth.limits import limits_table
from maed.synth.motion import MOTION_STYLES, PersonMotion, bone_frames, person_motion

TRAIN_PHENOTYPES = {
    "gender": [(0.0, 1.0)], "age": [(0.55, 0.9)], "muscle": [(0.1, 0.9)], "weight": [(0.15, 0.8)],
    "height": [(0.15, 0.85)], "proportions": [(0.0, 0.7)],
}  # fmt: skip
HELD_OUT_PHENOTYPES = {
    "age": [(0.9, 1.0)], "weight": [(0.0, 0.15), (0.8, 1.0)], "height": [(0.0, 0.15), (0.85, 1.0)],
    "proportions": [(0.7, 1.0)],
}  # fmt: skip


@dataclass
class BodyKit:
    """A built body model with the generator's per-model data.

    body: the ``BodyModel``; tables: the name of its limit/part tables (``anny``, ``cmu_mb``, ``smpl``);
    layout: its ``PoseLayout``; frames_axes J x 3 x 3, limits J x 3 x 2, neutral J x 3 (radians): the
    motion model; parts: V part indices; joint_mask: 49 bool; faces: F x 3; phenotype_labels: shape names.
    """

    body: torch.nn.Module
    tables: str
    layout: PoseLayout
    frames_axes: np.ndarray
    limits: np.ndarray
    neutral: np.ndarray
    parts: np.ndarray
    joint_mask: np.ndarray
    faces: np.ndarray
    phenotype_labels: list[str]

    @property
    def num_vertices(self) -> int:
        return int(self.parts.shape[0])

    def random_motion(self, rng: np.random.Generator, *, frames: int, fps: float, start_xz) -> PersonMotion:
        """One person's motion (``maed.synth.motion``) from ``start_xz``: the style (walk or wander), then a
        heading, then the motion itself, drawn from ``rng`` in that order."""
        style = MOTION_STYLES[int(rng.random() < 0.5)]
        return person_motion(
            rng,
            frames=frames,
            fps=fps,
            rig=self.tables,
            bone_names=list(self.layout.joint_names),
            frames_axes=self.frames_axes,
            limits=self.limits,
            neutral=self.neutral,
            start_xz=np.asarray(start_xz, dtype=np.float64),
            heading=float(rng.uniform(0, 2 * np.pi)),
            style=style,
        )

    def sample_shape(self, rng: np.random.Generator, split: str) -> np.ndarray:
        """One person's shape parameters (S,) for a split (see the module docstring)."""
        if self.layout.body_model == "smpl":
            betas = np.clip(rng.normal(size=self.layout.num_betas), -2.0, 2.0)
            if split == "test":
                for k in rng.choice(3, size=int(rng.integers(1, 3)), replace=False):
                    betas[k] = rng.choice([-1.0, 1.0]) * rng.uniform(2.0, 3.0)
            return betas
        held = {}
        if split == "test":
            names = list(HELD_OUT_PHENOTYPES)
            held = {n: rng.random() < 0.5 for n in names}
            if not any(held.values()):
                held[names[int(rng.integers(len(names)))]] = True
        values = []
        for label in self.phenotype_labels:
            ranges = HELD_OUT_PHENOTYPES[label] if held.get(label) else TRAIN_PHENOTYPES[label]
            lo, hi = ranges[int(rng.integers(len(ranges)))]
            values.append(rng.uniform(lo, hi))
        return np.asarray(values) - 0.5  # betas are offsets from the average phenotype


@lru_cache(maxsize=2)
def build_kit(body_model: str = "anny", rig: str = "", body_model_dir: str | os.PathLike | None = None) -> BodyKit:
    """Build the body model and derive the generator's data (one to two minutes the first time a rig is
    built; anny caches it on disk). Kept for the next run in the same process; nothing in it changes."""
    layout = pose_layout(body_model, rig)
    body = build_body_model(layout.body_model, model_dir=body_model_dir, rig=rig).eval()
    J = layout.num_joints
    with torch.no_grad():
        rest = body(torch.eye(3).expand(1, J, 3, 3).contiguous(), torch.zeros(1, body.num_betas))
    verts = rest["verts"][0].double().numpy()
    joints = rest["joints"][0].double().numpy()
    if layout.body_model == "smpl":
        with torch.no_grad():
            out = body.layer(betas=torch.zeros(1, body.num_betas))
        heads = out.joints[0, :J].double().numpy()
        vertex_bones = body.layer.lbs_weights.argmax(dim=1).numpy()
        tables, labels, names = "smpl", [f"beta{k}" for k in range(body.num_betas)], list(layout.joint_names)
        mask = np.ones(len(JOINT_NAMES), dtype=bool)
    else:
        heads = rest["bone_heads"][0].double().numpy()
        vertex_bones = body.vertex_bones().numpy()
        tables, labels, names = layout.rig, list(body.phenotype_labels), list(body.bone_labels)
        mask = body.joint_mask.numpy().astype(bool)
    eyes = 0.5 * (joints[JOINT_IDS["Left Eye"]] + joints[JOINT_IDS["Right Eye"]])
    ears = 0.5 * (joints[JOINT_IDS["Left Ear"]] + joints[JOINT_IDS["Right Ear"]])
    limits, neutral = limits_table(tables, names)
    return BodyKit(
        body=body,
        tables=tables,
        layout=layout,
        frames_axes=bone_frames(heads, list(body.parents)),
        limits=limits,
        neutral=neutral,
        parts=vertex_parts(tables, names, vertex_bones, verts, {"eyes": eyes, "ears": ears}),
        joint_mask=mask,
        faces=body.faces.numpy().astype(np.int64),
        phenotype_labels=labels,
    )
