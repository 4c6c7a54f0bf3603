"""Reading and writing model weights: the authors' release format, the project's format, and foreign
ImageNet initialisations. Loading never runs code from a file (``torch.load(weights_only=True)``), and
reports missing and unexpected keys; any mismatch that is not an explicitly ignored buffer is an error.

Formats:

- authors' release (``model_best.pth.tar``): ``{'state_dict': {'module.' + name: tensor}, 'performance',
  'epoch', 'optimizer'}``; the ``decoder.smpl.*`` buffers it carries are ignored (the body model is
  built from the user's own files).
- project: ``{'format': 'maed', 'model': state_dict, 'config': dict, ...}`` (training adds optimizer,
  scheduler, epoch, step, RNG states).
- a bare state dict.
"""

from __future__ import annotations

import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from maed.errors import AssetError, CheckpointError
from maed.models.ste import SpatioTemporalEncoder, timm_hybrid_filter

PROJECT_FORMAT = "maed"

#: keys of foreign checkpoints that are dropped on purpose (the original's SMPL layer buffers)
IGNORED_KEY_PATTERNS = (re.compile(r"^decoder\.smpl\."),)
#: encoder parameters an ImageNet file does not have, which keep their initialisation: the attention fusion
#: of the parallel mode, the temporal embedding, and ``pre_logits`` (absent from current timm files)
INIT_WEIGHTS_MAY_LACK = (
    re.compile(r"^blocks\.\d+\.attn\.ts_attn\."),
    re.compile(r"^temp_embed$"),
    re.compile(r"^pre_logits\."),
    re.compile(r"^patch_embed\.joint_head\."),  # MODEL.ENCODER.JOINT_HEATMAP's head
    re.compile(r"^grid_(reduce|read)\."),  # MODEL.ENCODER.POOL=grid
)


@dataclass
class LoadReport:
    """What a load did: keys loaded, ignored on purpose, missing from the file, unexpected in it."""

    loaded: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self, limit: int = 12, missing_title: str = "missing from the checkpoint") -> str:
        return (
            f"loaded {len(self.loaded)} tensors, ignored {len(self.ignored)}"
            + key_block(missing_title, self.missing, limit)
            + key_block("unexpected in the checkpoint", self.unexpected, limit)
            + key_block("shape mismatch (model vs checkpoint)", self.mismatched, limit)
        )


def key_block(title: str, keys: list[str], limit: int = 12) -> str:
    """One block of a key report: a title with the count, then at most ``limit`` keys, one per line."""
    if not keys:
        return ""
    shown = "".join(f"\n    {k}" for k in keys[:limit])
    more = f"\n    ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return f"\n  {title} ({len(keys)}):{shown}{more}"


