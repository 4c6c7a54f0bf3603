"""Building MAED networks from a config, and loading checkpoints into them (``maed.models.build_model``,
``maed.models.load_model``); the one place a config becomes model arguments."""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

from maed.body import body_model_from_config
from maed.body.joints import JOINT_NAMES
from maed.config import Config, load_config
from maed.errors import ConfigError
from maed.models.attention import ATTENTION_MODES
from maed.models.checkpoint import extract_state_dict, init_encoder_weights, load_checkpoint, read_checkpoint
from maed.models.decoders import KTD, IterativeRegressor
from maed.models.fast import DEFAULT_PRECISION, optimize_for_inference, resolve_precision
from maed.models.maed import MAED
from maed.paths import resolve_paths

#: joints of the training labels' 2D keypoints (the 49 of ``maed.body.joints.JOINT_NAMES``, which the
#: databases store): what the encoder's optional joint heatmap head predicts
KEYPOINT_JOINTS = len(JOINT_NAMES)

ENCODERS = ("ste", "cnn", "keypoints")
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
    img_size: int = 224,
    embed_dim: int = 768,
    mlp_ratio: float = 4.0,
    backbone_layers: tuple[int, ...] | list[int] = (3, 4, 9),
    backbone_width: int = 64,
    grad_checkpoint: bool = False,
    pool: str = "cls",
    joint_heatmap_joints: int = 0,
    num_keypoints: int = 33,
    kp_world: bool = False,
) -> torch.nn.Module:
    """The ``ste`` encoder of the given size, the ``cnn`` ResNet-50 (which takes no size arguments), or the
    ``keypoints`` encoder over ``num_keypoints`` landmarks (with their world positions if ``kp_world``), whose
    size is ``num_blocks``, ``num_heads``, ``embed_dim`` and ``mlp_ratio``.

    ``joint_heatmap_joints`` K > 0 adds the training-only 2D-joint heatmap head for K joints (``ste`` only)."""
    # start-up: the encoders import timm and torchvision (about 1.5 s measured), paid only when one is built
    from maed.models.cnn import ResNet50Encoder  # start-up: timm/torchvision
    from maed.models.keypoints import KeypointEncoder  # start-up: timm
    from maed.models.ste import SpatioTemporalEncoder  # start-up: timm

    if encoder != "ste" and joint_heatmap_joints:
        raise ConfigError("MODEL.ENCODER.JOINT_HEATMAP: only the ste encoder has the joint heatmap head")
    if encoder == "cnn":
        return ResNet50Encoder()
    if encoder == "keypoints":
        return KeypointEncoder(
            num_keypoints=num_keypoints,
            world=kp_world,
            num_blocks=num_blocks,
            num_heads=num_heads,
            st_mode=st_mode,
            max_seqlen=max_seqlen,
            interp_temp_embed=interp_temp_embed,
            embed_dim=embed_dim,
            mlp_ratio=mlp_ratio,
            grad_checkpoint=grad_checkpoint,
        )
    return SpatioTemporalEncoder(
        num_blocks=num_blocks,
        num_heads=num_heads,
        st_mode=st_mode,
        max_seqlen=max_seqlen,
        interp_temp_embed=interp_temp_embed,
        img_size=img_size,
        embed_dim=embed_dim,
        mlp_ratio=mlp_ratio,
        backbone_layers=backbone_layers,
        backbone_width=backbone_width,
        grad_checkpoint=grad_checkpoint,
        pool=pool,
        joint_heatmap_joints=joint_heatmap_joints,
    )


