"""Video in, meshes out: decoding, person detection, tracking, per-track inference, outputs (``maed demo``)."""
