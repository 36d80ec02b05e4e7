namespace SlabAlloc.Workloads;

/// <summary>
/// The two forms a workload runs in. <b>Loop</b> (the default): the allocator's calls are inlined into
/// the workload's loop method, so SlabAlloc's fast paths become part of the loop and a native
/// allocator's P/Invoke frame is set up once per loop method, the form most favourable to the native
/// peers. <b>Calls</b> (<c>--calls</c>): every allocation and free goes through a method of its own, as
/// in most programs, where nothing of the allocator is inlined.
/// </summary>
internal static class CallForm
{
    /// <summary>A workload with its arguments, run with the allocator type the form selects.</summary>
    public interface IRun
    {
        RunFigures Run<TAlloc>() where TAlloc : struct, IBenchAllocator;
    }

    public static RunFigures Run<TRun>(TRun run, string allocator, bool calls) where TRun : IRun => (allocator, calls) switch
    {
        ("native", false) => run.Run<NativeAllocator>(),
        ("native", true) => run.Run<NativeAllocatorCalls>(),
        ("slab", false) => run.Run<SlabAllocator>(),
        ("slab", true) => run.Run<SlabAllocatorCalls>(),
        _ => throw new ArgumentException($"--allocator must be slab or native, not '{allocator}'"),
    };

    public readonly record struct LarsonRun(Larson.Arguments A) : IRun
    {
        public RunFigures Run<T>() where T : struct, IBenchAllocator => Larson.Run<T>(A);
    }

    public readonly record struct MidLargeRun(MidLarge.Arguments A) : IRun
    {
        public RunFigures Run<T>() where T : struct, IBenchAllocator => MidLarge.Run<T>(A);
    }

    public readonly record struct XmallocTestRun(XmallocTest.Arguments A) : IRun
    {
        public RunFigures Run<T>() where T : struct, IBenchAllocator => XmallocTest.Run<T>(A);
    }

    public readonly record struct CacheScratchRun(CacheScratch.Arguments A) : IRun
    {
        public RunFigures Run<T>() where T : struct, IBenchAllocator => CacheScratch.Run<T>(A);
    }

    public readonly record struct CacheThrashRun(CacheThrash.Arguments A) : IRun
    {
        public RunFigures Run<T>() where T : struct, IBenchAllocator => CacheThrash.Run<T>(A);
    }

    public readonly record struct GlibcThreadRun(GlibcThread.Arguments A) : IRun
    {
        public RunFigures Run<T>() where T : struct, IBenchAllocator => GlibcThread.Run<T>(A);
    }
}
