"""Protocols as values: joint maps, the padding rule, the segmenting rule, and the loader contract."""

from __future__ import annotations

import pytest
import torch

from maed.body.joints import H36M_TO_J14, H36M_TO_J17, H36M_TO_J17_FIXED
from maed.errors import ConfigError
from maed.eval.evaluator import Evaluator
from maed.eval.protocol import EvalSettings, Protocol


def test_protocol_values():
    original, strict = Protocol.of("original", "h36m"), Protocol.of("strict", "h36m")
    assert original.joint_ids == tuple(H36M_TO_J17) and strict.joint_ids == tuple(H36M_TO_J17_FIXED)
    assert original.counts_repeated_frames and not original.accel_within_sequences
    assert not strict.counts_repeated_frames and strict.accel_within_sequences
    assert Protocol.of("strict", "3dpw").joint_ids == tuple(H36M_TO_J14)
    with pytest.raises(ConfigError, match="protocol 'both'"):
        Protocol.of("both", "3dpw")  # 'both' is a choice of two protocols, not a protocol


def test_evaluation_settings_default_to_the_schema():
    from maed.config import Config, load_config

    assert EvalSettings() == EvalSettings.from_config(Config().EVAL)
    assert EvalSettings.from_config(load_config("stage2").EVAL).batch_size == 8
    with pytest.raises(ConfigError, match="EVAL.PROTOCOL='loose'"):
        EvalSettings.from_config(load_config("stage2", ["EVAL.PROTOCOL=loose"]).EVAL)


def test_a_strict_loader_cannot_give_the_original_protocol():
    """The original protocol counts the repeated frames a valid_mode='strict' loader has dropped."""

    class StrictLoader(list):
        dataset = type("WindowSet", (), {"valid_mode": "strict"})()

    model = torch.nn.Identity()
    with pytest.raises(ConfigError, match="valid_mode='strict'"):
        Evaluator(model, dataset="3dpw", protocols=("original", "strict"), progress=False).run(StrictLoader())
    with pytest.raises(Exception, match="yielded no windows"):  # strict alone is fine (and the loader is empty)
        Evaluator(model, dataset="3dpw", protocols=("strict",), progress=False).run(StrictLoader())