def strip_module_prefix(key: str) -> str:
    """A state-dict key without the ``module.`` that DDP (and the authors' checkpoint) put in front."""
    return key[len("module.") :] if key.startswith("module.") else key


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint file safely (no code execution). Numpy scalars, which the authors' files may
    hold for 'performance', are allowed; nothing else beyond torch's weights-only set.

    A file that is not a PyTorch checkpoint (empty, text, a plain pickle, random bytes, another zip),
    a truncated one and one asking for other objects each raise one ``CheckpointError`` that names the
    file and what was expected. PyTorch's own message, which suggests ``weights_only=False``, is never
    passed on: following it would run code from the file.
    """
    path = Path(path)
    if not path.is_file():
        raise AssetError(
            f"checkpoint {path} not found. The authors' MAED checkpoint (model_best.pth.tar) is linked from "
            "https://github.com/ziniuwan/maed (README, 'Pretrained model'); our own runs write "
            "results/<run>/checkpoints/best.pt"
        )
    expected = (
        "expected a PyTorch checkpoint written by torch.save (the authors' model_best.pth.tar or a maed run's .pt)"
    )

    def describe(head: bytes) -> str:
        if not head:
            return "is empty"
        if head.startswith(b"\x80") or head[:1] in (b"(", b"}", b"]"):
            return "is a plain Python pickle, not torch.save's format"
        text = head.decode("utf-8", "replace")
        if "\ufffd" not in text and all(c.isprintable() or c in "\r\n\t" for c in text):
            return f"is a text file (it starts with {text[:24]!r})"
        return "starts with bytes of no known format"

    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as e:
        raise CheckpointError(f"checkpoint {path} cannot be read: {e.strerror or e}") from None
    # torch.save writes a zip archive (torch >= 1.6) or its legacy pickle stream, which opens with a
    # pickled magic number
    legacy_magic = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
    if not head.startswith(b"PK\x03\x04") and not (head.startswith(b"\x80") and legacy_magic in head[:32]):
        raise CheckpointError(f"{path} is not a checkpoint: it {describe(head)}; {expected}")

    import numpy as np

    allowed = [np.dtype, type(np.dtype(np.float64)), type(np.dtype(np.float32)), type(np.dtype(np.int64))]
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    allowed.append(scalar)
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        refused = re.search(r"GLOBAL ([\w.]+)", str(e))
        if refused:
            raise CheckpointError(
                f"checkpoint {path}: refused to load, it asks for '{refused.group(1)}', which is not a tensor, "
                "number or plain container (a damaged file, or one holding other objects or code); loading a "
                "checkpoint never runs code from it"
            ) from None
        raise CheckpointError(
            f"checkpoint {path} is truncated or damaged, it cannot be unpickled; {expected}"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError) as e:
        # c10's "[enforce fail at file.cc:123] . " prefix, then the first sentence
        message = re.sub(r"^\[enforce fail[^\]]*\][\s.]*", "", str(e).strip())
        first = message.splitlines()[0].split(". ")[0] if message else type(e).__name__
        raise CheckpointError(
            f"checkpoint {path} cannot be read: a truncated or damaged file, or a zip archive torch.save did not "
            f"write ({first}); {expected}"
        ) from None


def extract_state_dict(ckpt: dict[str, Any]) -> tuple[dict[str, torch.Tensor], str]:
    """Return (model state dict, format name) from any supported checkpoint layout."""
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"checkpoint: expected a dict, got {type(ckpt).__name__}")
    if ckpt.get("format") == PROJECT_FORMAT and isinstance(ckpt.get("model"), dict):
        return ckpt["model"], PROJECT_FORMAT
    if isinstance(ckpt.get("state_dict"), dict):
        return ckpt["state_dict"], "authors"
    if ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return ckpt, "state_dict"
    raise CheckpointError(
        "checkpoint: no weights found; expected the authors' {'state_dict': ...}, the project's "
        "{'format': 'maed', 'model': ...}, or a plain state dict"
    )


def checkpoint_filter(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map a foreign state dict onto MAED's names: strip DDP's ``module.`` prefix and drop the ignored
    buffers (the original's ``decoder.smpl.*``). Returns (filtered state dict, ignored keys)."""
    out, ignored = {}, []
    for k, v in state_dict.items():
        name = strip_module_prefix(k)
        if any(p.search(name) for p in IGNORED_KEY_PATTERNS):
            ignored.append(k)
            continue
        out[name] = v
    return out, ignored


def load_state_dict_checked(
    model: nn.Module, state_dict: dict[str, torch.Tensor], source: str = "checkpoint", ignored: list[str] | None = None
) -> LoadReport:
    """Load ``state_dict`` into ``model`` only if every key and shape matches; else raise CheckpointError
    with the key report (nothing is loaded then)."""
    own = model.state_dict()
    report = LoadReport(ignored=list(ignored or []))
    report.missing = [k for k in own if k not in state_dict]
    report.unexpected = [k for k in state_dict if k not in own]
    report.mismatched = [
        f"{k}: {tuple(own[k].shape)} vs {tuple(state_dict[k].shape)}"
        for k in own
        if k in state_dict and own[k].shape != state_dict[k].shape
    ]
    if not report.ok:
        raise CheckpointError(
            f"{source} does not fit this model (another architecture or config?): " + report.summary()
        )
    model.load_state_dict(state_dict, strict=True)
    report.loaded = list(own)
    return report


