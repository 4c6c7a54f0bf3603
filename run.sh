#!/usr/bin/env bash
# The project's entry point on a fresh clone: installs what it needs into .venv, then runs.
#   ./run.sh bench [maed bench options]   inference benchmark on a generated clip (no data needed)
#   ./run.sh test  [pytest options]       lint + the test suite (CPU)
#   ./run.sh demo  [INPUT] [options]      meshes from a video (default: the sample clip, the shipped model)
#   ./run.sh maed  ARGS...                any maed command inside the environment
# Environment: PYTHON (interpreter for the venv, default python3), MAED_VENV (default .venv).
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=${MAED_VENV:-.venv}

setup() {
    if [ ! -x "$VENV/bin/python" ]; then
        echo "run.sh: creating $VENV" >&2
        "$PYTHON" -m venv --system-site-packages "$VENV"
    fi
    local py="$VENV/bin/python"
    local want
    want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
    if [ "$(cat "$VENV/.maed-installed" 2>/dev/null)" != "$want" ]; then
        if ! "$py" -c "import torch, torchvision" 2>/dev/null; then
            echo "run.sh: installing torch 2.14.1 / torchvision 0.29.1" >&2
            "$py" -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
        fi
        echo "run.sh: installing maed and its test dependencies into $VENV" >&2
        "$py" -m pip install -q -e ".[test]"
        echo "$want" > "$VENV/.maed-installed"
    fi
}

cmd=${1:-help}
[ $# -gt 0 ] && shift
case "$cmd" in
    bench)
        setup
        exec "$VENV/bin/maed" bench "$@" ;;
    test)
        setup
        "$VENV/bin/python" -m ruff check src tests benchmarks
        "$VENV/bin/python" -m ruff format --check src tests benchmarks
        exec "$VENV/bin/python" -m pytest -q "$@" ;;
    demo)
        setup
        exec "$VENV/bin/maed" demo "$@" ;;
    maed)
        setup
        exec "$VENV/bin/maed" "$@" ;;
    *)
        sed -n '2,7p' "$0"; exit 2 ;;
esac