def encoder_kwargs_from_config(cfg: Config, *, keypoint_joints: int = KEYPOINT_JOINTS) -> dict[str, Any]:
    """``build_encoder`` arguments from ``MODEL.ENCODER`` and the input size ``DATASET.WIDTH/HEIGHT``, checked
    here so that a bad size names its config key. ``keypoint_joints``: the joints of the 2D labels, which the
    heatmap head predicts when ``MODEL.ENCODER.JOINT_HEATMAP`` is on."""
    from maed.models.ste import POOLS  # start-up: timm, see build_encoder

    enc, ds = cfg.MODEL.ENCODER, cfg.DATASET
    encoder = _check_choice("MODEL.ENCODER.BACKBONE", enc.BACKBONE, ENCODERS)
    kwargs = dict(
        encoder=encoder,
        num_blocks=enc.NUM_BLOCKS,
        num_heads=enc.NUM_HEADS,
        st_mode=_check_choice("MODEL.ENCODER.SPA_TEMP_MODE", enc.SPA_TEMP_MODE, ATTENTION_MODES),
        max_seqlen=enc.MAX_SEQLEN,
        interp_temp_embed=enc.INTERP_TEMP_EMBED,
        img_size=ds.WIDTH,
        embed_dim=enc.EMBED_DIM,
        mlp_ratio=enc.MLP_RATIO,
        backbone_layers=list(enc.BACKBONE_LAYERS),
        backbone_width=enc.BACKBONE_WIDTH,
        grad_checkpoint=enc.GRAD_CHECKPOINT,
        pool=_check_choice("MODEL.ENCODER.POOL", enc.POOL, POOLS),
        joint_heatmap_joints=keypoint_joints if enc.JOINT_HEATMAP else 0,
        num_keypoints=enc.NUM_KEYPOINTS,
        kp_world=enc.KP_WORLD,
    )
    if encoder == "cnn":
        return kwargs
    problems = []
    if encoder == "keypoints":
        if enc.NUM_KEYPOINTS < 1:
            problems.append(f"MODEL.ENCODER.NUM_KEYPOINTS={enc.NUM_KEYPOINTS}: expected at least one landmark")
        if kwargs["pool"] != "cls":
            problems.append(
                f"MODEL.ENCODER.POOL={enc.POOL}: the keypoints encoder's frame feature is its class token (cls)"
            )
        if enc.JOINT_HEATMAP:
            problems.append("MODEL.ENCODER.JOINT_HEATMAP: only the ste encoder has the joint heatmap head")
        if enc.INIT_WEIGHTS:
            problems.append(
                "MODEL.ENCODER.INIT_WEIGHTS: ImageNet weights are for the image encoders; the keypoints encoder "
                "starts from its random initialisation"
            )
    elif ds.WIDTH != ds.HEIGHT or ds.WIDTH < 16 or ds.WIDTH % 16:
        problems.append(
            f"DATASET.WIDTH/HEIGHT={ds.WIDTH}/{ds.HEIGHT}: the ste encoder takes square crops whose side is a "
            "multiple of 16 (the backbone's stride)"
        )
    if enc.NUM_BLOCKS < 0 or enc.NUM_HEADS < 1 or enc.EMBED_DIM < 1 or enc.EMBED_DIM % enc.NUM_HEADS:
        problems.append(
            f"MODEL.ENCODER.EMBED_DIM={enc.EMBED_DIM}, NUM_HEADS={enc.NUM_HEADS}, NUM_BLOCKS={enc.NUM_BLOCKS}: "
            "the width must be a positive multiple of the number of heads, the depth at least 0"
        )
    if not enc.MLP_RATIO > 0:
        problems.append(f"MODEL.ENCODER.MLP_RATIO={enc.MLP_RATIO}: expected a positive number")
    if encoder == "ste" and (len(enc.BACKBONE_LAYERS) != 3 or min(enc.BACKBONE_LAYERS, default=0) < 1):
        problems.append(
            f"MODEL.ENCODER.BACKBONE_LAYERS={list(enc.BACKBONE_LAYERS)}: expected three stage depths, each >= 1"
        )
    if encoder == "ste" and (enc.BACKBONE_WIDTH < 32 or enc.BACKBONE_WIDTH % 32):
        problems.append(
            f"MODEL.ENCODER.BACKBONE_WIDTH={enc.BACKBONE_WIDTH}: expected a multiple of 32 (GroupNorm has 32 groups)"
        )
    if problems:
        raise ConfigError("; ".join(problems))
    return kwargs


def build_decoder(
    decoder: str,
    feat_dim: int,
    body_model,
    hidden_dim: int = 1024,
    body_model_dir: str | os.PathLike | None = None,
    dropout: float = 0.5,
) -> torch.nn.Module:
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"MODEL.DECODER.DROPOUT={dropout}: expected a probability in [0, 1)")
    if decoder == "ktd":
        parents = list(body_model.parents)
        return KTD(
            feat_dim,
            parents,
            num_betas=body_model.num_betas,
            hidden_dim=hidden_dim,
            dropout=dropout,
        )
    mean = _mean_params(body_model, body_model_dir)
    return IterativeRegressor(
        feat_dim, mean["pose"], mean["shape"], mean["cam"], hidden_dim=hidden_dim, dropout=dropout
    )


def _mean_params(body_model, body_model_dir) -> dict[str, torch.Tensor]:
    """SPIN's mean parameters for SMPL; identity pose, zero shape for other body models."""
    if body_model.name == "smpl":
        from maed.body.smpl import load_mean_params  # start-up: smplx is imported only for SMPL models

        return {k: torch.as_tensor(v, dtype=torch.float32) for k, v in load_mean_params(body_model_dir).items()}
    identity_6d = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]).repeat(body_model.num_joints)
    return {"pose": identity_6d, "shape": torch.zeros(body_model.num_betas), "cam": torch.tensor([0.9, 0.0, 0.0])}


