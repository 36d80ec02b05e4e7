#!/usr/bin/env bash
# The interprocess suite with its full defaults: pingpong at 64 B, 256 B, 4 KiB, 64 KiB and 1 MiB
# (1,000,000 round trips up to 4 KiB, 100,000 at 64 KiB, 10,000 at 1 MiB) and bandwidth over 16 MiB in
# chunks of 1 KiB to 16 MiB, for pipe, uds, tcp, mutex-ring, mutex-ring-spin and slab-channel; 11 runs of
# each configuration, interleaved, the first dropped, then one pass with perf attached to count system calls.
# Each run warms up for at least 1 s first (--warmup), so that the JIT has settled in both processes.
# Writes docs/results/ipc-pingpong.md, ipc-bandwidth.md, ipc-runs.csv and the two charts.
#
# Expected duration on a 2-core machine: about 2 h (a pass of every configuration takes about 10 minutes,
# most of it the socket and pipe round trips of up to 4 KiB at ~40 us each; 12 passes). Leave the machine
# otherwise idle: both cores belong to the two processes. Arguments are passed on, e.g. --reps 5 --scale 0.2
# for a run of about 20 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
exec ./build.sh ipc suite "$@"
