#!/usr/bin/env bash
# SlabMemoryPool against MemoryPool<byte>.Shared under System.IO.Pipelines: the loopback TCP echo of
# `SlabAlloc.Workloads echo` with 1 and 8 clients, the two pools interleaved (which goes first alternates),
# `reps` runs of `seconds` seconds each, every run a fresh process. Writes the medians, their spread
# (min-max) and the ratio slab / shared to docs/results/pipelines-echo.md.
#   bench/pipelines-echo.sh [reps] [seconds] [sizes]   (default 5 runs of 10 s, sizes 64-65536: about 4 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
reps="${1:-5}"
seconds="${2:-10}"
sizes="${3:-64-65536}"
dotnet build bench/SlabAlloc.Workloads/SlabAlloc.Workloads.csproj -c Release -nologo -v quiet >/dev/null
dll=bench/SlabAlloc.Workloads/bin/Release/net10.0/SlabAlloc.Workloads.dll
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
load="$(cut -d' ' -f1-3 /proc/loadavg)"
clients=(1 8)

for ((r = 0; r < reps; r++)); do
  pools=(slab shared)
  [ $((r % 2)) = 1 ] && pools=(shared slab)
  for c in "${clients[@]}"; do
    for p in "${pools[@]}"; do
      printf '\recho: %s clients, %s pool, run %d/%d   ' "$c" "$p" $((r + 1)) "$reps" >&2
      dotnet "$dll" echo "$c" "$seconds" --pool "$p" --sizes "$sizes" --json >> "$work/$c-$p"
    done
  done
done
echo >&2

# "median min max" of a numeric JSON field over the runs of one file, divided by $3.
stats() { # $1 = field, $2 = file, $3 = divisor
  sed -n "s/.*\"$1\":\([-0-9.eE+]*\).*/\1/p" "$2" | awk -v d="$3" '{ print $1 / d }' | sort -g |
    awk '{ a[NR] = $1 } END { printf "%s %s %s\n", (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2), a[1], a[NR] }'
}

# One table row: $1 = clients, $2 = label, $3 = field, $4 = divisor, $5 = decimals.
row() {
  local s h
  read -r -a s <<<"$(stats "$3" "$work/$1-slab" "$4")"
  read -r -a h <<<"$(stats "$3" "$work/$1-shared" "$4")"
  awk -v c="$1" -v l="$2" -v p="$5" -v sm="${s[0]}" -v sl="${s[1]}" -v sh="${s[2]}" -v hm="${h[0]}" -v hl="${h[1]}" -v hh="${h[2]}" 'BEGIN {
    f = "%." p "f"
    printf "| %s | %s | " f " (" f "-" f ") | " f " (" f "-" f ") | %s |\n", c, l, sm, sl, sh, hm, hl, hh, (hm == 0 ? "-" : sprintf("%.2f", sm / hm)) }'
}

leaked="$(cat "$work"/*-slab "$work"/*-shared | sed -n 's/.*"slabBlocksInUse":\([-0-9]*\).*/\1/p' | sort -u | tr '\n' ' ')"
out=docs/results/pipelines-echo.md
{
  echo "# System.IO.Pipelines echo: SlabMemoryPool against MemoryPool<byte>.Shared"
  echo
  echo "Produced by \`bench/pipelines-echo.sh $reps $seconds $sizes\` on $(date -u '+%Y-%m-%d %H:%M') UTC: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'),"
  echo "$(nproc) cores, .NET $(dotnet --list-runtimes | sed -n 's/^Microsoft.NETCore.App \([0-9.]*\).*/\1/p' | tail -1), load average $load at the start."
  echo "Each run is a fresh process: \`SlabAlloc.Workloads echo CLIENTS $seconds --pool slab|shared --sizes $sizes --json\`,"
  echo "a TCP echo server on 127.0.0.1 (stream pipe reader, a \`Pipe\`, stream pipe writer) and CLIENTS clients that"
  echo "send one length-prefixed message at a time (payload sizes log-uniform $sizes bytes, seeded) and check every"
  echo "byte of each echo; every buffer of the server and the clients comes from the pool under test. With"
  echo "\`MemoryPool<byte>.Shared\` the pipes rent arrays from \`ArrayPool<byte>.Shared\` directly, with no owner object"
  echo "per buffer: the default buffers of System.IO.Pipelines. Runs interleaved, $reps per cell; median (min-max)."
  echo "Throughput is payload echoed; latency is one message's round trip; managed bytes are the whole process's"
  echo "allocations over the timed part, per message; RSS is the process's peak (the warm-up's included) and its"
  echo "resident memory after every connection closed."
  echo
  echo "| clients | figure | slab | shared | slab / shared |"
  echo "|---:|---|---:|---:|---:|"
  for c in "${clients[@]}"; do
    row "$c" "messages/s" messagesPerSecond 1 0
    row "$c" "MB/s" megabytesPerSecond 1 1
    row "$c" "round trip p50 (us)" p50Us 1 1
    row "$c" "round trip p99 (us)" p99Us 1 1
    row "$c" "round trip p99.9 (us)" p999Us 1 1
    row "$c" "managed bytes / message" managedBytesPerMessage 1 1
    row "$c" "gen0 collections" gen0Collections 1 0
    row "$c" "gen2 collections" gen2Collections 1 0
    row "$c" "peak RSS (MiB)" peakRssKiB 1024 1
    row "$c" "final RSS (MiB)" finalRssKiB 1024 1
  done
  echo
  echo "SlabAlloc blocks in use after every connection closed, less those after the warm-up, over all runs: $leaked(0: no buffer leaked)."
} > "$out"
cat "$out"
