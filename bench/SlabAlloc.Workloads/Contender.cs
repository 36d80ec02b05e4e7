namespace SlabAlloc.Workloads;

/// <summary>One allocator configuration of the A/B comparison: how to start the child process.</summary>
/// <param name="Name">Short name for tables and charts.</param>
/// <param name="Allocator">The harness's <c>--allocator</c> value.</param>
/// <param name="Environment">Variables for the child process (pool choice, LD_PRELOAD). The harness loads
/// SlabAlloc in every run; a native allocator's run turns SlabAlloc's start-up warm-up off, so that it
/// does not pay for SlabAlloc's start-up work (a background thread's few milliseconds of CPU).</param>
internal sealed record Contender(string Name, string Allocator, IReadOnlyDictionary<string, string> Environment)
{
    public const string Glibc = "glibc";

    /// <summary>SlabAlloc's two pools, glibc, and each peer allocator that is installed.</summary>
    public static IReadOnlyList<Contender> Available(out IReadOnlyList<string> missing)
    {
        var list = new List<Contender>
        {
            new("slab-lockfree", "slab", new Dictionary<string, string> { ["SLABALLOC_POOL"] = "lockfree", ["SLABALLOC_LOCK_STATS"] = "1" }),
            new("slab-mutex", "slab", new Dictionary<string, string> { ["SLABALLOC_POOL"] = "mutex", ["SLABALLOC_LOCK_STATS"] = "1" }),
            new(Glibc, "native", new Dictionary<string, string> { ["SLABALLOC_WARMUP"] = "0" }),
        };
        var absent = new List<string>();
        foreach (var (name, file, package) in Peers)
        {
            string? path = FindLibrary(file);
            if (path is null) absent.Add($"{name} ({package})");
            else list.Add(new Contender(name, "native", new Dictionary<string, string> { ["LD_PRELOAD"] = path, ["SLABALLOC_WARMUP"] = "0" }));
        }
        missing = absent;
        return list;
    }

    private static readonly (string Name, string File, string Package)[] Peers =
    [
        ("mimalloc", "libmimalloc.so.2", "libmimalloc2.0"),
        ("jemalloc", "libjemalloc.so.2", "libjemalloc2"),
        ("tcmalloc", "libtcmalloc_minimal.so.4", "libtcmalloc-minimal4"),
    ];

    private static string? FindLibrary(string file)
    {
        foreach (string dir in new[] { "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib" })
        {
            string path = Path.Combine(dir, file);
            if (File.Exists(path)) return path;
        }
        return null;
    }
}
