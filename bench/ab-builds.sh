#!/usr/bin/env bash
# Interleaved A/B runs of the workloads against builds of the library at different commits, with different
# settings, and against the native peers, all in the same ReadyToRun harness: the way to tell whether a
# change to the library moved a number, on a machine whose speed drifts by tens of percent between minutes.
#
#   bench/ab-builds.sh [--reps N] VARIANT... -- WORKLOAD...
#
# VARIANT is name=what, where what is
#   a commit (main, HEAD, a hash, a branch), optionally followed by ,VAR=VALUE settings for its runs:
#       base=main   lib=HEAD   nobatch=HEAD,SLABALLOC_REMOTE_BATCH=0
#   or peer:mimalloc, peer:tcmalloc, peer:jemalloc, peer:glibc (a native allocator through NativeMemory,
#   preloaded; SlabAlloc's start-up warm-up off in those runs).
# WORKLOAD is a workload command line as the harness takes it, quoted:
#   'larson 0.4 8 1000 5000 100 4141 1'   'xmalloc 2 0.4 128'   'glibcthread 2 0.4'   'midlarge 1 1000000 2048 42'
#
# Each pass runs every workload once for every variant, in turn; passes repeat --reps times (default 5).
# Prints, per workload, each variant's median operations per second, its ratio to the first variant, its
# median RSS growth, peak RSS (the process's, the figure to hold against a peer's; a native allocator
# preloaded also serves the runtime before the baseline is read) and minor page faults, and the spread
# (min-max) of its runs; then the paired ratio:
# the median, over passes, of its run divided by the first variant's run of the same pass, with the
# middle half of those ratios. Runs of one pass are seconds apart, so the paired ratio follows the
# machine's drift where the ratio of medians does not; trust a difference only when the middle half
# of the paired ratios lies on one side of 1. Raw results: a CSV in
# artifacts/ab/. A commit's library is built once per commit into artifacts/ab/build-<hash>/ (a worktree
# of that commit, published ReadyToRun); the harness is the current checkout's.
set -euo pipefail
cd "$(dirname "$0")/.."

reps=5
variants=()
workloads=()
seen_separator=0
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) reps="$2"; shift 2 ;;
    --) seen_separator=1; shift ;;
    *) if [ "$seen_separator" = 0 ]; then variants+=("$1"); else workloads+=("$1"); fi; shift ;;
  esac
done
if [ ${#variants[@]} -lt 1 ] || [ ${#workloads[@]} -lt 1 ]; then
  sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi

mkdir -p artifacts/ab
dotnet build bench/SlabAlloc.Workloads/SlabAlloc.Workloads.csproj -c Release -nologo -v quiet >/dev/null
harness_src=bench/SlabAlloc.Workloads/bin/Release/net10.0

peer_library() {
  local soname
  case "$1" in
    mimalloc) soname=libmimalloc.so.2 ;;
    tcmalloc) soname=libtcmalloc_minimal.so.4 ;;
    jemalloc) soname=libjemalloc.so.2 ;;
    glibc) echo ""; return ;;
    *) echo "unknown peer: $1 (mimalloc, tcmalloc, jemalloc, glibc)" >&2; exit 2 ;;
  esac
  local path
  path="$(ldconfig -p | awk -v s="$soname" '$1 == s { print $NF; exit }')"
  if [ -z "$path" ]; then echo "$soname is not installed (apt-get install libmimalloc2.0 libtcmalloc-minimal4 libjemalloc2)" >&2; exit 2; fi
  echo "$path"
}

# A harness directory whose SlabAlloc.dll is the given commit's library, published ReadyToRun.
harness_for_commit() {
  local hash dir tree
  hash="$(git rev-parse --verify "$1^{commit}")"
  dir="artifacts/ab/build-$hash"
  if [ ! -f "$dir/harness/SlabAlloc.dll" ]; then
    tree="$(mktemp -d)"
    git worktree add -q --detach "$tree" "$hash"
    dotnet publish "$tree/src/SlabAlloc/SlabAlloc.csproj" -c Release -r linux-x64 --self-contained false \
      -p:PublishReadyToRun=true -o "$dir/library" -nologo -v quiet >/dev/null
    git worktree remove --force "$tree"
    rm -rf "$dir/harness"
    cp -r "$harness_src" "$dir/harness"
    cp "$dir/library/SlabAlloc.dll" "$dir/harness/"
  fi
  echo "$dir/harness"
}

