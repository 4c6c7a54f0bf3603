"""How people look: clothing-like part colours from the skinning weights, skin tones, hair.

Each vertex gets a part from the bone that skins it most (``PART_BONES``): skin (head, neck, hands),
shirt (chest, shoulders, upper arms), sleeves (forearms: shirt or skin), trousers (pelvis, thighs),
legs (shins: trousers or skin), shoes (feet, toes). Hair covers the head vertices above the eyes that are
not on the face. A person draws one colour per part for the whole sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PARTS = ("skin", "shirt", "sleeves", "trousers", "legs", "shoes", "hair")

#: per rig: part -> bones (left and right), everything else is skin
PART_BONES: dict[str, dict[str, tuple[str, ...]]] = {
    "anny": {
        "shirt": ("spine04", "spine03", "spine02", "spine01", "clavicle", "shoulder01", "upperarm01", "upperarm02"),
        "sleeves": ("lowerarm01", "lowerarm02"),
        "trousers": ("root", "pelvis", "spine05", "upperleg01", "upperleg02"),
        "legs": ("lowerleg01", "lowerleg02"),
        "shoes": ("foot", "toe"),
    },
    "cmu_mb": {
        "shirt": ("LowerBack", "Spine", "Spine1", "LeftShoulder", "RightShoulder", "LeftArm", "RightArm"),
        "sleeves": ("LeftForeArm", "RightForeArm"),
        "trousers": ("Hips", "LHipJoint", "RHipJoint", "LeftUpLeg", "RightUpLeg"),
        "legs": ("LeftLeg", "RightLeg"),
        "shoes": ("LeftFoot", "RightFoot", "LeftToeBase", "RightToeBase"),
    },
    "smpl": {
        "shirt": ("spine1", "spine2", "spine3", "left_collar", "right_collar", "left_shoulder", "right_shoulder"),
        "sleeves": ("left_elbow", "right_elbow"),
        "trousers": ("pelvis", "left_hip", "right_hip"),
        "legs": ("left_knee", "right_knee"),
        "shoes": ("left_ankle", "right_ankle", "left_foot", "right_foot"),
    },
}  # fmt: skip

#: RGB skin tones from light to dark
SKIN_TONES = np.array([
    [255, 224, 196], [241, 194, 167], [224, 172, 138], [198, 134, 103], [161, 102, 74], [120, 75, 52],
    [89, 56, 40],
], dtype=np.float64)  # fmt: skip
HAIR_COLOURS = np.array([[30, 22, 18], [60, 40, 28], [110, 75, 45], [180, 140, 90], [140, 140, 140], [20, 20, 20]])


def _bone_part(name: str, rig: str) -> str:
    stem = name[:-2] if name.endswith((".L", ".R")) else name  # anny: upperarm01.L, toe2-3.R
    for part, bones in PART_BONES[rig].items():
        if stem in bones or stem.rstrip("0123456789-") in bones:
            return part
    return "skin"


def vertex_parts(
    rig: str, bone_names: list[str], vertex_bones: np.ndarray, rest_vertices: np.ndarray, rest_joints: dict
) -> np.ndarray:
    """V int8: the index into ``PARTS`` of every vertex.

    vertex_bones: V, the bone skinning each vertex most; rest_vertices: V x 3 (y up, facing +z);
    rest_joints: rest positions of ``"eyes"`` and ``"ears"`` (3,) to outline the hair.
    """
    part_of_bone = np.array([PARTS.index(_bone_part(n, rig)) for n in bone_names], dtype=np.int8)
    parts = part_of_bone[vertex_bones]
    eyes, ears = np.asarray(rest_joints["eyes"]), np.asarray(rest_joints["ears"])
    v = rest_vertices
    above_eyes = v[:, 1] > eyes[1] + 0.015
    behind_face = v[:, 2] < eyes[2] - 0.035
    above_ears = v[:, 1] > ears[1] - 0.02
    head = (v[:, 1] > ears[1] - 0.09) & (parts == PARTS.index("skin")) & (np.abs(v[:, 0]) < 0.2)
    hair = head & ((above_eyes & (behind_face | (v[:, 1] > eyes[1] + 0.06))) | (above_ears & behind_face))
    parts[hair] = PARTS.index("hair")
    return parts


@dataclass
class Outfit:
    """One person's colours: ``colours`` len(PARTS) x 3 RGB in [0, 1], ``roughness``."""

    colours: np.ndarray
    roughness: float

    def vertex_colours(self, parts: np.ndarray) -> np.ndarray:
        """V x 4 uint8 RGBA vertex colours."""
        rgb = np.clip(np.rint(self.colours[parts] * 255), 0, 255).astype(np.uint8)
        return np.concatenate([rgb, np.full((len(parts), 1), 255, np.uint8)], axis=1)


def _cloth(rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.3:  # greys, black, white
        return np.full(3, rng.uniform(0.05, 0.9))
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(40, 230), rng.uniform(40, 230)]]], dtype=np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0] / 255.0


def random_outfit(rng: np.random.Generator) -> Outfit:
    """Skin tone (jittered), shirt, trousers, shoes, hair; sleeves and legs are cloth or skin."""
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.9, 1.05, size=3) / 255.0
    shirt, trousers, shoes = _cloth(rng), _cloth(rng), _cloth(rng) * 0.6
    sleeves = shirt if rng.random() < 0.55 else skin
    legs = trousers if rng.random() < 0.75 else skin
    hair = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] / 255.0 if rng.random() < 0.85 else skin
    colours = np.stack([skin, shirt, sleeves, trousers, legs, shoes, hair])
    return Outfit(colours=np.clip(colours, 0.0, 1.0), roughness=float(rng.uniform(0.5, 0.95)))
