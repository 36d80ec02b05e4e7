#!/usr/bin/env bash
# SlabAlloc build entry point.
#   ./build.sh          restore, build Release, run the main job (the self-check)
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
    dotnet bench/SlabAlloc.Bench/bin/Release/net10.0/SlabAlloc.Bench.dll selfcheck "$@"
    ;;
  test)
    # Every test but the long Stress category (run those with: ./build.sh test --filter Category=Stress).
    dotnet build SlabAlloc.sln -c Release -nologo -v quiet
    results="$(mktemp -d)"
    filter=(--filter "Category!=Stress")
    for a in "$@"; do [ "$a" = "--filter" ] && filter=(); done
    status=0
    dotnet test tests/SlabAlloc.Tests/SlabAlloc.Tests.csproj -c Release --no-build -nologo \
      "${filter[@]}" --logger "console;verbosity=normal" --logger "trx;LogFileName=tests.trx" \
      --results-directory "$results" "$@" || status=$?
    # One plain closing line that any CI reads: "N passed, N failed".
    counters="$(grep -o '<Counters [^>]*>' "$results/tests.trx" 2>/dev/null || true)"
    passed="$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters")"
    failed="$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters")"
    echo "tests: ${passed:-0} passed, ${failed:-0} failed"
    rm -rf "$results"
    exit "$status"
    ;;
  *)
    echo "usage: ./build.sh [test]" >&2
    exit 2
    ;;
esac
