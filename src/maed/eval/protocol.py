"""What an evaluation protocol is, as values: which joints are compared, which frames count, where
acceleration may cross from one frame to the next (ORIGINAL.md §7, §9). Cheap to import (no torch).

- ``original`` (the paper's numbers): the dataset's original joint map (Human3.6M keeps its order bug),
  the frames the original's ``valid`` rule keeps (a video shorter than half a window is reflected back
  and forth, and its repeated frames count again), acceleration over the concatenation of all frames.
- ``strict``: the joint map with the Human3.6M order fixed, each frame of a window once, acceleration
  inside each sequence (a new one also starts at a gap in the frame numbers).
"""

from __future__ import annotations

from dataclasses import dataclass

from maed.config import PROTOCOL_CHOICES, EvalConfig
from maed.data.registry import eval_dataset_info
from maed.errors import ConfigError

PROTOCOLS = ("original", "strict")


@dataclass(frozen=True)
class Protocol:
    """One protocol on one dataset.

    name: ``original`` | ``strict``.
    joint_ids: index map from the evaluated joints (the regressor's, or the model's 49) to the ground truth.
    counts_repeated_frames: padding rule. True: every frame the original ``valid`` rule keeps, repeats of
        a reflect-padded short video included; False: each frame of a window once.
    accel_within_sequences: segmenting rule. True: acceleration only over triples of consecutive frames of
        one sequence; False: over the concatenation of every kept frame, as the original.
    gt_joint_ids: the ground-truth joints compared (indices into the 49), or None for the original's rule:
        those confident in the first frame of a window.
    """

    name: str
    joint_ids: tuple[int, ...]
    counts_repeated_frames: bool
    accel_within_sequences: bool
    gt_joint_ids: tuple[int, ...] | None = None

    @classmethod
    def of(cls, name: str, dataset: str) -> Protocol:
        """The protocol ``name`` on ``dataset`` (an evaluation set of ``maed.data.registry``)."""
        if name not in PROTOCOLS:
            raise ConfigError(f"protocol {name!r}: expected one of {', '.join(PROTOCOLS)}")
        strict = name == "strict"
        info = eval_dataset_info(dataset, option="evaluation dataset")
        return cls(
            name=name,
            joint_ids=tuple(info.joint_ids(strict=strict)),
            counts_repeated_frames=not strict,
            accel_within_sequences=strict,
            gt_joint_ids=info.eval_gt_joints,
        )


def protocols_for(protocol: str) -> tuple[str, ...]:
    """``original`` | ``strict`` | ``both`` -> the protocols to report, the primary one first."""
    if protocol not in PROTOCOL_CHOICES:
        raise ConfigError(f"--protocol {protocol!r}: expected one of {', '.join(PROTOCOL_CHOICES)}")
    return PROTOCOLS if protocol == "both" else (protocol,)


def joint_ids(dataset: str, protocol: str) -> list[int]:
    """Index map applied to the evaluated joints (H36M order fixed under ``strict``)."""
    return list(Protocol.of(protocol, dataset).joint_ids)


@dataclass(frozen=True)
class EvalSettings:
    """The evaluation options, translated once from ``EVAL.*``; the defaults are the schema's, so
    ``EvalSettings()`` equals ``EvalSettings.from_config(Config().EVAL)``.

    protocol: ``original`` | ``strict`` | ``both``. seqlen: frames per clip the model sees. sample_pool:
    window length. batch_size: windows per batch. frame_step: predict every n-th frame, interpolate the rest.
    """

    protocol: str = EvalConfig.PROTOCOL
    seqlen: int = EvalConfig.SEQLEN
    sample_pool: int = EvalConfig.SAMPLE_POOL
    batch_size: int = EvalConfig.BATCH_SIZE
    frame_step: int = EvalConfig.INTERPOLATION

    @classmethod
    def from_config(cls, eval_cfg) -> EvalSettings:
        """From ``cfg.EVAL``, whose values the schema checked when the config was built."""
        return cls(
            protocol=eval_cfg.PROTOCOL,
            seqlen=eval_cfg.SEQLEN,
            sample_pool=eval_cfg.SAMPLE_POOL,
            batch_size=eval_cfg.BATCH_SIZE,
            frame_step=eval_cfg.INTERPOLATION,
        )