def build_model(
    cfg: Config | str | dict | None = None,
    body_model=None,
    *,
    body_model_dir: str | os.PathLike | None = None,
    overrides: list[str] | None = None,
    keypoint_joints: int = KEYPOINT_JOINTS,
) -> MAED:
    """Build a randomly initialised MAED from a config (object, YAML path, preset name or dict).

    ``body_model`` defaults to the config's ``MODEL.BODY_MODEL`` built from ``body_model_dir`` (or the
    config's ``PATHS.BODY_MODEL_DIR``). ``MODEL.ENCODER.INIT_WEIGHTS`` initialises the encoder from a
    local ImageNet file; nothing is ever downloaded. ``keypoint_joints``: the joints of the training data's
    2D labels (the size of ``MODEL.ENCODER.JOINT_HEATMAP``'s head).
    """
    cfg = load_config(cfg, overrides)
    enc_cfg, dec_cfg = cfg.MODEL.ENCODER, cfg.MODEL.DECODER
    encoder_kwargs = encoder_kwargs_from_config(cfg, keypoint_joints=keypoint_joints)
    decoder_name = _check_choice("MODEL.DECODER.BACKBONE", dec_cfg.BACKBONE, DECODERS)
    if body_model_dir is None:
        body_model_dir = resolve_paths(cfg.PATHS)["body_model_dir"]
    if body_model is None:
        body_model = body_model_from_config(cfg, model_dir=body_model_dir)
    encoder = build_encoder(**encoder_kwargs)
    if enc_cfg.INIT_WEIGHTS:
        report = init_encoder_weights(encoder, enc_cfg.INIT_WEIGHTS, num_blocks=enc_cfg.NUM_BLOCKS)
        logging.getLogger(__name__).info(
            "encoder initialised from %s: %d tensors loaded; kept at their initialisation: %s",
            enc_cfg.INIT_WEIGHTS,
            len(report.loaded),
            ", ".join(report.missing) or "none",
        )
    decoder = build_decoder(
        decoder_name,
        encoder.feat_dim,
        body_model,
        hidden_dim=dec_cfg.HIDDEN_DIM,
        body_model_dir=body_model_dir,
        dropout=dec_cfg.DROPOUT,
    )
    return MAED(encoder, decoder, body_model, train_vertices=cfg.MODEL.TRAIN_VERTICES)


def load_model(
    checkpoint: str | os.PathLike | dict[str, Any],
    body_model_dir: str | os.PathLike | None = None,
    config: Config | str | dict | None = None,
    device: str | torch.device = "cpu",
    overrides: list[str] | None = None,
    body_model=None,
    *,
    optimize: bool = True,
    precision: str = DEFAULT_PRECISION,
    compile: bool = False,
) -> MAED:
    """Build the model a checkpoint was trained with and load its weights strictly; returns it in eval mode.

    ``checkpoint`` is a path or an already-read checkpoint dict. ``config`` is needed for the authors'
    checkpoint (it stores none; the original YAML files work, e.g. ``configs/config_stage2.yaml``); the
    project's checkpoints carry their own, which ``config`` overrides when given. Without either, the
    stage-2 architecture is assumed.

    By default the model is set up for inference on ``device`` in float32 (``maed.models.fast``: weight
    standardisation computed once, the stem's pooling channels-last on CPU), so it gives the same numbers on
    every machine; ``precision="bf16"`` runs the encoder in bfloat16 (about 3x faster on CPUs with AMX or
    AVX512-BF16, and on recent GPUs, at some cost in accuracy; docs/SPEED.md), ``"auto"`` only where the
    hardware multiplies it natively, ``"tf32"`` on CUDA. ``optimize=False`` returns the plain float32 model
    (for training or bit-exact comparisons). ``precision`` and ``compile`` are passed to
    :func:`maed.models.fast.optimize_for_inference`.
    """
    ckpt = checkpoint if isinstance(checkpoint, dict) else read_checkpoint(checkpoint)
    extract_state_dict(ckpt)  # fail early on an unknown layout
    if config is None:
        stored: Any = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else None
        cfg = load_config(stored if stored else "stage2", overrides)
    else:
        cfg = load_config(config, overrides)
    cfg.MODEL.ENCODER.INIT_WEIGHTS = ""  # the checkpoint provides every weight
    if optimize:
        resolve_precision(precision, device)  # a bad option fails before the model is built
    model = build_model(cfg, body_model=body_model, body_model_dir=body_model_dir)
    load_checkpoint(model, ckpt, source=None if isinstance(checkpoint, dict) else str(checkpoint))
    model = model.to(device).eval()
    if optimize:
        optimize_for_inference(model, precision=precision, compile=compile)
    return model
