"""``maed prepare`` (raw dataset -> ``*_db.pt``) and ``maed data info|show`` (inspect a database)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from maed.data.bbox import BASE_SCALE
from maed.data.database import find_image_prefix, image_path, load_database, parse_database_filename
from maed.data.keypoints import SPIN_DRAW_BONES, SPIN_JOINT_NAMES, joint_coverage
from maed.data.prepare import PrepareOptions, prepare_dataset
from maed.data.registry import DATASETS, canonical_name, dataset_info
from maed.errors import DataError
from maed.paths import data_dir
from maed.utils.io import atomic_path, check_output_file, remove_stale_temporaries

SHOW_SIZE = 448  # pixels of the square picture ``maed data show`` writes
SHOW_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")  # what ``maed data show`` writes


def register(subparsers) -> None:
    readers = [d for d in DATASETS.values() if d.reader is not None]
    spellings = "; ".join(f"{d.name} = {', '.join(d.aliases)}" for d in readers if d.aliases)
    p = subparsers.add_parser(
        "prepare",
        help="build <dataset>_<split>_db.pt databases from a raw dataset (docs/DATA.md)",
        description="Read a raw dataset and write its databases in the authors' format. Every split found "
        "in the raw tree is prepared; finished databases are skipped unless --force.",
    )
    p.add_argument("dataset", help=f"one of: {', '.join(d.name for d in readers)} ({spellings})")
    p.add_argument("--raw", help="raw dataset directory (default: $MAED_DATA_DIR/<dataset directory>)")
    p.add_argument("--out", help="database directory (default: $MAED_DATA_DIR/database)")
    p.add_argument("--body-model-dir", help="SMPL files, for 3dpw (default: $MAED_DATA_DIR/smpl_data)")
    p.add_argument("--splits", nargs="+", help="splits to prepare (default: all the dataset has)")
    p.add_argument("--force", action="store_true", help="rebuild databases (and crop caches) that already exist")
    p.add_argument("--crop-cache", action="store_true", help="also store each frame's enlarged crop once")
    p.add_argument("--crop-size", type=int, default=256, help="side of the cached crops in pixels")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    g = p.add_argument_group("dataset options")
    g.add_argument("--drop-invalid-camera", action="store_true", help="3dpw: drop frames with campose_valid false")
    g.add_argument("--gendered", action="store_true", help="3dpw: ground truth from the actors' gendered SMPL")
    g.add_argument("--cameras", type=int, nargs="+", default=list(range(9)), help="mpii3d training cameras")
    g.add_argument("--h36m-protocol", type=int, choices=(1, 2), default=2, help="h36m test-set protocol file")
    p.add_argument(
        "--allow-missing-images",
        action="store_true",
        help="write a database even when some images it refers to are missing (default: stop with an error)",
    )
    p.set_defaults(func=_run_prepare)

    d = subparsers.add_parser("data", help="inspect a database: info, show")
    dsub = d.add_subparsers(dest="data_command", metavar="ACTION")
    info = dsub.add_parser("info", help="frames, sequences, fields with shapes, joint coverage")
    info.add_argument("db", help="a *_db.pt file")
    info.set_defaults(func=_run_info)
    show = dsub.add_parser("show", help="draw one row's crop and 2D joints into an image")
    show.add_argument("db", help="a *_db.pt file")
    show.add_argument("--index", type=int, default=0, help="row to draw")
    show.add_argument("--out", default="sample.png", help="picture to write (png/jpg)")
    show.add_argument("--root", help="dataset root img_name is relative to (default: from the file name)")
    show.set_defaults(func=_run_show)
    d.set_defaults(func=lambda args: d.print_help() or 2)


# ------------------------------------------------------------------------------------------- prepare
def _run_prepare(args: argparse.Namespace) -> int:
    name = canonical_name(args.dataset)
    raw = Path(args.raw) if args.raw else data_dir() / dataset_info(name).directory
    out = Path(args.out) if args.out else data_dir() / "database"
    options = PrepareOptions(
        body_model_dir=args.body_model_dir or str(data_dir() / "smpl_data"),
        progress=not args.no_progress,
        drop_invalid_camera=args.drop_invalid_camera,
        gendered=args.gendered,
        cameras=tuple(args.cameras),
        h36m_protocol=args.h36m_protocol,
        allow_missing_images=args.allow_missing_images,
    )
    results = prepare_dataset(name, raw, out, splits=args.splits, force=args.force, options=options)
    if args.crop_cache:
        _crop_caches(results, raw, args)
    return 0


def _crop_caches(results, raw: Path, args: argparse.Namespace) -> None:
    from maed.data.crop_cache import build_crop_cache  # start-up: torch (~2 s) stays out of `maed --help`

    for res in results:
        if res.status not in ("written", "exists", "kept"):
            continue
        if "bbox" not in load_database(res.path):
            print(f"{res.path.name}: no boxes (the frames are crops already), no crop cache needed")
            continue
        cache = build_crop_cache(
            res.path, dataset_root=raw, size=args.crop_size, progress=not args.no_progress, overwrite=args.force
        )
        print(f"{res.path.name}: crop cache in {cache}")


# ---------------------------------------------------------------------------------------------- info
def describe_database(db: dict, label: str) -> str:
    """The text ``maed data info`` prints."""
    n = len(db["img_name"])
    lines = [f"{label}", f"  frames: {n}"]
    if "vid_name" in db:
        lines.append(f"  sequences: {len(np.unique(db['vid_name']))}")
    lines.append("  fields:")
    for key, value in db.items():
        lines.append(f"    {key:<10} {str(value.dtype):<10} {tuple(value.shape)}")
    if n:
        first = str(db["img_name"][0])
        lines.append(f"  img_name[0]: {first}" + ("  (absolute path)" if os.path.isabs(first) else ""))
    for key in ("joints2D", "joints3D"):
        if key in db and db[key].ndim == 3 and db[key].shape[1] == len(SPIN_JOINT_NAMES) and n:
            cov = joint_coverage(db[key], "spin")
            present = [f"{i}:{name} {frac:.0%}" for i, (name, frac) in enumerate(cov.items()) if frac > 0]
            lines.append(f"  {key} coverage ({len(present)} of {len(cov)} joints with confidence > 0):")
            for k in range(0, len(present), 4):
                lines.append("    " + ", ".join(present[k : k + 4]))
    if "valid" in db:
        lines.append(f"  valid: {int(np.asarray(db['valid']).astype(bool).sum())} of {n}")
    return "\n".join(lines)


def _run_info(args: argparse.Namespace) -> int:
    print(describe_database(load_database(args.db), args.db))
    return 0


# ---------------------------------------------------------------------------------------------- show
def _default_root(db_path: Path) -> Path:
    """The dataset root of a database file, from its name (``$MAED_DATA_DIR/<dataset directory>``)."""
    parsed = parse_database_filename(db_path)
    name = parsed[0] if parsed else db_path.stem
    return data_dir() / (DATASETS[name].directory if name in DATASETS else name)


def draw_sample(image: np.ndarray, joints2d: np.ndarray, bbox: np.ndarray | None, size: int = SHOW_SIZE):
    """Crop ``image`` (H x W x 3 BGR) around ``bbox`` (cx, cy, w, h; None: the whole image) to size x size
    and draw the 49-joint ``joints2d`` (x, y, conf; confident joints only) with their bones."""
    import cv2

    h, w = image.shape[:2]
    if bbox is None:
        cx, cy, side = w / 2.0, h / 2.0, float(max(w, h))
    else:
        cx, cy, side = float(bbox[0]), float(bbox[1]), float(max(bbox[2], bbox[3])) * BASE_SCALE
    s = size / side
    affine = np.array([[s, 0.0, size / 2.0 - s * cx], [0.0, s, size / 2.0 - s * cy]])
    out = cv2.warpAffine(image, affine, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    pts = joints2d[:, :2] @ affine[:, :2].T + affine[:, 2]
    ok = joints2d[:, 2] > 0
    index = {n: i for i, n in enumerate(SPIN_JOINT_NAMES)}
    for a, b in SPIN_DRAW_BONES:
        i, j = index[a], index[b]
        if ok[i] and ok[j]:
            side_of = a.replace("OP ", "")[:1].lower()
            color = (255, 128, 0) if side_of == "l" else (0, 0, 255) if side_of == "r" else (0, 255, 0)
            cv2.line(out, tuple(int(v) for v in pts[i]), tuple(int(v) for v in pts[j]), color, 2, cv2.LINE_AA)
    for i in np.flatnonzero(ok):
        cv2.circle(out, (int(pts[i, 0]), int(pts[i, 1])), 3, (255, 255, 255), -1, cv2.LINE_AA)
    return out


def _run_show(args: argparse.Namespace) -> int:
    import cv2

    out = check_output_file(args.out, example="sample.png")
    ext = out.suffix.lower() if out.suffix else ".png"
    if ext not in SHOW_SUFFIXES:
        raise DataError(
            f"--out {out}: cannot write an image with suffix {ext!r}; use one of {', '.join(SHOW_SUFFIXES)}"
        )
    db_path = Path(args.db)
    db = load_database(db_path)
    n = len(db["img_name"])
    if not -n <= args.index < n:
        raise DataError(f"{db_path}: --index {args.index} out of range, the database has {n} rows")
    root = Path(args.root) if args.root else _default_root(db_path)
    name = str(db["img_name"][args.index])
    img_path = Path(image_path(root, name, find_image_prefix([name], root)))  # the authors' 'data/<dataset>/...'
    image = cv2.imread(str(img_path)) if img_path.is_file() else None
    if image is None:
        raise DataError(f"{db_path} row {args.index}: field 'img_name' {name!r}: no readable image at {img_path}")
    j2d = np.asarray(db["joints2D"][args.index]) if "joints2D" in db else np.zeros((49, 3))
    bbox = np.asarray(db["bbox"][args.index]) if "bbox" in db else None
    picture = draw_sample(image, j2d, bbox)
    ok, buf = cv2.imencode(ext, picture)
    if not ok:
        raise DataError(f"--out {out}: cannot encode an image with suffix {ext!r} (use .png or .jpg)")
    remove_stale_temporaries(out.parent)
    with atomic_path(out) as tmp:
        tmp.write_bytes(buf.tobytes())
    print(f"wrote {out} (row {args.index}: {name})")
    return 0
