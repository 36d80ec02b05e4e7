using SlabAlloc.Diagnostics;
using SlabAlloc.Threading;

namespace SlabAlloc;

/// <summary>
/// Runs the allocator's common paths once, on a background thread, while the program is still starting
/// (<c>SLABALLOC_WARMUP</c>, on by default; see <see cref="StartUp"/>).
/// </summary>
/// <remarks>
/// <para>In a JIT-compiled program, the first allocation and free of a size class cost about 100 methods
/// compiled at Tier 0, three compiled fully optimized, and the types they use loaded: 12-16 ms measured
/// on the project's machine (<c>SlabAlloc.Bench firstuse</c>), where a native allocator takes 0.1 ms.
/// Done here first, that work is off the program's own threads; a program whose first allocation comes
/// at once still shares it with this thread, on another core.</para>
/// <para>The paths taken: a thread attaching its cache, a slab from a new superslab (stage 3) and one
/// from a mapped superslab (stage 2), carving, the owner's free, the general path and a medium (eight-slot)
/// slab, and handing empty slabs back to the pool, where the program's first allocations of those
/// classes find them formatted. Large blocks are not allocated: a freed one would stay mapped in the
/// large-block cache.</para>
/// <para>Effects a program can see: the statistics count these blocks (allocated and freed again) and this
/// thread's cache (made, then reclaimed once the thread has ended), and the first superslab is mapped
/// a little earlier. Nothing is left in use.</para>
/// </remarks>
internal static unsafe class WarmUp
{
    /// <summary>The sizes allocated: a small class, another small class, a medium class.</summary>
    private static ReadOnlySpan<uint> Sizes => [64, 256, 16 * 1024];

    /// <summary>Blocks allocated per size before they are freed (the second block finds the slab carved).</summary>
    private const int BlocksPerSize = 2;

    /// <summary>Allocates and frees <see cref="BlocksPerSize"/> blocks of each of <see cref="Sizes"/> on the
    /// calling thread, then releases the thread's empty slabs. Never throws: an allocation that fails (a
    /// memory limit, no memory) ends the warm-up, logged, with whatever it allocated freed.</summary>
    public static void Run()
    {
        void* first = null, second = null;
        try
        {
            foreach (uint size in Sizes)
            {
                first = SlabMemory.Alloc(size);
                second = SlabMemory.Alloc(size);
                SlabMemory.Free(second);
                second = null;
                SlabMemory.Free(first);
                first = null;
            }
            ThreadCache.TrimCurrentThread();
        }
        catch (Exception e)
        {
            SlabLog.ErrorDetected(e);
            try
            {
                if (second != null) SlabMemory.Free(second);
                if (first != null) SlabMemory.Free(first);
                ThreadCache.TrimCurrentThread();
            }
            catch (Exception again)
            {
                SlabLog.ErrorDetected(again);
            }
        }
    }
}
