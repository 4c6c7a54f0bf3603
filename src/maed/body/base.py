"""The body-model interface every layer above builds on (docs/DESIGN.md, "Body model")."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields

import torch
from torch import nn

from maed.body.geometry import axis_angle_to_rotmat


@dataclass
class BodyOutput:
    """What a body model returns.

    verts: B x V x 3 mesh vertices in metres.
    joints: B x K x 3 output joints in metres (the 49 of ``maed.body.joints.JOINT_NAMES`` for SMPL and Anny).
    Mapping access (``out["verts"]``) works too.
    """

    verts: torch.Tensor
    joints: torch.Tensor

    def keys(self) -> list[str]:
        return [f.name for f in fields(self)]

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:
        return ((k, getattr(self, k)) for k in self.keys())


class BodyModel(nn.Module):
    """A parametric body model without trainable parameters.

    Subclasses set ``name``, ``parents`` (parent of each kinematic joint, -1 for the root, every parent
    listed before its children), ``num_betas``, ``num_output_joints``, and register a ``faces`` buffer
    (F x 3, int64). ``forward`` maps per-joint local rotations and shape to a mesh and joints in metres.
    """

    name: str = "body"
    parents: list[int]
    num_betas: int
    num_output_joints: int
    faces: torch.Tensor

    @property
    def num_joints(self) -> int:
        """Number of kinematic joints J (24 for SMPL)."""
        return len(self.parents)

    @property
    def num_vertices(self) -> int:
        raise NotImplementedError

    def forward(self, rotmat: torch.Tensor, betas: torch.Tensor) -> BodyOutput:
        """rotmat: B x J x 3 x 3 local joint rotations (root first); betas: B x S shape. Returns metres."""
        raise NotImplementedError

    def forward_axis_angle(self, pose: torch.Tensor, betas: torch.Tensor) -> BodyOutput:
        """Ground-truth parameters as the databases store them: pose B x 3J axis-angle (root first, radians),
        betas B x S. Returns :meth:`forward` of the rotation matrices (metres, no translation)."""
        B = pose.shape[0]
        return self.forward(axis_angle_to_rotmat(pose.reshape(B, -1, 3)), betas)


def ancestors(parents: Sequence[int]) -> list[list[int]]:
    """For each joint, its full chain of ancestors from the root down to its parent.

    ``ancestors(SMPL_PARENTS)`` equals the KTD decoder's original ``ANCESTOR_INDEX``: joint 0 -> [],
    joint 22 -> [0, 3, 6, 9, 13, 16, 18, 20].
    """
    parents = [int(p) for p in parents]
    chains: list[list[int]] = []
    for j, p in enumerate(parents):
        if p < 0:
            chains.append([])
            continue
        if p >= j:
            raise ValueError(f"parents: joint {j} has parent {p}; parents must come before their children")
        chains.append(chains[p] + [p])
    return chains
