#!/usr/bin/env bash
# Where the time goes inside one JIT-compiled method, instruction by instruction.
# perf samples the process (timer-based: no hardware counters needed), the runtime writes its perf map,
# and the JIT prints the method's Tier-1 code with its bytes; the samples that fall in the method are
# mapped onto that listing. Inlined callees show up inside the caller (say which when you attribute
# cost: a profile of inlined code charges the callee's work to the caller).
#   bench/perf-jit-annotate.sh SYMBOL_SUBSTRING JIT_METHOD_NAME command...
# Example:
#   bench/perf-jit-annotate.sh "Larson+Session" Exercise \
#       dotnet bench/SlabAlloc.Workloads/bin/Release/net10.0/SlabAlloc.Workloads.dll larson 3 8 1000 5000 100 4141 1
# Tier-1 code is used, or the on-stack-replacement code of a method that runs once (a benchmark loop;
# with several OSR variants, the last one printed is used), or the code of a method compiled optimized
# at once (AggressiveOptimization). Prints the share of all samples in the method, then the listing with a percentage per instruction
# (samples land on the instruction after a stalled one). Needs perf (apt-get install linux-perf).
set -euo pipefail
sub="$1"; method="$2"; shift 2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
DOTNET_JitStdOutFile="$work/jit.asm" DOTNET_JitDisasm="$method" DOTNET_JitDisasmWithCodeBytes=1 \
DOTNET_EnableWriteXorExecute=0 DOTNET_PerfMapEnabled=3 \
  perf record -F 10000 -o "$work/perf.data" "$@" >/dev/null 2>&1
pid=$(perf script -i "$work/perf.data" -F pid 2>/dev/null | awk 'NR == 1 { print $1 }')
perf script -i "$work/perf.data" -F ip 2>/dev/null > "$work/ips"
python3 - "$sub" "/tmp/perf-$pid.map" "$work/ips" "$work/jit.asm" <<'PY'
import sys, re, collections
sub, mapfile, ipfile, asmfile = sys.argv[1:]
entries = [l.split(' ', 2) for l in open(mapfile)]
# Tier-1 code, or on-stack-replacement code for a method called once (a benchmark's loop).
# Or a method compiled optimized at once ([MethodImpl(MethodImplOptions.AggressiveOptimization)]).
def tier(n): return 'osr' if 'OptimizedTier1OSR]' in n else 'tier1' if 'OptimizedTier1]' in n else 'full' if '[Optimized]' in n else None
cands = [(int(a, 16), int(b, 16), n.strip()) for a, b, n in entries if sub in n and tier(n)]
ips = [int(l.split()[0], 16) for l in open(ipfile) if l.strip()]
if not cands: sys.exit(f'no Tier-1 code matching {sub!r} in the perf map')
best = max(cands, key=lambda c: sum(1 for x in ips if c[0] <= x < c[0] + c[1]))
start, size, name = best
hits = collections.Counter(x - start for x in ips if start <= x < start + size)
total = sum(hits.values())
print(f'{name}: {total} of {len(ips)} samples ({100 * total / max(1, len(ips)):.1f}%)')
listings = open(asmfile).read().split('; Assembly listing for method ')
want = {'osr': '(Tier1-OSR)', 'tier1': '(Tier1)', 'full': '(FullOpts)'}[tier(name)]
tier1 = [b for b in listings if want in b.split('\n')[0]]
if not tier1: sys.exit(f'the JIT printed no {want} listing for that method')
offset = 0
for line in tier1[-1].split('\n'):
    m = re.search(r';; offset=0x([0-9A-F]+)', line)
    if m:
        offset = int(m.group(1), 16); print(line.strip()); continue
    m = re.match(r'\s+([0-9A-F]+)\s+(\S.*)', line)
    if m and len(m.group(1)) % 2 == 0:
        n = len(m.group(1)) // 2
        h = sum(hits.get(o, 0) for o in range(offset, offset + n))
        print('%5.1f%% %4x  %s' % (100 * h / max(1, total), offset, m.group(2))); offset += n
PY