def load_checkpoint(
    model: nn.Module, checkpoint: str | os.PathLike | dict[str, Any], source: str | None = None
) -> LoadReport:
    """Load an authors' or project checkpoint (path or already-read dict) into a MAED model, strictly.
    ``source`` names the checkpoint in error messages (default: its path)."""
    source = source or (str(checkpoint) if not isinstance(checkpoint, dict) else "checkpoint")
    ckpt = read_checkpoint(checkpoint) if not isinstance(checkpoint, dict) else checkpoint
    state, _ = extract_state_dict(ckpt)
    state, ignored = checkpoint_filter(state)
    return load_state_dict_checked(model, state, source=source, ignored=ignored)


def make_checkpoint(model: nn.Module, config: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """The project's checkpoint dict (model weights without body-model data, resolved config, extras)."""
    state = model.module.state_dict() if hasattr(model, "module") else model.state_dict()
    return {"format": PROJECT_FORMAT, "model": state, "config": config or {}, **extra}


def init_encoder_weights(encoder: nn.Module, path: str | os.PathLike, num_blocks: int | None = None) -> LoadReport:
    """Initialise an encoder from a local ImageNet file, never downloading.

    ``ste``: timm's R50+ViT-B/16 (``vit_base_r50_s16_224``, ImageNet-21k; ``.pth``/``.bin`` or
    ``.safetensors``), its first ``num_blocks`` blocks mapped as the original did. ``cnn``: torchvision's
    ResNet-50 ImageNet file. Parameters the file cannot provide and that are on the allow-list
    (``INIT_WEIGHTS_MAY_LACK``: the attention-fusion ``ts_attn``, ``temp_embed``, ``pre_logits``, and the
    project's joint heatmap head and grid pool) keep their
    initialisation and are listed in the report's ``missing``; any other missing key, any unexpected key
    and any shape mismatch raise ``CheckpointError`` with the key report, before anything is loaded.
    """
    path = Path(path)
    if not path.is_file():
        raise AssetError(f"--init-weights: {path} not found (a local timm/torchvision ImageNet weights file)")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except (SafetensorError, OSError) as e:  # empty, truncated, random bytes, another format
            raise CheckpointError(
                f"--init-weights {path} is not a readable safetensors file ({e}); expected timm's "
                "vit_base_r50_s16_224 weights (model.safetensors)"
            ) from None
    else:
        state = read_checkpoint(path)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(
            f"--init-weights {path} holds no state dict (parameter name -> tensor); expected timm's or "
            "torchvision's ImageNet weights file"
        )
    if isinstance(encoder, SpatioTemporalEncoder):
        state = timm_hybrid_filter(
            state,
            num_blocks=len(encoder.blocks) if num_blocks is None else num_blocks,
            num_patches=encoder.num_patches,
        )
    else:
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    own = encoder.state_dict()
    report = LoadReport()
    report.unexpected = [k for k in state if k not in own]
    report.mismatched = [k for k in state if k in own and own[k].shape != state[k].shape]
    report.missing = [k for k in own if k not in state and not any(p.search(k) for p in INIT_WEIGHTS_MAY_LACK)]
    if not report.ok:
        raise CheckpointError(f"--init-weights {path} does not fit the encoder: " + report.summary())
    # every key the file lacks is on the allow-list now, so strict=False hides nothing
    encoder.load_state_dict(state, strict=False)
    report.loaded = [k for k in own if k in state]
    report.missing = [k for k in own if k not in state]  # kept at their initialisation
    return report
