using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using SlabAlloc.Memory;
using SlabAlloc.Platform;
using SlabAlloc.Tests.Model;
using static SlabAlloc.Tests.ProbeProcess;

namespace SlabAlloc.Tests.Api;

/// <summary>
/// Hostile pointers given to <see cref="SlabMemory.Free"/>, <see cref="SlabMemory.AlignedFree"/>,
/// <see cref="SlabMemory.Realloc"/>, <see cref="SlabMemory.AlignedRealloc"/> and
/// <see cref="SlabMemory.UsableSize"/>: each must get an <see cref="ArgumentException"/> that says
/// what is wrong, change nothing (the live block next to it keeps its contents and can still be
/// freed, <see cref="SlabStatistics.BlocksInUse"/> stays exact), and leave the allocator working.
/// </summary>
/// <remarks>
/// What cannot be tested in this process runs in the child process tests/SlabAlloc.CheckedProbe:
/// checked mode (<c>SLABALLOC_CHECKED</c> is read once at start-up) and hostile pointers that
/// would corrupt this process's allocator if SlabAlloc wrongly accepted them.
/// </remarks>
[Collection("SlabAlloc global state")]
public sealed unsafe class BadPointerTests
{
    internal const string ForeignMessage = "not allocated by SlabAlloc";
    internal const string InteriorMessage = "not at the start of a live allocation";
    internal const string DoubleFreeMessage = "double free";
    private const nuint KiB = 1024;
    private const nuint MiB = 1024 * 1024;
    private const nuint GranuleBytes = 4 * MiB; // superslab size and registry granule
    private const nuint SlotBytes = 64 * KiB;

    /// <summary>The API calls that take a pointer to a live block.</summary>
    public enum Call { Free, AlignedFree, Realloc, AlignedRealloc, UsableSize }

    private static readonly Call[] AllCalls = Enum.GetValues<Call>();

    // ------------------------------------------------------------------ foreign pointers

    [Theory]
    [InlineData(0x10UL)]
    [InlineData(0x1000UL)]
    [InlineData(0x7fff_0000_0000UL)]
    [InlineData(0x7fff_ffff_f000UL)]        // top page of the 47-bit user address space
    [InlineData(0x8000_0000_0000UL)]        // first address above it
    [InlineData(0xffff_8000_0000_0000UL)]   // kernel half
    [InlineData(0xffff_ffff_ffff_fff0UL)]
    public void MadeUpAddress_IsRejectedAsForeign(ulong address)
    {
        AssertRejectedByEveryCall((nuint)address, ForeignMessage);
    }

    [Theory]
    [InlineData(64)]
    [InlineData(4096)]
    [InlineData(1024 * 1024)]
    public void NativeMemoryBlock_IsRejectedAsForeign_AndLeftUntouched(int size)
    {
        var block = (byte*)NativeMemory.Alloc((nuint)size);
        try
        {
            Stamp(block, (nuint)size, 0x31);
            AssertRejectedByEveryCall((nuint)block, ForeignMessage);
            AssertStamp(block, (nuint)size, 0x31);
        }
        finally
        {
            NativeMemory.Free(block);
        }
    }

    [Fact]
    public void StackMemory_IsRejectedAsForeign_AndLeftUntouched()
    {
        byte* stack = stackalloc byte[256];
        Stamp(stack, 256, 0x47);
        AssertRejectedByEveryCall((nuint)stack, ForeignMessage);
        AssertRejectedByEveryCall((nuint)(stack + 128), ForeignMessage);
        AssertStamp(stack, 256, 0x47);
    }

    [Fact]
    public void PinnedManagedArray_IsRejectedAsForeign_AndLeftUntouched()
    {
        byte[] array = GC.AllocateArray<byte>(4096, pinned: true);
        fixed (byte* first = &array[0])
        {
            Stamp(first, 4096, 0x53);
            AssertRejectedByEveryCall((nuint)first, ForeignMessage);
            AssertRejectedByEveryCall((nuint)(first + 1000), ForeignMessage);
            AssertStamp(first, 4096, 0x53);
        }
    }

