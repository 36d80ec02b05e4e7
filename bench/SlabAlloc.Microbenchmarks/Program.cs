using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Environments;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;

// BenchmarkDotNet suites. Examples:
//   dotnet run -c Release --project bench/SlabAlloc.Microbenchmarks -- --filter '*Pair*'
//   dotnet run -c Release --project bench/SlabAlloc.Microbenchmarks -- --filter '*' --preload
// --preload adds one job per installed peer allocator, running the same benchmarks with that
// allocator under NativeMemory (LD_PRELOAD), so every ratio comes from one run.
// --unhardened adds a job with SLABALLOC_HARDENED=0, to measure what free-list hardening costs.
bool preload = args.Contains("--preload");
bool unhardened = args.Contains("--unhardened");
args = args.Where(a => a != "--preload" && a != "--unhardened").ToArray();

IConfig config = DefaultConfig.Instance.AddJob(Job.ShortRun.WithId("glibc"));
if (unhardened) config = config.AddJob(Job.ShortRun.WithId("unhardened").WithEnvironmentVariable("SLABALLOC_HARDENED", "0"));
if (preload)
{
    foreach (var (name, file) in new[] { ("mimalloc", "libmimalloc.so.2"), ("jemalloc", "libjemalloc.so.2"), ("tcmalloc", "libtcmalloc_minimal.so.4") })
    {
        string path = Path.Combine("/usr/lib/x86_64-linux-gnu", file);
        if (File.Exists(path)) config = config.AddJob(Job.ShortRun.WithId(name).WithEnvironmentVariable("LD_PRELOAD", path));
    }
}
BenchmarkSwitcher.FromAssembly(typeof(SlabAlloc.Microbenchmarks.PairBenchmarks).Assembly).Run(args, config);
