#!/usr/bin/env bash
# SlabAlloc build entry point.
#   ./build.sh          restore, build Release, run the main job: the A/B comparison (a few minutes)
#                       (./build.sh run --quick for a short one; ./build.sh selfcheck for the self-check)
#   ./build.sh test     restore, build, run every test (tests/run-all.sh)
#   ./build.sh help     every command
set -euo pipefail
cd "$(dirname "$0")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

if ! command -v dotnet >/dev/null 2>&1; then
  echo "build.sh: the .NET 10 SDK is required (dotnet was not found on PATH)" >&2
  exit 1
fi

usage() {
  cat <<'USAGE'
usage: ./build.sh [command] [arguments]
  run [compare options]     (the default) the main job: the A/B comparison; --quick, --seconds S, --reps N,
                            --cycles C, --threads 1,2,4,8, --workloads larson,midlarge,..., --out DIR,
                            --calls (every allocation and free in a method of its own: docs/results/ab-calls.md)
  test [dotnet test options] every test with each pool, once on a Debug build (invariant checks on) and once
                            through the portable platform layer (SLABALLOC_PORTABLE_REGIONS=1), the package
                            and sample, a 30 s soak (tests/run-all.sh)
workloads (bench/SlabAlloc.Workloads):
  larson sleep min max chunks rounds seed threads [--allocator slab|native] [--calls] [--json] [--stats] [--after-load MS]
  midlarge threads cycles working_set seed [--allocator slab|native] [--calls] [--json] [--stats] [--after-load MS]
  xmalloc threads seconds size [--allocator slab|native] [--calls] [--json] [--stats]
  cachescratch threads iterations size repetitions [--allocator slab|native] [--calls] [--json] [--stats]
  cachethrash threads iterations size repetitions [--allocator slab|native] [--calls] [--json] [--stats]
  glibcthread threads seconds [--allocator slab|native] [--calls] [--json] [--stats]
  mstress threads scale iterations [--allocator slab|native] [--calls] [--json] [--stats]
  hotthread [size] [slots] [iterations]
  pairs SIZE N | mixed N | fill N SIZE   [--allocator slab|native]
  poolcost [count]          SlabMemoryPool's owners beside MemoryPool<byte>.Shared (rent/dispose, dropped, gen0 pauses)
  threadcycles [cycles] [threads-at-once] [--allocator slab|native] [--reps N]
  firstuse [--allocator slab|native] [--after-load MS]
  echo clients seconds [--pool slab|shared] [--sizes MIN-MAX|N] [--json]
                            (System.IO.Pipelines echo over loopback TCP; bench/pipelines-echo.sh compares the pools)
interprocess (bench/SlabAlloc.Interprocess; bench/ipc.sh runs the whole suite):
  ipc pingpong|bandwidth|suite [--transport pipe,uds,tcp,mutex-ring,mutex-ring-spin] [--size B] [--chunk B] [--reps R] [--scale F]
                            (two processes: round trips and streaming; suite writes docs/results/ipc-*.md)
correctness gate (tools/SlabAlloc.Soak):
  soak [--seconds S] [--threads T] [--report-every R] [--seed N]
  selfcheck [threads] [rounds]
BenchmarkDotNet suites: dotnet run -c Release --project bench/SlabAlloc.Microbenchmarks -- --filter '*'
USAGE
}

workloads=bench/SlabAlloc.Workloads/bin/Release/net10.0/SlabAlloc.Workloads.dll
soak=tools/SlabAlloc.Soak/bin/Release/net10.0/SlabAlloc.Soak.dll
interprocess=bench/SlabAlloc.Interprocess/bin/Release/net10.0/SlabAlloc.Interprocess.dll
cmd="${1:-run}"
[ $# -gt 0 ] && shift
case "$cmd" in
  run)
    dotnet build SlabAlloc.sln -c Release -nologo -v quiet
    # SlabAlloc as the package ships it: a copy of the harness with the library's ReadyToRun image.
    rm -rf artifacts/harness artifacts/readytorun
    mkdir -p artifacts
    cp -r "$(dirname "$workloads")" artifacts/harness
    dotnet publish src/SlabAlloc/SlabAlloc.csproj -c Release -r linux-x64 --self-contained false \
      -p:PublishReadyToRun=true -o artifacts/readytorun -nologo -v quiet
    cp artifacts/readytorun/SlabAlloc.dll artifacts/harness/
    dotnet artifacts/harness/SlabAlloc.Workloads.dll compare "$@"
    ;;
  larson|midlarge|xmalloc|cachescratch|cachethrash|glibcthread|mstress|hotthread|pairs|mixed|fill|threadcycles|firstuse|poolcost|echo)
    dotnet build SlabAlloc.sln -c Release -nologo -v quiet
    dotnet "$workloads" "$cmd" "$@"
    ;;
  ipc)
    dotnet build SlabAlloc.sln -c Release -nologo -v quiet
    dotnet "$interprocess" "$@"
    ;;
  soak|selfcheck)
    dotnet build SlabAlloc.sln -c Release -nologo -v quiet
    dotnet "$soak" "$cmd" "$@"
    ;;
  test)
    dotnet build SlabAlloc.sln -c Release -nologo -v quiet
    exec tests/run-all.sh "$@"
    ;;
  help|-h|--help)
    usage
    ;;
  *)
    usage >&2
    exit 2
    ;;
esac
