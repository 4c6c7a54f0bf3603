"""``maed synth``: render a synthetic video dataset and write it in the format of the real ones.

Output folder (``--out``; it is both ``--db-dir`` and ``--data-root`` for training and evaluation)::

    synth_run.json             the run's arguments, written first: a rerun with others is refused
    frames/seq_0003/000012.jpg the frames (JPEG), shared by the people of a sequence
    annotations/seq_0003.npz   one sequence's rows; its presence marks the sequence finished
    synth_{train,val,test}_db.pt  the databases (``maed.data.database`` format), assembled at the end
    crop_cache/synth_*_db/     with --crop-cache: the databases' crop caches (``maed.data.crop_cache``)
    synth_preview.jpg          a few training frames with their 2D joints and boxes drawn
    videos/seq_0003.mp4        with --video: the sequence as H.264, and seq_0003_gt.npz, its ground truth
    synth.json                 metadata (arguments, splits, sequences, body model, conventions), last

Sequences are split 80/10/10 into train/val/test (at least one each from three sequences on) by a
permutation drawn from the seed; test sequences use held-out backgrounds and body shapes
(``maed.synth.backgrounds``, ``maed.synth.bodies``). Sequence i is drawn from (seed, i) alone, so the
output is the same for a seed whatever the number of workers and however often the run was interrupted
and resumed. Every file is written atomically; a database is either complete or absent.
"""

from __future__ import annotations

import contextlib
import errno
import json
import multiprocessing
import os
import shutil
import signal
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from maed.body import build_body_model
from maed.body.anny_joints import ANNY_MISSING_JOINTS, ANNY_PHENOTYPES
from maed.body.joints import JOINT_NAMES
from maed.body.layout import pose_layout
from maed.data.crop_cache import build_crop_cache, default_crop_cache_dir
from maed.data.database import checksum_path, concat_databases, load_database, save_database
from maed.errors import ConfigError, MaedError, OutputError
from maed.render.gl import offscreen_renderer
from maed.synth.backgrounds import FLOOR_SOURCES, PATTERNS, PHOTOS
from maed.synth.bodies import HELD_OUT_PHENOTYPES, TRAIN_PHENOTYPES, build_kit
from maed.synth.preview import contact_sheet
from maed.synth.render import FrameRenderer
from maed.synth.sequence import FIELDS, Settings, load_rows, render_sequence, save_rows, sequence_name
from maed.synth.video import ground_truth_path, write_ground_truth, write_sequence_video
from maed.utils.io import (
    atomic_path,
    atomic_write_text,
    check_output_dir,
    output_error,
    remove_stale_temporaries,
)

SYNTH_VERSION = 1
DATASET = "synth"
SPLITS = ("train", "val", "test")
RUN_FILE = "synth_run.json"
SIDECAR = "synth.json"
PREVIEW = "synth_preview.jpg"
VIDEO_DIR = "videos"
DEFAULT_RIGS = {"anny": "cmu_mb", "smpl": ""}


@dataclass(frozen=True)
class RunSpec:
    """Everything that decides the output of a run (a rerun into the same folder must match it)."""

    sequences: int
    frames: int
    seed: int
    width: int
    height: int
    body_model: str
    rig: str
    max_people: int = 3
    fps: float = 30.0
    jpeg_quality: int = 90
    people: int = 0  # an exact count per sequence; 0: drawn

    def settings(self) -> Settings:
        return Settings(
            width=self.width,
            height=self.height,
            frames=self.frames,
            fps=self.fps,
            jpeg_quality=self.jpeg_quality,
            max_people=self.max_people,
            people=self.people,
        )

    def identity(self) -> dict:
        identity = {"version": SYNTH_VERSION, **asdict(self)}
        if not self.people:  # runs written before --people existed resume: their identity has no such key
            del identity["people"]
        return identity


@dataclass
class SynthSummary:
    """What a run produced: counts, the seconds it took, where the databases are."""

    out: Path
    sequences: int
    rendered: int
    frames: int
    people: int
    rows: int
    seconds: float
    databases: dict[str, Path] = field(default_factory=dict)
    crop_caches: dict[str, Path] = field(default_factory=dict)
    videos: dict[str, Path] = field(default_factory=dict)


