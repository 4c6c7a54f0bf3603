"""maed: MAED video human mesh recovery (Wan et al., ICCV 2021).

Importing the package does nothing beyond defining names; heavy modules load on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["load_model", "build_model", "load_config", "__version__"]


def __getattr__(name: str):
    if name in ("load_model", "build_model"):
        from maed import models

        return getattr(models, name)
    if name == "load_config":
        from maed.config import load_config

        return load_config
    raise AttributeError(f"module 'maed' has no attribute {name!r}")
