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
    /// <summary>A workload: runs with its arguments on the allocator type it is given.</summary>
    public interface IWorkload<TArgs>
    {
        static abstract RunFigures Run<TAlloc>(TArgs args) where TAlloc : struct, IBenchAllocator;
    }

    /// <summary>Runs <typeparamref name="TWork"/> on <paramref name="allocator"/> (slab or native) in the form <paramref name="calls"/> selects.</summary>
    public static RunFigures Run<TWork, TArgs>(TArgs args, string allocator, bool calls) where TWork : IWorkload<TArgs> => (allocator, calls) switch
    {
        ("native", false) => TWork.Run<NativeAllocator>(args),
        ("native", true) => TWork.Run<NativeAllocatorCalls>(args),
        ("slab", false) => TWork.Run<SlabAllocator>(args),
        ("slab", true) => TWork.Run<SlabAllocatorCalls>(args),
        _ => throw new ArgumentException($"--allocator must be slab or native, not '{allocator}'"),
    };
}