    /// <summary>
    /// A large block maps its size (rounded to pages) at the start of a 4 MiB granule; the rest of
    /// that granule is not SlabAlloc's and may hold another allocator's memory. A pointer there is
    /// foreign, and must be reported as such, not as a pointer into SlabAlloc memory.
    /// </summary>
    [Fact]
    public void ForeignMemoryInTheGranuleOfALargeBlock_IsRejectedAsForeign()
    {
        var block = (byte*)SlabMemory.Alloc(MiB);
        nuint granule = (nuint)block & ~(GranuleBytes - 1);
        nuint foreignPage = granule + 2 * MiB; // the large block maps [granule, granule + 1 MiB + a page)
        Assert.True((nuint)block + SlabMemory.UsableSize(block) < foreignPage, "the 1 MiB block reaches into the page chosen as foreign");
        bool mapped = TryMapPageAt(foreignPage);
        try
        {
            Stamp(block, MiB, 0x19);
            if (mapped) Stamp((byte*)foreignPage, 4096, 0x29);
            AssertRejectedByEveryCall(foreignPage + 16, ForeignMessage);
            AssertStamp(block, MiB, 0x19);
            if (mapped) AssertStamp((byte*)foreignPage, 4096, 0x29);
        }
        finally
        {
            if (mapped) LibC.Munmap((void*)foreignPage, 4096);
            SlabMemory.Free(block);
        }
    }

    // ------------------------------------------------------------------ interior pointers

    [Theory]
    [InlineData(16, 1)]
    [InlineData(16, 8)]
    [InlineData(64, 1)]
    [InlineData(64, 8)]
    [InlineData(64, 16)]
    [InlineData(64, 32)]
    [InlineData(64, 63)]
    [InlineData(100, 16)]       // class 112
    [InlineData(100, 64)]
    [InlineData(1000, 512)]
    [InlineData(8192, 4096)]
    [InlineData(20480, 10240)]  // middle of a 20 KiB (medium) block
    [InlineData(20000, 16)]
    [InlineData(65536, 32768)]
    [InlineData(65536, 65520)]
    public void InteriorPointerOfASlabBlock_IsRejected_AndTheBlockSurvives(int size, int offset) =>
        AssertInteriorRejectedAndBlockSurvives(size, offset, 0x6B, slabBlock: true);

    [Theory]
    [InlineData(1 * 1024 * 1024, 4096)]
    [InlineData(1 * 1024 * 1024, 1)]
    [InlineData(1 * 1024 * 1024, 16)]
    [InlineData(1 * 1024 * 1024, 64)]
    [InlineData(1 * 1024 * 1024, 1024 * 1024 - 16)]
    [InlineData(8 * 1024 * 1024, 5 * 1024 * 1024)]          // second granule of the region
    [InlineData(8 * 1024 * 1024, 8 * 1024 * 1024 - 16)]     // third granule
    public void InteriorPointerOfALargeBlock_IsRejected_AndTheBlockSurvives(int size, int offset) =>
        AssertInteriorRejectedAndBlockSurvives(size, offset, 0x7C, slabBlock: false);

    /// <summary>Allocates a block, passes <c>block + offset</c> to every entry point, and checks each
    /// rejects it while the block keeps its contents, usable size and accounting.</summary>
    private static void AssertInteriorRejectedAndBlockSurvives(int size, int offset, byte seed, bool slabBlock)
    {
        long baseline = BlocksInUse();
        var block = (byte*)SlabMemory.Alloc((nuint)size);
        nuint usable = SlabMemory.UsableSize(block);
        if (slabBlock) Assert.NotEqual(0, offset % (int)usable); // not the start of a neighbouring block
        Stamp(block, usable, seed);

        AssertRejectedByEveryCall((nuint)(block + offset), InteriorMessage);

        AssertStamp(block, usable, seed);
        Assert.Equal(usable, SlabMemory.UsableSize(block));
        Assert.Equal(baseline + 1, BlocksInUse());
        SlabMemory.Free(block);
        Assert.Equal(baseline, BlocksInUse());
    }

