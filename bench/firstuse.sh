#!/usr/bin/env bash
# What a process pays the first time it takes each allocation path (`SlabAlloc.Workloads firstuse`), for
# SlabAlloc JIT-compiled (the default build; first allocation loading SlabAlloc, and 50 ms after a
# statistics call loaded it, so its start-up warm-up has run, and the same with the warm-up off), SlabAlloc published ReadyToRun (as an
# application can ship it), mimalloc and glibc (through NativeMemory; mimalloc by LD_PRELOAD, both
# with SlabAlloc's warm-up off, since the harness loads SlabAlloc in every run). Each run is a fresh
# process; runs are interleaved; the median of `reps` runs per line is reported, in microseconds.
# Writes docs/results/firstuse.md.
#   bench/firstuse.sh [reps]      (default 7: about a minute)
set -euo pipefail
cd "$(dirname "$0")/.."
reps="${1:-7}"
r2r="$(mktemp -d)"
trap 'rm -rf "$r2r"' EXIT
dotnet build bench/SlabAlloc.Workloads/SlabAlloc.Workloads.csproj -c Release -nologo -v quiet >/dev/null
dotnet publish bench/SlabAlloc.Workloads/SlabAlloc.Workloads.csproj -c Release -r linux-x64 --self-contained false \
  -p:PublishReadyToRun=true -o "$r2r" -nologo -v quiet >/dev/null
jit=bench/SlabAlloc.Workloads/bin/Release/net10.0/SlabAlloc.Workloads.dll
mimalloc=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2
[ -f "$mimalloc" ] || { echo "mimalloc is not installed (apt-get install libmimalloc2.0)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$r2r" "$work"' EXIT
for ((r = 0; r < reps; r++)); do
  printf '\rfirstuse run %d/%d   ' $((r + 1)) "$reps" >&2
  dotnet "$jit" firstuse >> "$work/jit"
  dotnet "$jit" firstuse --after-load 50 >> "$work/loaded"
  SLABALLOC_WARMUP=0 dotnet "$jit" firstuse --after-load 50 >> "$work/cold"
  dotnet "$r2r/SlabAlloc.Workloads.dll" firstuse >> "$work/r2r"
  SLABALLOC_WARMUP=0 LD_PRELOAD="$mimalloc" dotnet "$jit" firstuse --allocator native >> "$work/mimalloc"
  SLABALLOC_WARMUP=0 dotnet "$jit" firstuse --allocator native >> "$work/glibc"
done
echo >&2

# The first column of each output line, per step, median over the runs.
medians() { # $1 = file
  awk '/^  first/ { step = $0; sub(/ +[0-9.]+ us.*/, "", step); sub(/^  /, "", step);
                    for (i = 1; i <= NF; i++) if ($(i + 1) == "us") { v = $i; break }
                    n[step]++; vals[step, n[step]] = v; if (!(step in order)) { order[step] = ++k; names[k] = step } }
       END { for (j = 1; j <= k; j++) { s = names[j]; m = n[s]; c = 0
               for (a = 1; a <= m; a++) x[a] = vals[s, a]
               for (a = 1; a <= m; a++) for (b = a + 1; b <= m; b++) if (x[b] < x[a]) { t = x[a]; x[a] = x[b]; x[b] = t }
               printf "%s\t%.1f\n", s, (m % 2 ? x[(m + 1) / 2] : (x[m / 2] + x[m / 2 + 1]) / 2) } }' "$1"
}
out=docs/results/firstuse.md
{
  echo "# First use of each allocation path"
  echo
  echo "Produced by \`bench/firstuse.sh $reps\` on $(date -u '+%Y-%m-%d %H:%M') UTC. Machine: $(nproc) cores,"
  echo ".NET $(dotnet --list-runtimes | sed -n 's/^Microsoft.NETCore.App \([0-9.]*\).*/\1/p' | tail -1). Each run is a fresh process (\`SlabAlloc.Workloads firstuse\`);"
  echo "median of $reps runs, wall time of one alloc+free in microseconds. In the first column the first"
  echo "allocation is what loads SlabAlloc, so its start-up warm-up (\`SLABALLOC_WARMUP\`) runs at the same"
  echo "moment on another thread; in the second, SlabAlloc was loaded 50 ms earlier (\`firstuse --after-load 50\`),"
  echo "as in a program that touches it while starting and allocates later; the third column is the same with"
  echo "the warm-up off (\`SLABALLOC_WARMUP=0\`). \"SlabAlloc R2R\" is the same code"
  echo "published ReadyToRun (\`dotnet publish -p:PublishReadyToRun=true\`), as an application can ship it."
  echo
  echo "| step | SlabAlloc (JIT) | SlabAlloc (JIT), loaded 50 ms before | same, warm-up off | SlabAlloc R2R | mimalloc | glibc |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  join -t $'\t' <(medians "$work/jit" | nl -w3 -s$'\t' | sort -t $'\t' -k2,2) <(medians "$work/loaded" | sort -t $'\t' -k1,1) -1 2 -2 1 \
    | join -t $'\t' - <(medians "$work/cold" | sort -t $'\t' -k1,1) \
    | join -t $'\t' - <(medians "$work/r2r" | sort -t $'\t' -k1,1) \
    | join -t $'\t' - <(medians "$work/mimalloc" | sort -t $'\t' -k1,1) \
    | join -t $'\t' - <(medians "$work/glibc" | sort -t $'\t' -k1,1) \
    | sort -t $'\t' -k2,2n | awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, $3, $4, $5, $6, $7, $8 }'
} > "$out"
cat "$out"
