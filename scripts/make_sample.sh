#!/usr/bin/env bash
# The sample clip that `maed demo` runs on by default (issue 10): two Anny people, 120 frames (4 s at
# 30 fps, 640 x 480), rendered by `maed synth` with a seed that no training split uses (the shipped model
# is trained on `maed synth --seed 0`), and its ground truth as plain arrays:
#   samples/two_people.mp4       H.264
#   samples/two_people_gt.npz    frame ids, per person boxes, joints2D, joints3D, pose, shape, trans, valid,
#                                and the camera intrinsics (np.load(..., allow_pickle=False); maed.synth.video)
# Usage: scripts/make_sample.sh             (MAED=... names the maed command, default `maed`;
#                                            e.g. MAED="./run.sh maed" scripts/make_sample.sh)
# The seed was chosen among 1000-1039 by the people's projected boxes: both people entirely inside the
# frame in all 120 frames, their boxes overlapping by at most 15 % of the smaller one.
set -euo pipefail
cd "$(dirname "$0")/.."

SEED=1021
MAED=${MAED:-maed}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

$MAED synth --out "$work/run" --sequences 1 --frames 120 --people 2 --seed "$SEED" --video --workers 1 --quiet
mkdir -p samples
cp "$work/run/videos/seq_0000.mp4" samples/two_people.mp4
cp "$work/run/videos/seq_0000_gt.npz" samples/two_people_gt.npz
ls -l samples/two_people.mp4 samples/two_people_gt.npz