    [Fact]
    public void InteriorPointerOfAnOverAlignedLargeBlock_IsRejected_AndTheBlockSurvives()
    {
        long baseline = BlocksInUse();
        nuint alignment = 8 * MiB; // a mapping of its own, 8 MiB aligned
        var block = (byte*)SlabMemory.AlignedAlloc(100, alignment);
        Assert.Equal(0u, (nuint)block & (alignment - 1));
        nuint usable = SlabMemory.UsableSize(block);
        Assert.Equal((nuint)Environment.SystemPageSize, usable); // one page: the rest of the granule is not its
        Stamp(block, usable, 0x11);

        AssertRejectedByEveryCall((nuint)(block + 16), InteriorMessage);
        AssertRejectedByEveryCall((nuint)(block + usable - 16), InteriorMessage);
        AssertRejectedByEveryCall((nuint)(block + usable + 16), ForeignMessage); // past the mapping, in its granule

        AssertStamp(block, usable, 0x11);
        SlabMemory.AlignedFree(block);
        Assert.Equal(baseline, BlocksInUse());
    }

    [Fact]
    public void SuperslabHeader_IsRejected_AndTheBlockSurvives()
    {
        long baseline = BlocksInUse();
        var block = (byte*)SlabMemory.Alloc(64);
        Stamp(block, 64, 0x24);
        nuint superslab = (nuint)block & ~(GranuleBytes - 1);
        Assert.True((nuint)block - superslab >= SlotBytes, "a block was handed out from slot 0, the superslab header");

        AssertRejectedByEveryCall(superslab, InteriorMessage);                 // the header itself
        AssertRejectedByEveryCall(superslab + 64, InteriorMessage);            // its slot-to-slab table
        AssertRejectedByEveryCall(superslab + 4096, InteriorMessage);          // its checked-mode bitmaps
        AssertRejectedByEveryCall(superslab + SlotBytes - 16, InteriorMessage); // last bytes of slot 0

        AssertStamp(block, 64, 0x24);
        SlabMemory.Free(block);
        Assert.Equal(baseline, BlocksInUse());
    }

    // ------------------------------------------------------------------ freed memory