def default_workers() -> int:
    """Rendering processes by default: the usable CPUs, at most 4 (each holds a body model, ~1.3 GB)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


def database_path(out: str | os.PathLike, split: str) -> Path:
    return Path(out) / f"{DATASET}_{split}_db.pt"


def split_sequences(count: int, seed: int) -> list[str]:
    """The split of each of ``count`` sequences: 10 % val and 10 % test (rounded, at least one each from
    three sequences on; two sequences: one train, one test), by a permutation drawn from ``seed``."""
    if count >= 3:
        n_val = n_test = max(1, int(round(0.1 * count)))
    else:
        n_val, n_test = 0, int(count == 2)
    order = np.random.default_rng([int(seed), int(count), 0x5B117]).permutation(count)
    splits = ["train"] * count
    for i in order[:n_test]:
        splits[i] = "test"
    for i in order[n_test : n_test + n_val]:
        splits[i] = "val"
    return splits


def check_arguments(spec: RunSpec, workers: int) -> None:
    """One ``ConfigError`` per bad option."""
    if spec.sequences < 1:
        raise ConfigError(f"--sequences {spec.sequences}: expected at least 1")
    if spec.frames < 1:
        raise ConfigError(f"--frames {spec.frames}: expected at least 1 frame per sequence")
    if spec.seed < 0:
        raise ConfigError(f"--seed {spec.seed}: expected a non-negative integer")
    if spec.width < 32 or spec.height < 32:
        raise ConfigError(f"--size {spec.width}x{spec.height}: expected at least 32x32 pixels")
    if not 1 <= spec.max_people <= 3:
        raise ConfigError(f"--max-people {spec.max_people}: expected 1, 2 or 3")
    if not 0 <= spec.people <= spec.max_people:
        raise ConfigError(f"--people {spec.people}: expected 1 to {spec.max_people} (--max-people)")
    if workers < 1:
        raise ConfigError(f"--workers {workers}: expected at least 1")


# ---------------------------------------------------------------------------------------- out folder
def _owned_paths(out: Path) -> list[Path]:
    """What a run writes into ``out`` (removed by --force)."""
    return [
        out / RUN_FILE,
        out / SIDECAR,
        out / PREVIEW,
        out / "frames",
        out / "annotations",
        out / VIDEO_DIR,
        *[database_path(out, s) for s in SPLITS],
        *[checksum_path(database_path(out, s)) for s in SPLITS],
        *[out / "crop_cache" / database_path(out, s).stem for s in SPLITS],
    ]


def prepare_out(out: Path, spec: RunSpec, force: bool) -> None:
    """Create ``out`` or check that it holds this same run (to resume); --force discards an earlier run
    (the files a run writes) or writes into a folder that holds other files. Temporary files that a
    killed run left behind are removed."""
    check_output_dir(out, option="--out")
    out.mkdir(parents=True, exist_ok=True)
    run_file = out / RUN_FILE
    identity = spec.identity()
    if run_file.is_file() and not force:
        try:
            previous = json.loads(run_file.read_text())
        except (OSError, ValueError):
            previous = None
        if previous != identity:
            changed = sorted(k for k in identity if not isinstance(previous, dict) or previous.get(k) != identity[k])
            raise OutputError(
                f"--out {out} holds a maed synth run made with other arguments (differing: {', '.join(changed)}); "
                "rerun with the same arguments to resume it, choose another --out, or add --force to start over"
            )
    elif not run_file.is_file() and any(out.iterdir()) and not force:
        raise OutputError(
            f"--out {out} is not empty and holds no maed synth run; choose a new or empty folder, or add --force "
            "to write into it"
        )
    if force and run_file.is_file():  # only an earlier run's files: a foreign folder keeps what it holds
        for path in _owned_paths(out):
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    atomic_write_text(run_file, json.dumps(identity, indent=2, sort_keys=True) + "\n")
    remove_stale_temporaries(out, recursive=True)


def _annotation_path(out: Path, index: int) -> Path:
    return out / "annotations" / f"{sequence_name(index)}.npz"


def _finished(out: Path, index: int) -> bool:
    path = _annotation_path(out, index)
    if not path.is_file():
        return False
    try:
        load_rows(path)
    except (OSError, ValueError, KeyError):
        return False
    return True


# ------------------------------------------------------------------------------------------ rendering
@contextlib.contextmanager
def _torch_threads(n: int):
    """Body models evaluated with the same thread count in every process, so the floats are identical."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _render_one(kit, renderer, spec: RunSpec, out: Path, index: int, split: str) -> int:
    rows, meta = render_sequence(kit, renderer, spec.settings(), seed=spec.seed, index=index, split=split, out_dir=out)
    save_rows(_annotation_path(out, index), rows, meta)
    return index


