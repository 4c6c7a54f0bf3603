#!/bin/bash
#SBATCH --job-name=maed-train
#SBATCH --output=slurm-%x-%j.out
#SBATCH --signal=USR1@120
#
# MAED training under Slurm: one task per GPU, started by srun. `python -m maed train` maps the SLURM_*
# variables to torch's (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT; maed/train/distributed.py).
#
#   sbatch scripts/slurm_train.sh NODES GPUS_PER_NODE CONFIG [maed train options] [KEY=VALUE ...]
#   bash   scripts/slurm_train.sh NODES GPUS_PER_NODE CONFIG [...]   # submits itself with sbatch
#
#   e.g. sbatch scripts/slurm_train.sh 2 4 stage2 --pretrained STAGE1_RUN_DIR/checkpoints/last.pt
#        sbatch scripts/slurm_train.sh 2 4 --resume RUN_DIR        # CONFIG may be --resume RUN_DIR
#
# A job whose allocation does not match NODES x GPUS_PER_NODE (a plain `sbatch script 2 4 ...` gets one
# task) resubmits itself once with --nodes/--ntasks-per-node/--gres and ends. Partition, time limit,
# account: sbatch options on the command line or SBATCH_PARTITION / SBATCH_TIMELIMIT / SBATCH_ACCOUNT.
# Slurm sends SIGUSR1 two minutes before the time limit; training then saves last.pt and stops with exit
# status 143 (so the job ends as failed, not as finished), and
# `sbatch scripts/slurm_train.sh N G --resume RUN_DIR` continues it.
# Environment: PYTHON (default python), MASTER_PORT (default derived from the job id).
set -euo pipefail

usage() {
    sed -n '8,13p' "$0" | sed 's/^# \{0,1\}//' >&2
}

if [ $# -lt 3 ]; then
    usage
    exit 2
fi
NODES=$1
GPUS=$2
shift 2
case "$NODES$GPUS" in
    *[!0-9]*) echo "slurm_train.sh: NODES and GPUS_PER_NODE must be integers, got '$NODES' '$GPUS'" >&2; exit 2 ;;
esac
if [ "$1" = "--resume" ]; then
    TRAIN_ARGS=("$@")
else
    TRAIN_ARGS=(--config "$1" "${@:2}")
fi

fits_allocation() {
    [ "${SLURM_JOB_NUM_NODES:-0}" = "$NODES" ] || return 1
    [ "${SLURM_NTASKS_PER_NODE:-}" = "$GPUS" ] && return 0
    [ "${SLURM_NTASKS:-0}" = "$((NODES * GPUS))" ]
}

resubmit() {
    sbatch --nodes="$NODES" --ntasks-per-node="$GPUS" --gres="gpu:$GPUS" \
        --export=ALL,MAED_SLURM_RESUBMITTED=1 "$0" "$NODES" "$GPUS" "$@"
}

if [ -z "${SLURM_JOB_ID:-}" ]; then
    resubmit "$@"  # outside Slurm: submit this script with the right resources
    exit 0
fi
if ! fits_allocation; then
    if [ -n "${MAED_SLURM_RESUBMITTED:-}" ]; then
        echo "slurm_train.sh: the allocation (${SLURM_JOB_NUM_NODES:-?} nodes, ${SLURM_NTASKS:-?} tasks) does not" \
             "match $NODES nodes x $GPUS GPUs" >&2
        exit 1
    fi
    echo "slurm_train.sh: allocation does not match $NODES x $GPUS; resubmitting with those resources" >&2
    resubmit "$@"
    exit 0
fi

if [ -z "${MASTER_ADDR:-}" ] && command -v scontrol >/dev/null 2>&1; then
    MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
    export MASTER_ADDR
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}

srun --nodes="$NODES" --ntasks-per-node="$GPUS" --kill-on-bad-exit=1 \
    "${PYTHON:-python}" -m maed train "${TRAIN_ARGS[@]}"