    /// <summary>1 MiB and 8 MiB regions go to the large-block cache when freed (unregistered but
    /// still mapped); 72 MiB is beyond the cache's 64 MiB, so its region is unmapped.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(8)]
    [InlineData(72)]
    public void FreedLargeBlock_IsRejectedAsForeign(int mebibytes)
    {
        foreach (Call call in AllCalls)
        {
            long baseline = BlocksInUse();
            void* block = SlabMemory.Alloc((nuint)mebibytes * MiB);
            SlabMemory.Free(block);
            Assert.Equal(baseline, BlocksInUse());
            // Nothing is allocated between the free and the bad call, so the region cannot have been reused.
            AssertRejected(call, (nuint)block, ForeignMessage);
            AssertAllocatorWorks();
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(72)]
    public void DoubleFreeOfALargeBlock_IsDetected_InDefaultMode(int mebibytes)
    {
        long baseline = BlocksInUse();
        void* block = SlabMemory.Alloc((nuint)mebibytes * MiB);
        SlabMemory.Free(block);
        AssertRejected(Call.Free, (nuint)block, ForeignMessage);
        AssertRejected(Call.AlignedFree, (nuint)block, ForeignMessage);
        Assert.Equal(baseline, BlocksInUse());

        void* aligned = SlabMemory.AlignedAlloc(100, 8 * MiB);
        SlabMemory.AlignedFree(aligned);
        AssertRejected(Call.AlignedFree, (nuint)aligned, ForeignMessage);
        AssertRejected(Call.Free, (nuint)aligned, ForeignMessage);
        Assert.Equal(baseline, BlocksInUse());
        AssertAllocatorWorks();
    }

    /// <summary>
    /// Blocks from a superslab that was returned to the system: a thread allocates 8 KiB blocks
    /// until one of them comes from a newly mapped superslab (which then holds only that thread's
    /// slabs), frees them all and ends; Trim must return that superslab, after which its old
    /// pointers are foreign, and using them must not crash.
    /// </summary>
    [Fact]
    public void PointerIntoASuperslabReturnedToTheSystem_IsRejectedAsForeign()
    {
        const nuint size = 8192;
        const int maxBlocks = 20_000;
        SlabMemory.Trim();
        long baseline = BlocksInUse();
        long returnedBefore = SlabMemory.GetStatistics().SuperslabsReturnedTotal;

        nuint victim = 0;
        int blockCount = 0;
        Exception? failure = null;
        var worker = new Thread(() =>
        {
            try
            {
                var blocks = new List<nuint>();
                long mappedBefore = SlabMemory.GetStatistics().SuperslabsMappedTotal;
                while (victim == 0 && blocks.Count < maxBlocks)
                {
                    var block = (byte*)SlabMemory.Alloc(size);
                    Stamp(block, 64, 0x3D);
                    blocks.Add((nuint)block);
                    // Mapping a superslab happens inside the Alloc call that takes a slab from it.
                    if (SlabMemory.GetStatistics().SuperslabsMappedTotal > mappedBefore) victim = (nuint)block;
                }
                for (int i = 0; i < 5; i++) blocks.Add((nuint)SlabMemory.Alloc(size)); // company in the new superslab
                blockCount = blocks.Count;
                foreach (nuint block in blocks) SlabMemory.Free((void*)block);
            }
            catch (Exception e)
            {
                failure = e;
            }
        });
        worker.Start();
        worker.Join();
        Assert.Null(failure);
        Assert.True(victim != 0, $"{blockCount} blocks of {size} bytes were allocated without mapping a new superslab");
        Assert.Equal(baseline, BlocksInUse());

        // The thread's cache is handed back by its finalizer or by Trim; let the finalizer finish
        // first, so that Trim sees every slab of the dead thread.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        SlabMemory.Trim();

        SlabStatistics stats = SlabMemory.GetStatistics();
        Assert.True(stats.SuperslabsReturnedTotal > returnedBefore,
            $"Trim returned no empty superslab (returned in all: {returnedBefore} before, {stats.SuperslabsReturnedTotal} after)\n{stats}");
        Assert.True(Registry.Lookup((void*)victim) == 0, $"the superslab of 0x{victim:x} is still mapped after Trim\n{stats}");
        Assert.False(Registry.IsSuperslab((void*)victim), $"the superslab bit of 0x{victim:x} is still set after Trim");
        // Its addresses stay SlabAlloc's, so a stale pointer never faults. Its memory went back to the system
        // (zeroes), or in the portable layer, which cannot give memory back and keep the range, stays as it was.
        Assert.True(stats.SuperslabRangesKept >= 1, $"no superslab range kept after Trim\n{stats}");
        if (OsMemory.UsesMmap)
        {
            Assert.Equal(0L, Volatile.Read(ref *(long*)victim));
            Assert.Equal(0L, Volatile.Read(ref *(long*)(victim & ~(GranuleBytes - 1))));
        }
        else
        {
            Assert.Equal(SuperslabHeader.MagicValue, Volatile.Read(ref *(ulong*)(victim & ~(GranuleBytes - 1))));
        }

        // All calls before any allocation, so the returned address range cannot be SlabAlloc's again.
        nuint superslab = victim & ~(GranuleBytes - 1);
        foreach (Call call in AllCalls)
        {
            AssertRejected(call, victim, ForeignMessage);
            AssertRejected(call, victim + 16, ForeignMessage);
            AssertRejected(call, superslab, ForeignMessage);
        }
        AssertAllocatorWorks();
        Assert.Equal(baseline, BlocksInUse());
    }

    // ------------------------------------------------------------------ child process

    [Fact]
    public void CheckedMode_DetectsDoubleFrees_AndKeepsWorking()
    {
        ProbeResult result = RunProbe("1");
        Assert.True(result.ExitCode == 0, result.ToString());
        string[] detected = result.Lines("DOUBLE_FREE_DETECTED: ");
        Assert.True(detected.Length == 3, $"expected 3 detected double frees (small, medium, remote)\n{result}");
        Assert.All(detected, line => Assert.Contains(DoubleFreeMessage, line));
        Assert.Contains("ALLOCATOR_WORKS", result.Stdout);
        Assert.Contains("PROBE_OK", result.Stdout);
    }

    /// <summary>Realloc of a freed block frees it again: checked mode must report the double free
    /// before anything is allocated or copied, so nothing leaks.</summary>
    [Fact]
    public void CheckedMode_DetectsReallocOfAFreedBlock_WithoutLeaking()
    {
        ProbeResult result = RunProbe("1", "realloc-freed");
        Assert.True(result.ExitCode == 0, result.ToString());
        string[] detected = result.Lines("REALLOC_OF_FREED_DETECTED: ");
        Assert.True(detected.Length == 4, $"expected 4 detected double frees (Realloc and AlignedRealloc, small and medium)\n{result}");
        Assert.All(detected, line => Assert.Contains(DoubleFreeMessage, line));
        Assert.Contains("PROBE_OK", result.Stdout);
    }

    [Fact]
    public void InvalidCheckedSetting_FailsAtStartUp_NamingTheVariable()
    {
        ProbeResult result = RunProbe("invalid");
        Assert.True(result.ExitCode != 0, result.ToString());
        Assert.Contains("SLABALLOC_CHECKED", result.Stderr);
        Assert.Contains("invalid", result.Stderr);
        Assert.DoesNotContain("PROBE_OK", result.Stdout);
    }

    /// <summary>
    /// The start of a block that the slab never handed out (beyond what it has carved): SlabAlloc
    /// did not return that pointer, so every call must reject it and change nothing. Run in a child
    /// process (default mode), because accepting it corrupts the slab.
    /// </summary>
    [Theory]
    [InlineData("Free", "owner")]
    [InlineData("AlignedFree", "owner")]
    [InlineData("Realloc", "owner")]
    [InlineData("AlignedRealloc", "owner")]
    [InlineData("UsableSize", "owner")]
    [InlineData("Free", "remote")]
    [InlineData("AlignedFree", "remote")]
    [InlineData("Realloc", "remote")]
    [InlineData("AlignedRealloc", "remote")]
    [InlineData("UsableSize", "remote")]
    public void StartOfABlockNeverHandedOut_IsRejected(string call, string thread)
    {
        ProbeResult result = RunProbe("0", "uncarved", call, thread);
        Assert.True(result.ExitCode == 0, result.ToString());
        string[] rejected = result.Lines("UNCARVED_REJECTED: ");
        Assert.True(rejected.Length > 0, result.ToString());
        Assert.All(rejected, line => Assert.True(line.Contains(InteriorMessage) || line.Contains("already free"), line));
        Assert.Contains("PROBE_OK", result.Stdout);
    }

    // ------------------------------------------------------------------ helpers

    private static long BlocksInUse() => SlabMemory.GetStatistics().BlocksInUse;

    private static void Invoke(Call call, nuint address)
    {
        void* p = (void*)address;
        switch (call)
        {
            case Call.Free: SlabMemory.Free(p); break;
            case Call.AlignedFree: SlabMemory.AlignedFree(p); break;
            case Call.Realloc: SlabMemory.Realloc(p, 200); break;
            case Call.AlignedRealloc: SlabMemory.AlignedRealloc(p, 200, 64); break;
            case Call.UsableSize: SlabMemory.UsableSize(p); break;
        }
    }

    /// <summary>One bad call: an <see cref="ArgumentException"/> for "ptr" naming the address and saying
    /// what is wrong, and not one block more or less in use.</summary>
    private static void AssertRejected(Call call, nuint address, string expectedMessage)
    {
        long before = BlocksInUse();
        ArgumentException e = Assert.Throws<ArgumentException>(() => Invoke(call, address));
        Assert.Equal("ptr", e.ParamName);
        Assert.True(e.Message.Contains(expectedMessage, StringComparison.Ordinal),
            $"{call}(0x{address:x}): expected a message containing \"{expectedMessage}\", got: {e.Message}");
        Assert.Contains($"0x{address:x}", e.Message);
        Assert.Equal(before, BlocksInUse());
    }

    /// <summary>Every call with the bad pointer is rejected, and after each one the allocator still works.</summary>
    private static void AssertRejectedByEveryCall(nuint address, string expectedMessage)
    {
        foreach (Call call in AllCalls)
        {
            AssertRejected(call, address, expectedMessage);
            AssertAllocatorWorks();
        }
    }

    /// <summary>Allocates and frees blocks of several sizes (slab and large), checking they do not
    /// overlap and that the count of blocks in use comes back exactly.</summary>
    private static void AssertAllocatorWorks()
    {
        nuint[] sizes = [1, 16, 48, 100, 1000, 1025, 5000, 8192, 20000, 65536, 200_000];
        long baseline = BlocksInUse();
        var blocks = new nuint[sizes.Length + 2];
        for (int i = 0; i < sizes.Length; i++)
        {
            var p = (byte*)SlabMemory.Alloc(sizes[i]);
            Assert.True(p != null);
            Assert.True(SlabMemory.UsableSize(p) >= sizes[i]);
            Stamp(p, sizes[i], (byte)i);
            blocks[i] = (nuint)p;
        }
        var aligned = (byte*)SlabMemory.AlignedAlloc(3000, 4096);
        Assert.Equal(0u, (nuint)aligned & 4095);
        Stamp(aligned, 3000, 0xA1);
        blocks[sizes.Length] = (nuint)aligned;
        var zeroed = (byte*)SlabMemory.AllocZeroed(500);
        for (int i = 0; i < 500; i++) Assert.Equal(0, zeroed[i]);
        Stamp(zeroed, 500, 0xB2);
        blocks[sizes.Length + 1] = (nuint)zeroed;
        Assert.Equal(baseline + blocks.Length, BlocksInUse());

        for (int i = 0; i < sizes.Length; i++) AssertStamp((byte*)blocks[i], sizes[i], (byte)i);
        AssertStamp(aligned, 3000, 0xA1);
        AssertStamp(zeroed, 500, 0xB2);
        SlabMemory.AlignedFree(aligned);
        SlabMemory.Free(zeroed);
        for (int i = 0; i < sizes.Length; i++) SlabMemory.Free((void*)blocks[i]);
        Assert.Equal(baseline, BlocksInUse());
    }

    private static void Stamp(byte* p, nuint count, byte seed)
    {
        for (nuint i = 0; i < count; i++) p[i] = (byte)(seed + i * 13);
    }

    private static void AssertStamp(byte* p, nuint count, byte seed)
    {
        for (nuint i = 0; i < count; i++)
        {
            if (p[i] != (byte)(seed + i * 13))
                Assert.Fail($"byte {i} of the block at 0x{(nuint)p:x} changed: {p[i]} instead of {(byte)(seed + i * 13)}");
        }
    }

    /// <summary>Maps one page of anonymous memory exactly at <paramref name="address"/> if it is free
    /// (Linux); false otherwise, in which case the address is still foreign, just unmapped.</summary>
    private static bool TryMapPageAt(nuint address)
    {
        if (!OperatingSystem.IsLinux()) return false;
        const int MapFixedNoReplace = 0x100000;
        void* mapped = LibC.Mmap((void*)address, 4096, LibC.ProtRead | LibC.ProtWrite,
            LibC.MapPrivate | LibC.MapAnonymous | MapFixedNoReplace, -1, 0);
        if (mapped == LibC.MapFailed) return false;
        if ((nuint)mapped == address) return true;
        LibC.Munmap(mapped, 4096); // an old kernel took the flag as a hint and mapped elsewhere
        return false;
    }

    /// <summary>Runs the probe with <c>SLABALLOC_CHECKED</c> set to <paramref name="checkedSetting"/> and no other SlabAlloc setting.</summary>
    private static ProbeResult RunProbe(string checkedSetting, params string[] args) =>
        ProbeProcess.Run(new Dictionary<string, string> { ["SLABALLOC_CHECKED"] = checkedSetting }, args);
}
