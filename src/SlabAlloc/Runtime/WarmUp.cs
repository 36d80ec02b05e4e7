using System.Diagnostics;
using SlabAlloc.Frontend;
using SlabAlloc.Large;
using SlabAlloc.Memory;
using SlabAlloc.Support;

namespace SlabAlloc.Runtime;

/// <summary>
/// Runs the allocator's common paths once, on a background thread, while the program is still starting
/// (<c>SLABALLOC_WARMUP</c>, on by default; see <see cref="StartUp"/> for when it is skipped).
/// </summary>
/// <remarks>
/// <para>In a JIT-compiled program, the first allocation and free of a size class compile dozens of
/// methods and load the types they use, far more work than a native allocator's first call; so do the
/// first time a thread spans two slabs of a class, the pool reuses or decommits a slab, or a large
/// block is mapped (docs/design-measurements.md, "Warm-up"). Done here first, that work is off the program's
/// own threads; a program whose first allocation comes at once still shares it with this thread, on
/// another core.</para>
/// <para>The paths taken, in <see cref="Plan"/>'s order: a thread attaching its cache; a slab from a new
/// superslab (stage 3) and one from a mapped superslab (stage 2); carving and the owner's free; a class
/// spanning two slabs, with frees into the one the thread no longer allocates from (its retained
/// lists); the general path and medium (eight-slot) slabs; handing empty slabs back to the pool, one
/// beyond its class's limit decommitted; a slab taken back from the pool's empty list (stage 1); and a
/// large block, mapped, freed into the large-block cache and unmapped again by flushing the cache.</para>
/// <para>Effects a program can see: the statistics count these blocks (all freed again) and this thread's
/// cache (made, then reclaimed after the thread has ended: by the periodic upkeep, when another thread attaches or at
/// <c>Trim</c>); the first superslab is mapped a little earlier, and a few empty slabs wait in
/// the pool's lists (decayed like any others); a large block freed by the program in the same
/// milliseconds may be unmapped rather than cached. At most about 200 KiB is touched, and nothing is
/// left in use or cached.</para>
/// </remarks>
internal static unsafe class WarmUp
{
    /// <summary>The largest one-slot class: nine blocks span two of its slabs.</summary>
    private const nuint SmallSpanningSize = Geometry.SmallSlabMaxBlockBytes;

    /// <summary>A medium class (eight-slot slabs) that the general path serves.</summary>
    private const nuint MediumSpanningSize = 2 * Geometry.SmallSlabMaxBlockBytes;

    /// <summary>The large block's size: the smallest round size above the largest class.</summary>
    private const nuint LargeBlockBytes = 2 * SizeClasses.MaxBlockBytes;

    /// <summary>Blocks of <paramref name="size"/> that make its class span two slabs: one slab's worth, plus one.</summary>
    private static int SpanningBlocks(nuint size) => SizeClasses.Capacity(SizeClasses.ClassOf(size)) + 1;

    /// <summary>One step of the warm-up: allocate <see cref="Blocks"/> blocks of <see cref="Size"/> bytes,
    /// free them in allocation order (so a class that spans two slabs frees into the older one first), and
    /// if <see cref="ThenTrim"/>, hand the thread's empty slabs back to the pool.</summary>
    internal readonly record struct Step(nuint Size, int Blocks, bool ThenTrim = false);

    /// <summary>The most blocks one step may hold at once (they are kept on the stack).</summary>
    internal const int MaxBlocksPerStep = 64;

    /// <summary>The paths described above, in order.</summary>
    private static Step[] Plan() =>
    [
        new(64, 2),                                                     // stage 3: the first superslab
        new(256, 2),                                                    // stage 2: another slot of it
        new(SmallSpanningSize, SpanningBlocks(SmallSpanningSize)),      // a class spanning two slabs
        new(MediumSpanningSize, SpanningBlocks(MediumSpanningSize), ThenTrim: true), // medium; one slab decommitted
        new(MediumSpanningSize, 1, ThenTrim: true),                    // stage 1: from the pool's empty list
        new(LargeBlockBytes, 1),                                        // mapped, then cached (flushed at the end)
    ];

    /// <summary>Allocations made by <see cref="Run()"/> (and as many frees), for the tests.</summary>
    internal static int Allocations
    {
        get
        {
            int sum = 0;
            foreach (Step step in Plan()) sum += step.Blocks;
            return sum;
        }
    }

    /// <summary>Runs the warm-up's plan on the calling thread. Never throws (see <see cref="Run(ReadOnlySpan{Step})"/>).</summary>
    public static void Run() => Run(Plan());

    /// <summary>Runs <paramref name="plan"/> on the calling thread, then flushes the large-block cache so
    /// that nothing stays behind. Never throws: an allocation that fails (no memory) ends it, logged unless
    /// the allocator logged it already, with whatever the step had allocated freed and the thread's empty
    /// slabs handed back.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A step holds more than <see cref="MaxBlocksPerStep"/> blocks (a bug in the plan).</exception>
    internal static void Run(ReadOnlySpan<Step> plan)
    {
        foreach (Step step in plan) ArgumentOutOfRangeException.ThrowIfGreaterThan(step.Blocks, MaxBlocksPerStep, nameof(plan));
        nint* blocks = stackalloc nint[MaxBlocksPerStep]; // not zeroed (SkipLocalsInit): only [0..count) is read
        int count = 0;
        // The reclaim of this thread's cache, which the first allocation of another thread may run, reports inside a
        // scope: opened here once, so that its methods are compiled off the program's threads too. Failures of the
        // warm-up itself are logged when it ends.
        using var reports = ErrorReports.Defer();
        try
        {
            foreach (Step step in plan)
            {
                AllocateAndFree(blocks, ref count, step.Size, step.Blocks);
                if (step.ThenTrim) SmallBlocks.TrimCurrentThread();
            }
            LargeObjects.FlushCache();
        }
        catch (Exception e)
        {
            ErrorReports.ReportCaught(e);
            try
            {
                while (count > 0) SlabMemory.Free((void*)blocks[--count]); // null (already freed) does nothing
                SmallBlocks.TrimCurrentThread();
                LargeObjects.FlushCache();
            }
            catch (Exception again)
            {
                ErrorReports.ReportCaught(again);
            }
        }
    }

    /// <summary>Allocates <paramref name="n"/> blocks of <paramref name="size"/> bytes, then frees them in
    /// allocation order. Invariant for the caller's clean-up: <c>blocks[0..count)</c> holds every block
    /// allocated and not yet freed, and null for those freed.</summary>
    private static void AllocateAndFree(nint* blocks, ref int count, nuint size, int n)
    {
        Debug.Assert(n <= MaxBlocksPerStep && count == 0);
        while (count < n)
        {
            void* p = SlabMemory.Alloc(size); // first: an allocation that throws must not have counted a slot
            blocks[count++] = (nint)p;
        }
        for (int i = 0; i < n; i++)
        {
            var block = (void*)blocks[i];
            blocks[i] = 0; // before the free: a free that throws must not be repeated by the clean-up
            SlabMemory.Free(block);
        }
        count = 0;
    }
}
