"""MAED networks: building from a config, and loading checkpoints.

model = maed.load_model("model_best.pth.tar", body_model_dir="data/smpl_data",
                        config="configs/config_stage2.yaml")
out = model(images)          # images: N x T x 3 x 224 x 224
out["verts"], out["kp_3d"], out["theta"]
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

from maed.config import Config, load_config
from maed.errors import ConfigError
from maed.models.attention import ATTENTION_MODES
from maed.models.maed import MAED, MAEDOutput

__all__ = ["MAED", "MAEDOutput", "build_model", "load_model", "ENCODERS", "DECODERS"]

ENCODERS = ("ste", "cnn")
DECODERS = ("ktd", "iterative")


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> str:
    if value.lower() not in choices:
        raise ConfigError(f"{key}={value!r}: expected one of {', '.join(choices)}")
    return value.lower()


def build_encoder(
    encoder: str = "ste",
    num_blocks: int = 6,
    num_heads: int = 12,
    st_mode: str = "parallel",
    max_seqlen: int = 16,
    interp_temp_embed: bool = False,
) -> torch.nn.Module:
    if encoder == "cnn":
        from maed.models.cnn import ResNet50Encoder

        return ResNet50Encoder()
    from maed.models.ste import SpatioTemporalEncoder

    return SpatioTemporalEncoder(
        num_blocks=num_blocks,
        num_heads=num_heads,
        st_mode=st_mode,
        max_seqlen=max_seqlen,
        interp_temp_embed=interp_temp_embed,
    )


def build_decoder(
    decoder: str, feat_dim: int, body_model, hidden_dim: int = 1024, body_model_dir: str | os.PathLike | None = None
) -> torch.nn.Module:
    from maed.models.decoders import KTD, IterativeRegressor

    if decoder == "ktd":
        return KTD(feat_dim, parents=list(body_model.parents), num_betas=body_model.num_betas, hidden_dim=hidden_dim)
    mean = _mean_params(body_model, body_model_dir)
    return IterativeRegressor(feat_dim, mean["pose"], mean["shape"], mean["cam"], hidden_dim=hidden_dim)


def _mean_params(body_model, body_model_dir) -> dict[str, torch.Tensor]:
    """SPIN's mean parameters for SMPL; identity pose, zero shape for other body models."""
    if body_model.name == "smpl":
        from maed.body.smpl import load_mean_params

        return {k: torch.as_tensor(v, dtype=torch.float32) for k, v in load_mean_params(body_model_dir).items()}
    identity_6d = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]).repeat(body_model.num_joints)
    return {"pose": identity_6d, "shape": torch.zeros(body_model.num_betas), "cam": torch.tensor([0.9, 0.0, 0.0])}


def build_model(
    cfg: Config | str | dict | None = None,
    body_model=None,
    *,
    body_model_dir: str | os.PathLike | None = None,
    overrides: list[str] | None = None,
) -> MAED:
    """Build a randomly initialised MAED from a config (object, YAML path, preset name or dict).

    ``body_model`` defaults to the config's ``MODEL.BODY_MODEL`` built from ``body_model_dir`` (or the
    config's ``PATHS.BODY_MODEL_DIR``). ``MODEL.ENCODER.INIT_WEIGHTS`` initialises the encoder from a
    local ImageNet file; nothing is ever downloaded.
    """
    from maed.body import build_body_model
    from maed.paths import resolve_paths

    cfg = load_config(cfg, overrides)
    enc_cfg, dec_cfg = cfg.MODEL.ENCODER, cfg.MODEL.DECODER
    encoder_name = _check_choice("MODEL.ENCODER.BACKBONE", enc_cfg.BACKBONE, ENCODERS)
    decoder_name = _check_choice("MODEL.DECODER.BACKBONE", dec_cfg.BACKBONE, DECODERS)
    st_mode = _check_choice("MODEL.ENCODER.SPA_TEMP_MODE", enc_cfg.SPA_TEMP_MODE, ATTENTION_MODES)
    if body_model_dir is None:
        body_model_dir = resolve_paths(cfg.PATHS)["body_model_dir"]
    if body_model is None:
        body_model = build_body_model(cfg.MODEL.BODY_MODEL, model_dir=body_model_dir, rig=cfg.MODEL.BODY_RIG)
    encoder = build_encoder(
        encoder_name,
        num_blocks=enc_cfg.NUM_BLOCKS,
        num_heads=enc_cfg.NUM_HEADS,
        st_mode=st_mode,
        max_seqlen=enc_cfg.MAX_SEQLEN,
        interp_temp_embed=enc_cfg.INTERP_TEMP_EMBED,
    )
    if enc_cfg.INIT_WEIGHTS:
        from maed.models.checkpoint import init_encoder_weights

        report = init_encoder_weights(encoder, enc_cfg.INIT_WEIGHTS, num_blocks=enc_cfg.NUM_BLOCKS)
        logging.getLogger(__name__).info(
            "encoder initialised from %s: %d tensors loaded; kept at their initialisation: %s",
            enc_cfg.INIT_WEIGHTS,
            len(report.loaded),
            ", ".join(report.missing) or "none",
        )
    decoder = build_decoder(
        decoder_name, encoder.feat_dim, body_model, hidden_dim=dec_cfg.HIDDEN_DIM, body_model_dir=body_model_dir
    )
    return MAED(encoder, decoder, body_model)


def load_model(
    checkpoint: str | os.PathLike | dict[str, Any],
    body_model_dir: str | os.PathLike | None = None,
    config: Config | str | dict | None = None,
    device: str | torch.device = "cpu",
    overrides: list[str] | None = None,
    body_model=None,
) -> MAED:
    """Build the model a checkpoint was trained with and load its weights strictly; returns it in eval mode.

    ``checkpoint`` is a path or an already-read checkpoint dict. ``config`` is needed for the authors'
    checkpoint (it stores none; the original YAML files work, e.g. ``configs/config_stage2.yaml``); the
    project's checkpoints carry their own, which ``config`` overrides when given. Without either, the
    stage-2 architecture is assumed.
    """
    from maed.models.checkpoint import extract_state_dict, load_checkpoint, read_checkpoint

    ckpt = checkpoint if isinstance(checkpoint, dict) else read_checkpoint(checkpoint)
    extract_state_dict(ckpt)  # fail early on an unknown layout
    if config is None:
        stored: Any = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else None
        cfg = load_config(stored if stored else "stage2", overrides)
    else:
        cfg = load_config(config, overrides)
    cfg.MODEL.ENCODER.INIT_WEIGHTS = ""  # the checkpoint provides every weight
    model = build_model(cfg, body_model=body_model, body_model_dir=body_model_dir)
    load_checkpoint(model, ckpt, source=None if isinstance(checkpoint, dict) else str(checkpoint))
    return model.to(device).eval()
