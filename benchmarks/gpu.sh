#!/usr/bin/env bash
# Every GPU measurement of docs/SPEED.md in one go, on a bare GPU machine, in a few minutes:
#   inference of the stage-2 model at 32 clips x 16 frames: reference, fp32, TF32, bf16, bf16 channels-last,
#     bf16 compiled (frames/s, GFLOP/s, fraction of the card's peak, vertex difference to the reference);
#   training step at 8 x 16 frames in fp32 and bf16 autocast with peak memory, beside the training loader
#     (generated 1920x1080 JPEGs through the crop cache, worker processes, pinned memory);
#   the same training step with activation checkpointing (MODEL.ENCODER.GRAD_CHECKPOINT).
# Results: JSON files and a log in $OUT (default results/gpu), also printed.
#
#   benchmarks/gpu.sh                      # on the GPU machine, from the repository root
#   benchmarks/gpu.sh --device cpu --quick # dry run of the same code paths at tiny sizes (tests run this)
#
# The GPU machines have torch, timm, triton, onnx, onnxruntime, numpy, opencv and scikit-image but no network
# and not smplx (the SMPL layer) nor joblib. Carry them as wheels in .whl/ (ignored by git), built where PyPI
# is reachable:
#   pip download --no-deps --only-binary=:all: -d .whl smplx==0.1.28 joblib cloudpickle
# The script installs from .whl/ only what does not import, and never reaches the network.
set -euo pipefail
cd "$(dirname "$0")/.."

DEVICE=cuda
QUICK=0
while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE=$2; shift 2 ;;
        --quick) QUICK=1; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "gpu.sh: unknown option $1 (expected --device cuda|cpu, --quick)" >&2; exit 2 ;;
    esac
done
PYTHON=${PYTHON:-python3}
OUT=${OUT:-results/gpu}
mkdir -p "$OUT"
LOG="$OUT/gpu_sh.log"
: > "$LOG"
say() { echo "$@" | tee -a "$LOG"; }

# ---- dependencies: from the carried wheels, only when missing
need=()
for mod in smplx:smplx joblib:joblib cloudpickle:cloudpickle yaml:pyyaml; do
    "$PYTHON" -c "import ${mod%%:*}" 2>/dev/null || need+=("${mod##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    if [ ! -d .whl ]; then
        say "gpu.sh: missing Python packages: ${need[*]}; carry them as wheels in .whl/ (see the top of this script)"
        exit 2
    fi
    say "gpu.sh: installing ${need[*]} from .whl/"
    "$PYTHON" -m pip install --quiet --no-index --no-deps --find-links .whl "${need[@]}" 2>&1 | tee -a "$LOG"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

# ---- sizes
if [ "$QUICK" = 1 ]; then
    SMALL=(DATASET.WIDTH=64 DATASET.HEIGHT=64 MODEL.ENCODER.NUM_BLOCKS=1 MODEL.ENCODER.EMBED_DIM=64
           MODEL.ENCODER.NUM_HEADS=4 "MODEL.ENCODER.BACKBONE_LAYERS=[1,1,1]" MODEL.ENCODER.BACKBONE_WIDTH=32
           MODEL.DECODER.HIDDEN_DIM=128)
    INFER=(--batch 1 --seqlen 2 --iters 1 --warmup 0)
    TRAIN=(--batch 1 --seqlen 2 --iters 1 --warmup 0 --loader-frames 8 --frame-size 160x120 --loader-batches 1
           --workers 1)
else
    SMALL=()
    INFER=(--batch 32 --seqlen 16 --iters 5 --warmup 2)
    TRAIN=(--batch 8 --seqlen 16 --iters 5 --warmup 2 --loader-batches 16)
fi
if [ "$DEVICE" = cuda ]; then
    PRECISIONS=fp32,tf32,bf16
    EXTRA=(--channels-last --compile)
    command -v nvidia-smi >/dev/null && nvidia-smi | tee "$OUT/nvidia-smi.txt" >> "$LOG"
else
    PRECISIONS=fp32,bf16
    EXTRA=(--channels-last)  # compiling on a CPU takes minutes: not part of the dry run
fi
"$PYTHON" - <<'EOF' | tee -a "$LOG"
import platform, torch
print(f"python {platform.python_version()}, torch {torch.__version__}, cuda available: {torch.cuda.is_available()}")
EOF

run() {
    say ""
    say "\$ maed bench $*"
    "$PYTHON" -m maed bench "$@" 2>&1 | grep -v "^WARNING: You are using a SMPL model" | tee -a "$LOG"
}
T0=$(date +%s)
run --device "$DEVICE" --precisions "$PRECISIONS" "${EXTRA[@]}" "${INFER[@]}" --json "$OUT/inference.json" "${SMALL[@]}"
run --train --device "$DEVICE" --precisions "$PRECISIONS" "${TRAIN[@]}" --json "$OUT/train.json" "${SMALL[@]}"
run --train --grad-checkpoint --device "$DEVICE" --precisions bf16 "${TRAIN[@]}" --loader-batches 0 \
    --json "$OUT/train_grad_checkpoint.json" "${SMALL[@]}"
say ""
say "gpu.sh: done in $(( $(date +%s) - T0 )) s; results in $OUT"
