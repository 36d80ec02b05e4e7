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
    dotnet build SlabAlloc.sln -c Release -nologo -v quiet
    dotnet test tests/SlabAlloc.Tests/SlabAlloc.Tests.csproj -c Release --no-build -nologo \
      --logger "console;verbosity=normal" "$@"
    ;;
  *)
    echo "usage: ./build.sh [test]" >&2
    exit 2
    ;;
esac
