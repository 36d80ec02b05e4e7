using SlabAlloc.Core;
using SlabAlloc.Diagnostics;
using SlabAlloc.Threading;

namespace SlabAlloc;

/// <summary>
/// Runs the allocator's common paths once, on a background thread, while the program is still starting
/// (<c>SLABALLOC_WARMUP</c>, on by default; see <see cref="StartUp"/>).
/// </summary>
/// <remarks>
/// <para>In a JIT-compiled program, the first allocation and free of a size class cost about 80 methods
/// compiled at Tier 0, three compiled fully optimized, and the types they use loaded: 12-16 ms measured
/// on the project's machine (<c>SlabAlloc.Bench firstuse</c>), where a native allocator takes 0.1 ms;
/// the first time a thread spans two slabs of a class, or the pool reuses or decommits a slab, costs
/// some 30 methods more. Done here first, that work is off the program's own threads; a program whose
/// first allocation comes at once still shares it with this thread, on another core.</para>
/// <para>The paths taken, in <see cref="Run"/>'s order: a thread attaching its cache; a slab from a new
/// superslab (stage 3) and one from a mapped superslab (stage 2); carving and the owner's free; a class
/// spanning two slabs, with frees into the one the thread no longer allocates from (its retained
/// lists); the general path and medium (eight-slot) slabs; handing empty slabs back to the pool, one
/// beyond its class's limit decommitted; a slab taken back from the pool's empty list (stage 1); and one
/// large block (128 KiB), mapped and freed into the large-block cache, where it stays (132 KiB of address
/// space, one page resident) until a large allocation of up to twice its size reuses it or <c>Trim</c>
/// releases it.</para>
/// <para>Effects a program can see: the statistics count these blocks (all freed again) and this thread's
/// cache (made, then reclaimed once the thread has ended); the first superslab is mapped a little earlier
/// and a few empty slabs wait in the pool's lists (decayed like any others), besides the cached large
/// block. At most about 200 KiB is touched, and nothing is left in use.</para>
/// </remarks>
internal static unsafe class WarmUp
{
    /// <summary>Blocks of 8 KiB one 64 KiB slab holds, plus one: the class spans two slabs.</summary>
    private const int SmallSpanningBlocks = (int)Geometry.SlotBytes / 8192 + 1;

    /// <summary>Blocks of 16 KiB one eight-slot (512 KiB) slab holds, plus one.</summary>
    private const int MediumSpanningBlocks = 8 * (int)Geometry.SlotBytes / 16384 + 1;

    /// <summary>The large block's size: the smallest round size above the largest class.</summary>
    internal const int LargeBlockBytes = 128 * 1024;

    /// <summary>Allocations made by <see cref="Run"/> (and as many frees), for the tests.</summary>
    internal const int Allocations = 2 + 2 + SmallSpanningBlocks + MediumSpanningBlocks + 1 + 1;

    /// <summary>Runs the paths described above on the calling thread and releases the thread's empty slabs.
    /// Never throws: an allocation that fails (a memory limit, no memory) ends the warm-up, logged, with
    /// whatever it allocated freed.</summary>
    public static void Run()
    {
        nint* blocks = stackalloc nint[MediumSpanningBlocks];
        int count = 0;
        try
        {
            AllocateAndFree(blocks, ref count, 64, 2);    // stage 3: the first superslab
            AllocateAndFree(blocks, ref count, 256, 2);   // stage 2: another slot of it
            AllocateAndFree(blocks, ref count, 8192, SmallSpanningBlocks);   // two slabs of one class
            AllocateAndFree(blocks, ref count, 16 * 1024, MediumSpanningBlocks); // two medium slabs
            ThreadCache.TrimCurrentThread();              // back to the pool; one medium slab decommitted
            AllocateAndFree(blocks, ref count, 16 * 1024, 1); // stage 1: from the pool's empty list
            ThreadCache.TrimCurrentThread();
            AllocateAndFree(blocks, ref count, LargeBlockBytes, 1); // mapped, then cached
        }
        catch (Exception e)
        {
            SlabLog.ErrorDetected(e);
            try
            {
                while (count > 0) SlabMemory.Free((void*)blocks[--count]);
                ThreadCache.TrimCurrentThread();
            }
            catch (Exception again)
            {
                SlabLog.ErrorDetected(again);
            }
        }
    }

    /// <summary>Allocates <paramref name="n"/> blocks of <paramref name="size"/> bytes, then frees them in
    /// allocation order (so a class that spans two slabs frees into the older one first).</summary>
    private static void AllocateAndFree(nint* blocks, ref int count, nuint size, int n)
    {
        while (count < n) blocks[count++] = (nint)SlabMemory.Alloc(size);
        for (int i = 0; i < n; i++)
        {
            SlabMemory.Free((void*)blocks[i]);
            blocks[i] = 0;
        }
        count = 0;
    }
}