_WORKER: dict = {}


@contextlib.contextmanager
def _sigint_held():
    """Hold back SIGINT (Ctrl-C) while worker processes start: they inherit the blocked signal, so one that
    arrives while they import numpy and torch prints no traceback there; this process gets it when the
    block ends, and the command stops with one line."""
    if not hasattr(signal, "pthread_sigmask"):  # not POSIX
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _worker_init(spec: RunSpec, body_model_dir, out: Path, sigint_ignored: bool = False) -> None:
    # Ctrl-C ends a worker silently (the parent reports it once); a SIGINT held back while it started
    # (_sigint_held) is delivered here. A parent that ignores SIGINT (started in the background by a shell,
    # or with nohup-like tools) keeps running through it, and so must its workers
    signal.signal(signal.SIGINT, signal.SIG_IGN if sigint_ignored else signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    import torch

    torch.set_num_threads(1)
    kit = build_kit(spec.body_model, spec.rig, body_model_dir)
    _WORKER.update(kit=kit, renderer=FrameRenderer(spec.width, spec.height, kit.faces, kit.num_vertices))
    _WORKER.update(spec=spec, out=out)


def _worker_render(index: int, split: str) -> int:
    w = _WORKER
    return _render_one(w["kit"], w["renderer"], w["spec"], w["out"], index, split)


def check_rendering() -> None:
    """Fail fast, with the missing system packages named, when no headless OpenGL context can be made."""
    offscreen_renderer(16, 16).delete()


def _render_all(spec: RunSpec, out: Path, todo: list[int], splits: list[str], workers: int, body_model_dir, bar):
    if workers == 1 or len(todo) <= 1:
        with _torch_threads(1):
            kit = build_kit(spec.body_model, spec.rig, body_model_dir)
            renderer = FrameRenderer(spec.width, spec.height, kit.faces, kit.num_vertices)
            try:
                for index in todo:
                    _render_one(kit, renderer, spec, out, index, splits[index])
                    bar.update(1)
            finally:
                renderer.close()
        return
    context = multiprocessing.get_context("spawn")  # a fresh process per worker: one OpenGL context each
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(todo)),
        mp_context=context,
        initializer=_worker_init,
        initargs=(spec, body_model_dir, out, signal.getsignal(signal.SIGINT) == signal.SIG_IGN),
    )
    try:
        with _sigint_held():  # the first submit starts the workers
            futures = [pool.submit(_worker_render, index, splits[index]) for index in todo]
        for future in as_completed(futures):
            future.result()
            bar.update(1)
    except BrokenProcessPool:
        raise MaedError(
            "a rendering worker process stopped unexpectedly (killed, out of memory, or an error printed above); "
            "the finished sequences are kept: run the same command again to resume"
        ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------------------------------ assembly
def assemble(out: Path, spec: RunSpec, splits: list[str]) -> tuple[dict[str, Path], list[dict], dict[str, int]]:
    """Write the split databases from the finished sequences (atomically). Returns (paths, metas, counts)."""
    parts: dict[str, list] = {s: [] for s in SPLITS}
    metas = []
    for index in range(spec.sequences):
        rows, meta = load_rows(_annotation_path(out, index))
        parts[splits[index]].append(rows)
        metas.append(meta)
    paths = {}
    for split in SPLITS:
        if parts[split]:
            paths[split] = save_database(concat_databases(parts[split], keys=list(FIELDS)), database_path(out, split))
    counts = {
        "sequences": spec.sequences,
        "frames": spec.sequences * spec.frames,
        "people": sum(len(m["people"]) for m in metas),
        "rows": sum(len(p["vid_name"]) for ps in parts.values() for p in ps),
    }
    return paths, metas, counts


def write_preview(out: Path, database: Path, frames: int = 8) -> Path:
    """``synth_preview.jpg``: up to ``frames`` frames of a database (first and middle frame of its first
    sequences) with every person's 2D joints and box drawn."""
    import cv2

    db = load_database(database)
    names = list(dict.fromkeys(str(n) for n in db["img_name"]))
    sequences = list(dict.fromkeys(n.rsplit("/", 1)[0] for n in names))
    chosen = []
    for seq in sequences:
        in_seq = [n for n in names if n.startswith(seq + "/")]
        chosen += list(dict.fromkeys([in_seq[0], in_seq[len(in_seq) // 2]]))
    sheet = contact_sheet(db, out, chosen[:frames], columns=4, width=320)
    ok, jpeg = cv2.imencode(".jpg", sheet, [cv2.IMWRITE_JPEG_QUALITY, 90])
    path = out / PREVIEW
    with atomic_path(path) as tmp:
        tmp.write_bytes(jpeg.tobytes())
    return path


def sidecar(spec: RunSpec, splits: list[str], metas: list[dict], counts: dict, kit_info: dict) -> dict:
    """The metadata that is not per row (see the module docstring)."""
    return {
        "dataset": DATASET,
        "version": SYNTH_VERSION,
        "arguments": spec.identity(),
        "image_size": [spec.width, spec.height],
        "fps": spec.fps,
        "body_model": spec.body_model,
        "rig": spec.rig,
        **kit_info,
        "output_joints": list(JOINT_NAMES),
        "splits": {s: [sequence_name(i) for i, sp in enumerate(splits) if sp == s] for s in SPLITS},
        "databases": {s: database_path("", s).name for s in SPLITS if s in splits},
        "counts": counts,
        "backgrounds": {
            "train_and_val": {"photos": list(PHOTOS["train"]), "patterns": list(PATTERNS["train"])},
            "test": {"photos": list(PHOTOS["test"]), "patterns": list(PATTERNS["test"])},
            "floor_sources": sorted(FLOOR_SOURCES),
        },
        "shapes": {
            "train_and_val": TRAIN_PHENOTYPES,
            "test_held_out": HELD_OUT_PHENOTYPES,
            "rule": "test people draw each held-out phenotype from its held-out range with probability 1/2, "
            "at least one (SMPL: one or two of the first three betas at 2-3 in magnitude)",
        },
        "conventions": {
            "camera_frame": "x right, y down, z forward, metres",
            "pixels": "pixel centres at integer coordinates; joints2D = (fx X/Z + cx, fy Y/Z + cy, visible)",
            "pose": "axis-angle per bone of the rig, root (global orientation) in the camera frame",
            "shape": "anny: phenotype - 0.5; smpl: betas",
            "trans": "body_model(pose, shape).joints + trans = joints3D[..., :3]",
            "intrinsics": "fx, fy, cx, cy",
            "bbox": "cx, cy, w, h: a square 1.1 x the projected mesh's larger side",
            "visibility": "0 outside the frame, behind the camera, behind another person, or no such joint",
            "valid": "at least 7 of the 14 LSP joints in the frame and the whole body in front of the camera",
        },
        "sequences": metas,
    }


def json_lines(info: dict) -> str:
    """A dict as JSON with one top-level key per line (lists of dicts: one item per line)."""
    lines = []
    for key, value in info.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            items = ",\n".join("  " + json.dumps(v, sort_keys=True) for v in value)
            lines.append(f" {json.dumps(key)}: [\n{items}\n ]")
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def _crop_caches(out: Path, paths: dict[str, Path], size: int, workers: int, progress: bool) -> dict[str, Path]:
    return {
        split: build_crop_cache(
            path,
            dataset_root=out,
            out_dir=default_crop_cache_dir(path),
            size=int(size),
            num_workers=int(workers),
            progress=progress,
        )
        for split, path in paths.items()
    }


def _videos(out: Path, spec: RunSpec, progress: bool) -> dict[str, Path]:
    """``videos/seq_XXXX.mp4`` and ``seq_XXXX_gt.npz`` of every sequence that has none yet (from its frames
    and annotations). Returns {sequence name: video path}."""
    from tqdm import tqdm

    folder = out / VIDEO_DIR
    done = {}
    for index in tqdm(range(spec.sequences), desc="videos", unit="seq", disable=not progress):
        name = sequence_name(index)
        video, truth = folder / f"{name}.mp4", ground_truth_path(folder / f"{name}.mp4")
        if not truth.is_file():
            rows, _ = load_rows(_annotation_path(out, index))
            kit = {**_kit_info(spec), "body_model": spec.body_model, "rig": spec.rig}
            write_ground_truth(truth, rows, fps=spec.fps, size=(spec.width, spec.height), kit=kit)
        if not video.is_file():
            write_sequence_video(video, out, index, frames=spec.frames, fps=spec.fps)
        done[name] = video
    return done


def _kit_info(spec: RunSpec) -> dict:
    """Pose layout, shape labels and joint mask of the run's body model, from tables."""
    layout = pose_layout(spec.body_model, spec.rig)
    info = {"pose_joints": list(layout.joint_names), "num_betas": layout.num_betas}
    if spec.body_model == "anny":
        info["shape_labels"] = list(ANNY_PHENOTYPES)
        info["joint_mask"] = [n not in ANNY_MISSING_JOINTS for n in JOINT_NAMES]
    else:
        info["shape_labels"] = [f"beta{k}" for k in range(layout.num_betas)]
        info["joint_mask"] = [True] * 49
    return info


# ------------------------------------------------------------------------------------------ entry point
def generate(
    out: str | os.PathLike,
    *,
    sequences: int = 200,
    frames: int = 64,
    seed: int = 0,
    width: int = 640,
    height: int = 480,
    body_model: str = "anny",
    rig: str | None = None,
    body_model_dir: str | os.PathLike | None = None,
    max_people: int = 3,
    workers: int | None = None,
    crop_cache: bool = False,
    crop_cache_size: int = 256,
    people: int = 0,
    video: bool = False,
    force: bool = False,
    progress: bool = True,
) -> SynthSummary:
    """Render ``sequences`` sequences of ``frames`` frames into ``out`` and write its databases.

    ``rig`` defaults to ``cmu_mb`` for Anny (31 bones, body only); SMPL takes ``body_model_dir`` (the
    user's SMPL files). An interrupted run resumes when called again with the same arguments; other
    arguments are refused unless ``force`` (which discards the earlier run). ``workers`` > 1 renders
    sequences in that many processes (default :func:`default_workers`); the output does not depend on
    it. ``crop_cache`` builds the databases' crop caches of side ``crop_cache_size`` pixels. ``people``: an
    exact number of people in every sequence (0: one to ``max_people`` at random). ``video``: also an H.264
    video of every sequence with its ground truth as plain arrays (``videos/``, :mod:`maed.synth.video`);
    a rerun with ``video`` adds them to a finished run. Returns a :class:`SynthSummary`.
    """
    from tqdm import tqdm

    start = time.perf_counter()
    workers = default_workers() if workers is None else int(workers)
    body_model = str(body_model).lower()
    rig = DEFAULT_RIGS.get(body_model, "") if rig is None else rig
    layout = pose_layout(body_model, rig)  # checks the body model and the rig
    spec = RunSpec(
        sequences=int(sequences),
        frames=int(frames),
        seed=int(seed),
        width=int(width),
        height=int(height),
        body_model=layout.body_model,
        rig="" if layout.body_model == "smpl" else layout.rig,
        max_people=int(max_people),
        people=int(people),
    )
    check_arguments(spec, int(workers))
    out = check_output_dir(out, option="--out")
    check_rendering()
    if spec.body_model == "smpl":  # the user's files: say what is missing before writing anything
        build_body_model("smpl", model_dir=body_model_dir)
    prepare_out(out, spec, force)
    splits = split_sequences(spec.sequences, spec.seed)
    todo = [i for i in range(spec.sequences) if not _finished(out, i)]
    try:
        with tqdm(
            total=spec.sequences,
            initial=spec.sequences - len(todo),
            unit="seq",
            desc="maed synth",
            disable=not progress,
        ) as bar:
            _render_all(spec, out, todo, splits, int(workers), body_model_dir, bar)
        paths, metas, counts = assemble(out, spec, splits)
        caches = _crop_caches(out, paths, crop_cache_size, workers, progress) if crop_cache else {}
        videos = _videos(out, spec, progress) if video else {}
        if paths:
            write_preview(out, paths.get("train", next(iter(paths.values()))))
        atomic_write_text(out / SIDECAR, json_lines(sidecar(spec, splits, metas, counts, _kit_info(spec))))
    except OSError as e:  # a write into --out failed (an OutputError from the atomic writers, or the OS's own)
        if not isinstance(e, OutputError) and e.errno != errno.ENOSPC:
            raise
        cause = str(e) if isinstance(e, OutputError) else str(output_error(f"cannot write in {out}", e))
        raise OutputError(
            f"{cause}. Every file written is whole and the finished sequences are kept: fix this and run the "
            "same command again to resume"
        ) from None
    return SynthSummary(
        out=out,
        sequences=spec.sequences,
        rendered=len(todo),
        frames=counts["frames"],
        people=counts["people"],
        rows=counts["rows"],
        seconds=time.perf_counter() - start,
        databases=paths,
        crop_caches=caches,
        videos=videos,
    )