# Resolve every variant to: name, harness directory, environment, extra arguments.
names=(); dirs=(); envs=(); extras=()
for v in "${variants[@]}"; do
  name="${v%%=*}"; what="${v#*=}"
  if [[ "$what" == peer:* ]]; then
    lib="$(peer_library "${what#peer:}")"
    dir="$(harness_for_commit HEAD)"
    env_part="SLABALLOC_WARMUP=0"
    [ -n "$lib" ] && env_part="$env_part LD_PRELOAD=$lib"
    extra="--allocator native"
  else
    commit="${what%%,*}"
    settings=""
    [[ "$what" == *,* ]] && settings="${what#*,}"
    dir="$(harness_for_commit "$commit")"
    env_part="${settings//,/ }"
    extra=""
  fi
  names+=("$name"); dirs+=("$dir"); envs+=("$env_part"); extras+=("$extra")
done

csv="artifacts/ab/ab-$(date +%Y%m%d-%H%M%S).csv"
echo "variant,workload,pass,ops_per_second,rss_growth_kib,minor_faults,peak_rss_kib" > "$csv"
field() { sed -n "s/.*\"$1\":\([0-9.eE+-]*\).*/\1/p"; }
for pass in $(seq 1 "$reps"); do
  for w in "${workloads[@]}"; do
    for i in "${!names[@]}"; do
      # shellcheck disable=SC2086 # the workload's arguments and the settings are meant to split
      json="$(env ${envs[$i]} dotnet "${dirs[$i]}/SlabAlloc.Workloads.dll" $w ${extras[$i]} --json 2>/dev/null | tail -1 || true)"
      ops="$(field opsPerSecond <<<"$json")"; rss="$(field rssGrowthKiB <<<"$json")"; faults="$(field minorPageFaults <<<"$json")"; peak="$(field peakRssKiB <<<"$json")"
      [ -n "$ops" ] || { echo "run failed: ${names[$i]} $w" >&2; continue; }
      echo "${names[$i]},$w,$pass,$ops,${rss:-0},${faults:-0},${peak:-0}" >> "$csv"
    done
  done
  echo "pass $pass of $reps done" >&2
done

echo "A/B of ${names[*]}, $reps passes, $(date -u '+%Y-%m-%d %H:%M UTC'); ratio to ${names[0]}; raw: $csv"
for w in "${workloads[@]}"; do
  echo
  echo "$w"
  printf '  %-12s %14s %7s %12s %10s %9s %22s  %s\n' variant "median ops/s" ratio "RSS growth" "peak RSS" faults "spread (M ops/s)" "paired (middle half)"
  first=""
  for name in "${names[@]}"; do
    stats="$(awk -F, -v n="$name" -v w="$w" '
      function median(a, n,   i, j, t) {
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
      $1 == n && $2 == w { k++; ops[k] = $4; rss[k] = $5; f[k] = $6; pk[k] = $7 }
      END { if (k == 0) exit; m = median(ops, k); printf "%f %f %f %f %f %f\n", m, median(rss, k), median(f, k), ops[1], ops[k], median(pk, k) }' "$csv")"
    [ -n "$stats" ] || { printf '  %-12s (no runs)\n' "$name"; continue; }
    read -r med rss faults lo hi peak <<<"$stats"
    [ -n "$first" ] || first="$med"
    # Per pass, this variant's run over the first variant's run; their median and quartiles (nearest rank).
    paired="$(awk -F, -v n="$name" -v b="${names[0]}" -v w="$w" '
      $2 == w && $1 == b { base[$3] = $4 }
      $2 == w && $1 == n { mine[$3] = $4 }
      END {
        for (p in mine) if ((p in base) && base[p] > 0) r[++k] = mine[p] / base[p]
        if (k == 0) { print "-"; exit }
        for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (r[j] < r[i]) { t = r[i]; r[i] = r[j]; r[j] = t }
        m = k % 2 ? r[(k + 1) / 2] : (r[k / 2] + r[k / 2 + 1]) / 2
        q1 = r[int((k + 3) / 4)]; q3 = r[k + 1 - int((k + 3) / 4)]
        printf "%.2f (%.2f-%.2f)", m, q1, q3 }' "$csv")"
    awk -v n="$name" -v m="$med" -v f="$first" -v r="$rss" -v k="$peak" -v p="$faults" -v lo="$lo" -v hi="$hi" -v pr="$paired" 'BEGIN {
      printf "  %-12s %14.0f %7.2f %8.1f MiB %6.1f MiB %9.0f %10.1f-%-10.1f  %s\n", n, m, m / f, r / 1024, k / 1024, p, lo / 1e6, hi / 1e6, pr }'
  done
done
