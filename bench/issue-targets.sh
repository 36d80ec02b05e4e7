#!/usr/bin/env bash
# The performance issue's workloads with its exact arguments, side by side in one run:
#   Larson `5 8 1000 5000 100 4141 T` at T = 1, 2, 8 and mid-large `T 40000 2048 42` at T = 1, 2, 8,
# for SlabAlloc (lock-free pool), mimalloc and glibc through NativeMemory in the same harness.
# Runs are interleaved (slab, mimalloc, glibc, slab, ...); Larson runs `reps` times per cell, mid-large
# (40,000 cycles is a few milliseconds, so mostly start-up) 4 × reps times; the first run of each cell
# is dropped and the median is reported. Writes docs/results/issue-targets.md.
#   bench/issue-targets.sh [reps]          (default 3: about 3 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
reps="${1:-3}"
dotnet build bench/SlabAlloc.Bench/SlabAlloc.Bench.csproj -c Release -nologo -v quiet >/dev/null
dll=bench/SlabAlloc.Bench/bin/Release/net10.0/SlabAlloc.Bench.dll
mimalloc=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2
[ -f "$mimalloc" ] || { echo "mimalloc is not installed (apt-get install libmimalloc2.0)" >&2; exit 1; }

declare -A runs
run() { # $1 = cell key, $2 = allocator, rest = workload arguments
  local key="$1" who="$2"; shift 2
  local ops
  case "$who" in
    slab) ops=$(dotnet "$dll" "$@" --json) ;;
    mimalloc) ops=$(LD_PRELOAD="$mimalloc" dotnet "$dll" "$@" --allocator native --json) ;;
    glibc) ops=$(dotnet "$dll" "$@" --allocator native --json) ;;
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
echo >&2

out=docs/results/issue-targets.md
{
  echo "# The performance issue's workloads, with its exact arguments"
  echo
  echo "Produced by \`bench/issue-targets.sh $reps\` on $(date -u '+%Y-%m-%d %H:%M') UTC in $(( $(date +%s) - start )) s."
  echo "Machine: $(nproc) cores, .NET $(dotnet --list-runtimes | sed -n 's/^Microsoft.NETCore.App \([0-9.]*\).*/\1/p' | tail -1)."
  echo
  echo "Larson \`5 8 1000 5000 100 4141 T\` ($reps runs per cell) and mid-large \`T 40000 2048 42\` ($((4 * reps)) runs per cell),"
  echo "first run of each cell dropped, median in million operations per second. mimalloc and glibc are"
  echo "\`NativeMemory\` in the same harness (mimalloc through LD_PRELOAD); runs were interleaved."
  echo
  echo "| workload | T | SlabAlloc | mimalloc | glibc | SlabAlloc / mimalloc | SlabAlloc / glibc | target |"
  echo "|---|---:|---:|---:|---:|---:|---:|---|"
  for w in larson midlarge; do
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
  echo "touches of fresh memory, and for SlabAlloc the JIT compiling its slow paths) more than the steady"
  echo "state; \`./build.sh\` runs it with 1,000,000 cycles (\`docs/results/ab-latest.md\`)."
} > "$out"
cat "$out"
