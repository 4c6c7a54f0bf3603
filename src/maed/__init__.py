"""maed: MAED video human mesh recovery (Wan et al., ICCV 2021).

Importing the package does nothing beyond defining names; heavy modules load on first use.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: names loaded from their module on first use (start-up: torch takes ~2 s to import)
_EXPORTS = {"load_model": "maed.models", "build_model": "maed.models", "load_config": "maed.config"}

__all__ = ["load_model", "build_model", "load_config", "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'maed' has no attribute {name!r}")
