"""``maed bench``: speed of MAED on generated inputs. ``cli`` (the command), ``infer`` (inference paths
against the reference), ``train`` (the training loader and step), ``common`` (devices, timing, FLOPs)."""
