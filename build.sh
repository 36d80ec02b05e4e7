#!/usr/bin/env bash
# SlabAlloc build entry point.
#   ./build.sh          restore, build Release, run the main job: the A/B comparison (about 3 minutes)
#                       (./build.sh run --quick for a short one; ./build.sh selfcheck for the self-check)
#   ./build.sh test     restore, build, run every test
set -euo pipefail
cd "$(dirname "$0")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

if ! command -v dotnet >/dev/null 2>&1; then
  echo "build.sh: the .NET 10 SDK is required (dotnet was not found on PATH)" >&2
  exit 1
fi

cmd="${1:-run}"
[ $# -gt 0 ] && shift
case "$cmd" in
  run)
    dotnet build SlabAlloc.sln -c Release -nologo -v quiet
    dotnet bench/SlabAlloc.Bench/bin/Release/net10.0/SlabAlloc.Bench.dll compare "$@"
    ;;
  selfcheck|larson|midlarge|soak|hotthread|pairs|mixed|fill|threadcycles|firstuse)
    dotnet build SlabAlloc.sln -c Release -nologo -v quiet
    dotnet bench/SlabAlloc.Bench/bin/Release/net10.0/SlabAlloc.Bench.dll "$cmd" "$@"
    ;;
  test)
    # The whole suite twice: the default configuration (lock-free pool), then the mutex pool with
    # lock statistics and checked mode on, so both pools pass the same contract and stress tests.
    # Every test but the long Stress category (run those with: ./build.sh test --filter Category=Stress).
    dotnet build SlabAlloc.sln -c Release -nologo -v quiet
    results="$(mktemp -d)"
    filter=(--filter "Category!=Stress")
    for a in "$@"; do [ "$a" = "--filter" ] && filter=(); done
    status=0
    run_suite() { # $1 = name, rest = environment assignments
      local name="$1"; shift
      echo "=== test pass: $name ==="
      env "$@" dotnet test tests/SlabAlloc.Tests/SlabAlloc.Tests.csproj -c Release --no-build -nologo \
        "${filter[@]}" --logger "console;verbosity=normal" --logger "trx;LogFileName=$name.trx" \
        --results-directory "$results" "${args[@]}" || status=$?
    }
    args=("$@")
    run_suite lockfree SLABALLOC_POOL=lockfree
    run_suite mutex SLABALLOC_POOL=mutex SLABALLOC_LOCK_STATS=1 SLABALLOC_CHECKED=1
    # The NuGet package, and a sample that consumes the package (not the project) and runs the README's examples.
    echo "=== package and sample ==="
    sample=failed
    rm -rf artifacts/packages artifacts/sample-packages
    if dotnet pack src/SlabAlloc/SlabAlloc.csproj -c Release -nologo -v quiet -o artifacts/packages &&
       dotnet restore samples/SlabAlloc.Sample/SlabAlloc.Sample.csproj --packages artifacts/sample-packages -v quiet &&
       dotnet run --project samples/SlabAlloc.Sample/SlabAlloc.Sample.csproj -c Release --no-restore; then
      sample=passed
    else
      status=1
    fi
    # One plain closing line that any CI reads: "N passed, N failed".
    passed=0; failed=0
    for trx in "$results"/*.trx; do
      [ -f "$trx" ] || { failed=$((failed + 1)); continue; } # no results at all: the test runs did not happen
      counters="$(grep -o '<Counters [^>]*>' "$trx" || true)"
      p="$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters")"
      f="$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters")"
      [ -n "$p" ] || f=$(( ${f:-0} + 1 )) # a results file without counters: count the pass as failed
      passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
    done
    if [ "$sample" = passed ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    # Name every failed test, with the first lines of its message, where a CI log's tail shows it.
    failures="$(for trx in "$results"/*.trx; do
      [ -f "$trx" ] || continue
      python3 - "$trx" <<'PY' 2>/dev/null || grep -o 'testName="[^"]*" [^>]*outcome="Failed"' "$trx" || true
import sys, xml.etree.ElementTree as ET
ns = {"t": "http://microsoft.com/schemas/VisualStudio/TeamTest/2010"}
name = sys.argv[1].rsplit("/", 1)[-1].removesuffix(".trx")
for r in ET.parse(sys.argv[1]).getroot().iterfind(".//t:UnitTestResult", ns):
    if r.get("outcome") == "Failed":
        message = r.findtext(".//t:Message", "", ns).strip().splitlines()[:6]
        print(f"FAILED [{name}] {r.get('testName')}")
        for line in message:
            print("    " + line)
PY
    done)"
    # 30 seconds of the soak: mixed workload, thread churn, stamped blocks, exact accounting, bounded RSS.
    # (An hour: ./build.sh soak --seconds 3600.)
    echo "=== soak (30 s) ==="
    if dotnet bench/SlabAlloc.Bench/bin/Release/net10.0/SlabAlloc.Bench.dll soak --seconds 30; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1)); status=1
    fi
    rm -rf "$results"
    [ -n "$failures" ] && printf '=== failed tests ===\n%s\n' "$failures"
    echo "tests: $passed passed, $failed failed"
    exit "$status"
    ;;
  *)
    echo "usage: ./build.sh [run [compare options] | test [dotnet test options] | selfcheck | larson ... | midlarge ...]" >&2
    exit 2
    ;;
esac
