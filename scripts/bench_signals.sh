#!/bin/bash
# Stop-signal trials (docs/CLUSTER.md): SIGTERM, SIGINT and SIGUSR1 to `teddy pretrain`
# at random steps and, with a checkpoint every step, a second signal at a random
# moment after the first (most land in or next to a save); every committed checkpoint
# must verify and every resumed run must equal the uninterrupted one bit for bit.
# Then mpirun -np 2: SIGUSR1 to mpirun and SIGTERM to rank 1 alone. Prints the time
# from signal to exit of each trial.
#   scripts/bench_signals.sh [TRIALS]   (default 20; needs a build: build/test_train_run_safety)
set -euo pipefail
cd "$(dirname "$0")/.."
trials="${1:-20}"
TEDDY_SIGNAL_TRIALS="$trials" build/test_train_run_safety --gtest_filter='RunSafety.EachStop*:RunSafety.ASecondSignal*'
build/test_distributed_pretrain_dist --gtest_filter='*AStopSignal*'
