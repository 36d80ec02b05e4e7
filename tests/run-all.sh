#!/usr/bin/env bash
# The whole test pipeline behind `./build.sh test` (which builds Release first):
#   1. the test suite with the lock-free pool;
#   2. the test suite again with the mutex pool, lock statistics and checked mode on, so both pools pass
#      the same contract and stress tests;
#   3. the test suite once more on a Debug build, where the allocator's invariant checks are compiled in
#      and run at every hand-over (a violated one ends the test process, which fails the pass);
#   4. the test suite through the portable platform layer that systems other than Linux get
#      (SLABALLOC_PORTABLE_REGIONS=1: regions from NativeMemory.AlignedAlloc, no decommit, no stack map);
#   5. the tests of remote frees, hand-off, races and the memory pool with the remote-free batch
#      off (SLABALLOC_REMOTE_BATCH=0; 32 by default), the path every remote free took before the batch;
#   6. the NuGet package, and two samples that consume the package (not the project): the README's
#      examples, and two processes sharing a heap;
#   7. 30 seconds of the soak: mixed workload, thread churn, stamped blocks, exact accounting, bounded RSS
#      (an hour: ./build.sh soak --seconds 3600).
# Every test but the long Stress category (run those with: ./build.sh test --filter Category=Stress).
# Arguments go to `dotnet test`. Ends with one plain line that any CI reads: "tests: N passed, N failed",
# after the names and messages of the tests that failed.
set -uo pipefail
cd "$(dirname "$0")/.."

results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT
filter=(--filter "Category!=Stress")
for a in "$@"; do [ "$a" = "--filter" ] && filter=(); done
status=0
passed=0
failed=0

# $1 = pass name, $2 = configuration (Release or Debug), rest = environment assignments. The console log is kept for the failure summary; the
# trx file for the counts.
run_suite() {
  local name="$1" configuration="$2"; shift 2
  echo "=== test pass: $name ($configuration) ==="
  env "$@" dotnet test tests/SlabAlloc.Tests/SlabAlloc.Tests.csproj -c "$configuration" --no-build -nologo \
    "${filter[@]}" --logger "console;verbosity=normal" --logger "trx;LogFileName=$name.trx" \
    --results-directory "$results" "${args[@]}" 2>&1 | tee "$results/$name.log" || status=1
  local trx="$results/$name.trx" counters p f
  if [ ! -f "$trx" ]; then failed=$((failed + 1)); status=1; return; fi # no results at all: the run did not happen
  counters="$(grep -o '<Counters [^>]*>' "$trx" || true)"
  p="$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters")"
  f="$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters")"
  [ -n "$p" ] || f=$(( ${f:-0} + 1 )) # a results file without counters: count the pass as failed
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  [ "${f:-0}" = 0 ] || status=1
}

# The name of every failed test of a pass, with the first lines of its message, for a CI log's tail.
failures_of() {
  awk -v pass="$1" '
    /^  Failed / { print "FAILED [" pass "] " substr($0, 10); grab = 1; n = 0; next }
    grab && /^  Error Message:/ { next }
    grab && /^  Stack Trace:/ { grab = 0; next }
    grab && n < 6 { print "    " $0; n++ }' "$results/$1.log"
}

args=("$@")
run_suite lockfree Release SLABALLOC_POOL=lockfree
# The shared heap (tests in Interprocess/) uses neither the pool, nor checked mode, nor the platform layer's
# flags: its tests, with their child processes, run in the lock-free and Debug passes only.
saved_filter=("${filter[@]}")
[ ${#filter[@]} -gt 0 ] && filter=(--filter "Category!=Stress&FullyQualifiedName!~SlabAlloc.Tests.Interprocess")
run_suite mutex Release SLABALLOC_POOL=mutex SLABALLOC_LOCK_STATS=1 SLABALLOC_CHECKED=1
filter=("${saved_filter[@]}")
if dotnet build tests/SlabAlloc.Tests/SlabAlloc.Tests.csproj -c Debug -nologo -v quiet; then
  run_suite debug Debug SLABALLOC_POOL=lockfree
else
  echo "FAILED [debug] the Debug build"; failed=$((failed + 1)); status=1
fi
[ ${#filter[@]} -gt 0 ] && filter=(--filter "Category!=Stress&FullyQualifiedName!~SlabAlloc.Tests.Interprocess")
run_suite portable Release SLABALLOC_PORTABLE_REGIONS=1
filter=("${saved_filter[@]}")
# The remote-free batch (on by default): the tests of remote frees, hand-off, races and the pool with it off.
saved_filter=("${filter[@]}")
[ ${#filter[@]} -gt 0 ] && filter=(--filter "Category!=Stress&(FullyQualifiedName~RemoteFree|FullyQualifiedName~HandOff|FullyQualifiedName~ThreadChurn|FullyQualifiedName~AllocatorModel|FullyQualifiedName~SlabMemoryPool|FullyQualifiedName~Echo|FullyQualifiedName~BadPointer|FullyQualifiedName~SlabMemoryContract)")
run_suite batch Release SLABALLOC_REMOTE_BATCH=0
filter=("${saved_filter[@]}")

echo "=== package and sample ==="
rm -rf artifacts/packages artifacts/sample-packages
if dotnet pack src/SlabAlloc/SlabAlloc.csproj -c Release -nologo -v quiet -o artifacts/packages &&
   dotnet restore samples/SlabAlloc.Sample/SlabAlloc.Sample.csproj --packages artifacts/sample-packages -v quiet &&
   dotnet run --project samples/SlabAlloc.Sample/SlabAlloc.Sample.csproj -c Release --no-restore &&
   dotnet restore samples/SlabAlloc.SharedSample/SlabAlloc.SharedSample.csproj --packages artifacts/sample-packages -v quiet &&
   dotnet run --project samples/SlabAlloc.SharedSample/SlabAlloc.SharedSample.csproj -c Release --no-restore; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); status=1
fi

echo "=== soak (30 s) ==="
if dotnet tools/SlabAlloc.Soak/bin/Release/net10.0/SlabAlloc.Soak.dll soak --seconds 30; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); status=1
fi

summary="$(for pass in lockfree mutex debug portable batch; do [ -f "$results/$pass.log" ] && failures_of "$pass"; done)"
[ -n "$summary" ] && printf '=== failed tests ===\n%s\n' "$summary"
echo "tests: $passed passed, $failed failed"
exit "$status"
