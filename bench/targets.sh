#!/usr/bin/env bash
# The performance targets' workloads with their exact arguments, side by side in one run:
#   Larson `5 8 1000 5000 100 4141 T` at T = 1, 2, 8 and mid-large `T 40000 2048 42` at T = 1, 2, 8,
# for SlabAlloc (lock-free pool), mimalloc and glibc through NativeMemory in the same harness.
# Mid-large also runs with 10,000,000 cycles (the steady state; 40,000 cycles is a few milliseconds).
# The harness loads SlabAlloc in every run; the native allocators' runs turn its start-up warm-up off
# (SLABALLOC_WARMUP=0), so they do not pay for SlabAlloc's start-up work.
# Runs are interleaved (slab, mimalloc, glibc, slab, ...); Larson and steady mid-large run `reps` times
# per cell, mid-large at 40,000 cycles 4 × reps times; the first run of each cell is dropped and the
# median is reported. Writes docs/results/targets.md.
#   bench/targets.sh [reps]          (default 3: about 4 minutes)
#   bench/targets.sh [reps] r2r      (the harness and SlabAlloc published ReadyToRun, as an
#                                           application would ship; writes docs/results/targets-r2r.md)
set -euo pipefail
cd "$(dirname "$0")/.."
reps="${1:-3}"
mode="${2:-jit}"
if [ "$mode" = r2r ]; then
  dll_dir="$(mktemp -d)"
  trap 'rm -rf "$dll_dir"' EXIT
  dotnet publish bench/SlabAlloc.Workloads/SlabAlloc.Workloads.csproj -c Release -r linux-x64 --self-contained false \
    -p:PublishReadyToRun=true -o "$dll_dir" -nologo -v quiet >/dev/null
  dll="$dll_dir/SlabAlloc.Workloads.dll"
  out=docs/results/targets-r2r.md
else
  dotnet build bench/SlabAlloc.Workloads/SlabAlloc.Workloads.csproj -c Release -nologo -v quiet >/dev/null
  dll=bench/SlabAlloc.Workloads/bin/Release/net10.0/SlabAlloc.Workloads.dll
  out=docs/results/targets.md
fi
mimalloc=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2
[ -f "$mimalloc" ] || { echo "mimalloc is not installed (apt-get install libmimalloc2.0)" >&2; exit 1; }

declare -A runs
run() { # $1 = cell key, $2 = allocator, rest = workload arguments
  local key="$1" who="$2"; shift 2
  local ops
  case "$who" in
    slab) ops=$(dotnet "$dll" "$@" --json) ;;
    mimalloc) ops=$(SLABALLOC_WARMUP=0 LD_PRELOAD="$mimalloc" dotnet "$dll" "$@" --allocator native --json) ;;
    glibc) ops=$(SLABALLOC_WARMUP=0 dotnet "$dll" "$@" --allocator native --json) ;;
  esac
  runs["$key|$who"]+="$(sed -n 's/.*"opsPerSecond":\([0-9.]*\).*/\1/p' <<<"$ops") "
}
median() { tr ' ' '\n' | grep -v '^$' | tail -n +2 | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

start=$(date +%s)
for ((r = 0; r < reps; r++)); do
  for t in 1 2 8; do
    for who in slab mimalloc glibc; do
      printf '\rlarson T=%d %-8s rep %d/%d   ' "$t" "$who" $((r + 1)) "$reps" >&2
      run "larson|$t" "$who" larson 5 8 1000 5000 100 4141 "$t"
    done
  done
done
for ((r = 0; r < 4 * reps; r++)); do
  for t in 1 2 8; do
    for who in slab mimalloc glibc; do
      printf '\rmidlarge T=%d %-8s rep %d/%d   ' "$t" "$who" $((r + 1)) $((4 * reps)) >&2
      run "midlarge|$t" "$who" midlarge "$t" 40000 2048 42
    done
  done
done
for ((r = 0; r < reps; r++)); do
  for t in 1 2 8; do
    for who in slab mimalloc glibc; do
      printf '\rmidlarge-10M T=%d %-8s rep %d/%d   ' "$t" "$who" $((r + 1)) "$reps" >&2
      run "midlarge-10M|$t" "$who" midlarge "$t" 10000000 2048 42
    done
  done
done
echo >&2

{
  echo "# The performance targets' workloads, with their exact arguments"
  echo
  echo "Produced by \`bench/targets.sh $reps${2:+ $2}\` on $(date -u '+%Y-%m-%d %H:%M') UTC in $(( $(date +%s) - start )) s."
  echo "Machine: $(nproc) cores, .NET $(dotnet --list-runtimes | sed -n 's/^Microsoft.NETCore.App \([0-9.]*\).*/\1/p' | tail -1)."
  echo
  echo "Larson \`5 8 1000 5000 100 4141 T\` ($reps runs per cell), mid-large \`T 40000 2048 42\` ($((4 * reps)) runs per cell) and"
  echo "mid-large \`T 10000000 2048 42\` ($reps runs per cell, row midlarge-10M); the harness is $([ "$mode" = r2r ] && echo "published ReadyToRun (SlabAlloc with it)" || echo "JIT-compiled (the default build)"),"
  echo "first run of each cell dropped, median in million operations per second. mimalloc and glibc are"
  echo "\`NativeMemory\` in the same harness (mimalloc through LD_PRELOAD); runs were interleaved."
  echo
  echo "| workload | T | SlabAlloc | mimalloc | glibc | SlabAlloc / mimalloc | SlabAlloc / glibc | target |"
  echo "|---|---:|---:|---:|---:|---:|---:|---|"
  for w in larson midlarge midlarge-10M; do
    for t in 1 2 8; do
      s=$(median <<<"${runs[$w|$t|slab]}"); m=$(median <<<"${runs[$w|$t|mimalloc]}"); g=$(median <<<"${runs[$w|$t|glibc]}")
      if [ "$w" = larson ]; then
        if [ "$t" = 8 ]; then target="> 1 x mimalloc"; else target=">= 1.25 x mimalloc, >= 2 x glibc"; fi
      else
        target=">= 1 x mimalloc, >= 1.5 x glibc"
      fi
      awk -v w="$w" -v t="$t" -v s="$s" -v m="$m" -v g="$g" -v target="$target" \
        'BEGIN { printf "| %s | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %s |\n", w, t, s/1e6, m/1e6, g/1e6, s/m, s/g, target }'
    done
  done
  echo
  echo "Mid-large at 40,000 cycles lasts a few milliseconds per thread: it measures start-up (first"
  echo "touches of fresh memory, and for SlabAlloc the JIT compiling its slow paths: \`SlabAlloc.Workloads firstuse\`,"
  echo "\`docs/results/firstuse.md\`) more than the steady state, which the midlarge-10M row measures."
} > "$out"
cat "$out"
