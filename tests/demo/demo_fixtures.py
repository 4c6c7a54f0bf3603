"""Demo test fixtures: a short generated video of one person (the Anny body model rendered with pyrender)
with its ground truth, and the tiny model's configuration.

The person walks sideways in front of the camera, swinging arms and legs and turning slightly, over a
textured background; clothes are two flat colours so that OpenCV's HOG people detector finds them. The
ground truth is what the demo should recover: per frame the body model's rotations (root first, including
the turn that puts the body upright in the camera frame: x right, y down, z forward), the body's
translation in the camera frame, the pinhole camera (focal length, centred principal point) and the
rendered silhouette. Kept small on purpose; ``maed.synth`` generates real training data.

Also used by ``benchmarks/bench_demo.py`` (720p clips).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: the tiny test model: ResNet-50 encoder on 32-pixel crops, a small KTD decoder (over the SMPL stand-in),
#: predicting 16-frame windows as 4 interleaved 4-frame clips (the evaluation's scheme, scaled down)
TINY = [
    "MODEL.ENCODER.BACKBONE=cnn",
    "MODEL.DECODER.HIDDEN_DIM=64",
    "DATASET.WIDTH=32",
    "DATASET.HEIGHT=32",
    "EVAL.SEQLEN=4",
    "EVAL.SAMPLE_POOL=16",
]
#: clothes (RGB): shirt, trousers, skin
SHIRT, TROUSERS, SKIN = (200, 80, 60), (40, 40, 90), (220, 170, 140)


@dataclass
class PersonClip:
    """Ground truth of a generated clip (T frames)."""

    path: Path
    width: int
    height: int
    fps: float
    focal: float
    rotmat: np.ndarray  # (T, J, 3, 3) body-model rotations, camera frame
    betas: np.ndarray  # (T, S)
    trans: np.ndarray  # (T, 3) metres, camera frame
    masks: np.ndarray  # (T, H, W) bool silhouettes (upright frames)
    boxes: np.ndarray  # (T, 4) x1, y1, x2, y2 of the silhouettes


def _rot(axis: str, degrees: float) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler(axis, degrees, degrees=True).as_matrix()


def person_motion(body, num_frames: int, *, fps: float, start_x: float, speed: float, depth: float):
    """Rotations (T x J x 3 x 3), shape (T x S) and translations (T x 3) of a walking Anny body."""
    labels = body.bone_labels
    J = body.num_joints
    t = np.arange(num_frames) / fps
    phase = 2 * np.pi * 1.2 * t  # 1.2 steps per second
    rot = np.tile(np.eye(3), (num_frames, J, 1, 1))
    flip = np.diag([1.0, -1.0, -1.0])  # y up / facing +z (the body model) -> y down / facing the camera
    for i in range(num_frames):
        rot[i, 0] = flip @ _rot("y", 20 * np.sin(0.5 * phase[i]))
        swing = 25 * np.sin(phase[i])
        rot[i, labels.index("upperarm01.L")] = _rot("z", -60) @ _rot("x", swing)
        rot[i, labels.index("upperarm01.R")] = _rot("z", 60) @ _rot("x", -swing)
        rot[i, labels.index("upperleg01.L")] = _rot("x", -0.8 * swing)
        rot[i, labels.index("upperleg01.R")] = _rot("x", 0.8 * swing)
        rot[i, labels.index("lowerleg01.L")] = _rot("x", 15 + 15 * np.sin(phase[i] + 1.0))
        rot[i, labels.index("lowerleg01.R")] = _rot("x", 15 - 15 * np.sin(phase[i] + 1.0))
    betas = np.zeros((num_frames, body.num_betas))
    trans = np.stack([start_x + speed * t, np.full_like(t, 0.05), np.full_like(t, depth)], axis=1)
    return rot.astype(np.float32), betas.astype(np.float32), trans


def textured_background(width: int, height: int, seed: int) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    coarse = rng.integers(70, 190, size=(6, 8, 3), dtype=np.uint8)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    image += rng.integers(-18, 19, size=(height, width, 1)).astype(np.int16)
    return np.clip(image, 0, 255).astype(np.uint8)


def render_person_clip(
    path: str | Path,
    *,
    width: int = 256,
    height: int = 192,
    num_frames: int = 24,
    fps: float = 25.0,
    seed: int = 0,
    rotation: int = 0,
    body=None,
    crf: int = 16,
) -> PersonClip:
    """Render the clip, write it as H.264 (``rotation``: a display rotation in degrees counter-clockwise
    recorded in the stream, with the pixels stored turned the other way, as a phone does), return its truth."""
    import av
    import torch
    import trimesh

    from maed.body import build_body_model
    from maed.render.gl import import_pyrender, offscreen_renderer

    pyrender = import_pyrender()
    body = body if body is not None else build_body_model("anny")
    focal = 1.2 * height
    depth = 1.63 * focal / (0.62 * height)  # the body about 62 % of the frame's height
    half_width = 0.3 * width * depth / focal
    rot, betas, trans = person_motion(
        body,
        num_frames,
        fps=fps,
        start_x=-half_width,
        speed=2 * half_width * fps / max(num_frames - 1, 1),
        depth=depth,
    )
    with torch.inference_mode():
        verts = body(torch.from_numpy(rot), torch.from_numpy(betas)).verts.numpy()
    faces = body.faces.cpu().numpy()
    y = verts[0][:, 1] - verts[0][:, 1].min()  # depth below the top of the head (y points down)
    colors = np.where((y > 0.55 * np.ptp(y))[:, None], TROUSERS, SHIRT)
    colors = np.where((y < 0.13 * np.ptp(y))[:, None], SKIN, colors)
    colors = np.concatenate([colors, np.full((len(colors), 1), 255)], axis=1).astype(np.uint8)

    renderer = offscreen_renderer(width, height)
    background = textured_background(width, height, seed)
    masks = np.zeros((num_frames, height, width), dtype=bool)
    boxes = np.zeros((num_frames, 4), dtype=np.float64)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    container = av.open(str(path), mode="w")
    coded_w, coded_h = (height, width) if rotation % 180 else (width, height)
    stream = container.add_stream("libx264", rate=int(round(fps)))
    stream.width, stream.height, stream.pix_fmt = coded_w, coded_h, "yuv420p"
    stream.options = {"crf": str(crf), "preset": "veryfast"}
    if rotation:
        stream.set_display_rotation(rotation)
    light = np.eye(4)
    light[:3, :3] = _rot("x", -30) @ _rot("y", 30)
    gl_flip = np.array([1.0, -1.0, -1.0])  # camera frame (y down, z forward) -> OpenGL (y up, z backward)
    try:
        for i in range(num_frames):
            scene = pyrender.Scene(bg_color=[0, 0, 0, 0], ambient_light=[0.4, 0.4, 0.4])
            mesh = trimesh.Trimesh((verts[i] + trans[i]) * gl_flip, faces, vertex_colors=colors, process=False)
            scene.add(pyrender.Mesh.from_trimesh(mesh))
            scene.add(pyrender.IntrinsicsCamera(fx=focal, fy=focal, cx=width / 2, cy=height / 2), pose=np.eye(4))
            scene.add(pyrender.DirectionalLight(intensity=4.0), pose=light)
            color, depth_map = renderer.render(scene, flags=pyrender.RenderFlags.RGBA)
            mask = depth_map > 0
            frame = background.copy()
            frame[mask] = color[mask][:, :3]
            masks[i] = mask
            ys, xs = np.nonzero(mask)
            boxes[i] = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            coded = np.ascontiguousarray(np.rot90(frame, k=-(rotation // 90))) if rotation else frame
            for packet in stream.encode(av.VideoFrame.from_ndarray(coded, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    finally:
        container.close()
        renderer.delete()
    return PersonClip(
        path=path,
        width=width,
        height=height,
        fps=fps,
        focal=focal,
        rotmat=rot,
        betas=betas,
        trans=trans.astype(np.float32),
        masks=masks,
        boxes=boxes,
    )


# --------------------------------------------------------------------------------------------- oracle
def crop_cameras_from_truth(clip: PersonClip, body, frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The crop cameras (T x 3: s, tx, ty) a perfect model would predict for the clip's person.

    Derived from the truth alone, independently of ``maed.demo``: the clip's pinhole projection of the
    body's vertices, expressed in [-1, 1] of each frame's crop (the crop covers 1.3 x the square box
    ``boxes``: cx, cy, side, side), then the weak-perspective camera ``u = s (X + tx), v = s (Y + ty)`` of the
    body's own, untranslated vertices fitted by least squares.
    """
    import torch

    with torch.inference_mode():
        verts = body(torch.from_numpy(clip.rotmat[frames]), torch.from_numpy(clip.betas[frames])).verts.numpy()
    cams = np.zeros((len(frames), 3))
    for k, (v, t, box) in enumerate(zip(verts.astype(np.float64), clip.trans[frames], boxes)):
        p = v + t
        pixels = np.stack([clip.width / 2 + clip.focal * p[:, 0] / p[:, 2],
                           clip.height / 2 + clip.focal * p[:, 1] / p[:, 2]], axis=1)  # fmt: skip
        half = 1.3 * box[2] / 2.0
        u = (pixels - box[:2]) / half  # (V, 2) in [-1, 1] of the crop
        n = len(v)
        A = np.zeros((2 * n, 3))
        A[:n, 0], A[:n, 1] = v[:, 0], 1.0
        A[n:, 0], A[n:, 2] = v[:, 1], 1.0
        (s, a, b), *_ = np.linalg.lstsq(A, np.concatenate([u[:, 0], u[:, 1]]), rcond=None)
        cams[k] = [s, a / s, b / s]
    return cams.astype(np.float32)


class OraclePredictor:
    """Stands in for the network: for each track, the clip's true pose and shape, and the crop camera that
    fits the true projection (:func:`crop_cameras_from_truth`). Interface of ``maed.demo.infer.ModelPredictor``."""

    def __init__(self, clip: PersonClip, body):
        self.clip, self.body_model = clip, body
        self.signature = {"oracle": str(clip.path)}

    def predict(self, tracks, frames, **kw):
        from maed.demo.infer import TrackPrediction

        out = {}
        for t in tracks:
            cam = crop_cameras_from_truth(self.clip, self.body_model, t.frames, t.boxes)
            out[t.track_id] = TrackPrediction(cam=cam, rotmat=self.clip.rotmat[t.frames],
                                              betas=self.clip.betas[t.frames])  # fmt: skip
        return out
