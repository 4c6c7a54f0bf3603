"""MAED networks: building from a config, loading checkpoints, running over whole windows.

model = maed.load_model("model_best.pth.tar", body_model_dir="data/smpl_data",
                        config="configs/config_stage2.yaml")
out = model(images)          # images: N x T x 3 x S x S (S = DATASET.WIDTH, 224 for the original)
                             # (keypoints N x T x K x C for MODEL.ENCODER.BACKBONE=keypoints)
out["verts"], out["kp_3d"], out["theta"]

``factory.py`` turns a config into a model (``build_model``, ``load_model``); ``windows.py`` runs one over
whole windows as evaluation and the demo do (``predict_windows``).
"""

from maed.models.factory import DECODERS, ENCODERS, build_model, load_model
from maed.models.maed import MAED, MAEDOutput

__all__ = ["MAED", "MAEDOutput", "build_model", "load_model", "ENCODERS", "DECODERS"]
