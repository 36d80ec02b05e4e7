using System.Runtime.InteropServices;
using SlabAlloc.Tests.Model;

namespace SlabAlloc.Tests.Api;

/// <summary>
/// The public contract of <see cref="SlabMemory"/>: the semantics of
/// <see cref="NativeMemory"/>, member by member, plus SlabAlloc's own members
/// (<see cref="SlabMemory.UsableSize"/>, <see cref="SlabMemory.GetStatistics"/>, <see cref="SlabMemory.Trim"/>).
/// </summary>
/// <remarks>
/// Every test frees everything it allocates. The class is in the non-parallel
/// "SlabAlloc global state" collection because the statistics tests compare global counters exactly.
/// </remarks>
[Collection("SlabAlloc global state")]
public sealed unsafe class SlabMemoryContractTests
{
    private const nuint KiB = 1024;
    private const nuint MiB = 1024 * 1024;

    /// <summary>The boundary between slab blocks and large (mapped) blocks.</summary>
    private const nuint SmallLimit = 64 * KiB;

    private delegate void* Allocation();

    // ------------------------------------------------------------------ helpers

    /// <summary>The test pattern: byte i of a block stamped with seed s is (byte)(s + 31 i).</summary>
    private static class Pattern
    {
        public static byte At(byte seed, nuint offset) => (byte)(seed + offset * 31);

        public static void Stamp(void* block, nuint length, byte seed)
        {
            byte* p = (byte*)block;
            for (nuint i = 0; i < length; i++) p[i] = At(seed, i);
        }

        public static void Verify(void* block, nuint length, byte seed, string context)
        {
            byte* p = (byte*)block;
            for (nuint i = 0; i < length; i++)
            {
                if (p[i] != At(seed, i))
                    Assert.Fail($"{context}: byte {i} of {length} at 0x{(nuint)block:x} is 0x{p[i]:x2}, expected 0x{At(seed, i):x2}.");
            }
        }
    }

    private static void AssertAllBytes(void* block, nuint length, byte expected, string context)
    {
        byte* p = (byte*)block;
        for (nuint i = 0; i < length; i++)
        {
            if (p[i] != expected)
                Assert.Fail($"{context}: byte {i} of {length} at 0x{(nuint)block:x} is 0x{p[i]:x2}, expected 0x{expected:x2}.");
        }
    }

    private static void AssertAligned(void* p, nuint alignment, string context) =>
        Assert.True(((nuint)p & (alignment - 1)) == 0, $"{context}: 0x{(nuint)p:x} is not aligned to {alignment}.");

    /// <summary>Runs an allocation that must throw <typeparamref name="TException"/>. Should it return
    /// a block instead, the block is freed (so a failure does not leak) and the test fails.</summary>
    private static TException AssertAllocationThrows<TException>(Allocation allocation, string context) where TException : Exception
    {
        nint returned = 0;
        Exception? thrown = Record.Exception(() => { returned = (nint)allocation(); });
        if (thrown is null)
        {
            if (returned != 0) SlabMemory.Free((void*)returned);
            Assert.Fail($"{context}: expected {typeof(TException).Name}, but the call returned 0x{returned:x}.");
        }
        return Assert.IsAssignableFrom<TException>(thrown);
    }

    private static void FreeAll(IEnumerable<nint> blocks)
    {
        foreach (nint p in blocks) SlabMemory.Free((void*)p);
    }

    // ------------------------------------------------------------------ size 0

    [Fact]
    public void Alloc_of_zero_bytes_returns_distinct_non_null_pointers_that_can_be_freed()
    {
        var blocks = new List<nint>();
        for (int i = 0; i < 64; i++)
        {
            void* p = SlabMemory.Alloc(0);
            Assert.True(p != null, "Alloc(0) returned null.");
            blocks.Add((nint)p);
        }
        Assert.Equal(blocks.Count, blocks.Distinct().Count());
        FreeAll(blocks);
    }

    [Fact]
    public void AllocZeroed_of_zero_bytes_returns_distinct_non_null_pointers_that_can_be_freed()
    {
        var blocks = new List<nint>();
        for (int i = 0; i < 64; i++)
        {
            void* p = SlabMemory.AllocZeroed(0);
            Assert.True(p != null, "AllocZeroed(0) returned null.");
            blocks.Add((nint)p);
        }
        for (int i = 0; i < 8; i++)
        {
            void* p = SlabMemory.AllocZeroed(0, 0);
            Assert.True(p != null, "AllocZeroed(0, 0) returned null.");
            blocks.Add((nint)p);
        }
        Assert.Equal(blocks.Count, blocks.Distinct().Count());
        FreeAll(blocks);
    }

    [Theory]
    [InlineData(1UL)]
    [InlineData(16UL)]
    [InlineData(64UL)]
    [InlineData(4096UL)]
    [InlineData(65536UL)]
    [InlineData(1UL << 20)]
    public void AlignedAlloc_of_zero_bytes_returns_distinct_aligned_non_null_pointers_that_can_be_freed(ulong alignment)
    {
        var blocks = new List<nint>();
        for (int i = 0; i < 16; i++)
        {
            void* p = SlabMemory.AlignedAlloc(0, (nuint)alignment);
            Assert.True(p != null, $"AlignedAlloc(0, {alignment}) returned null.");
            AssertAligned(p, (nuint)alignment, $"AlignedAlloc(0, {alignment})");
            blocks.Add((nint)p);
        }
        Assert.Equal(blocks.Count, blocks.Distinct().Count());
        foreach (nint p in blocks) SlabMemory.AlignedFree((void*)p);
    }

    // ------------------------------------------------------------------ null

    [Fact]
    public void Free_and_AlignedFree_of_null_do_nothing()
    {
        SlabStatistics before = SlabMemory.GetStatistics();

        SlabMemory.Free(null);
        SlabMemory.AlignedFree(null);

        SlabStatistics after = SlabMemory.GetStatistics();
        Assert.Equal(before.BlocksInUse, after.BlocksInUse);
        Assert.Equal(before.BytesInUse, after.BytesInUse);
    }

    [Fact]
    public void UsableSize_of_null_is_zero()
    {
        Assert.Equal((nuint)0, SlabMemory.UsableSize(null));
    }

    // ------------------------------------------------------------------ Realloc

    [Theory]
    [InlineData(0UL)]
    [InlineData(1UL)]
    [InlineData(100UL)]
    [InlineData(20000UL)]
    [InlineData(70000UL)]
    public void Realloc_of_null_allocates(ulong size)
    {
        void* p = SlabMemory.Realloc(null, (nuint)size);
        Assert.True(p != null, $"Realloc(null, {size}) returned null.");
        Assert.True(SlabMemory.UsableSize(p) >= (nuint)size);
        Pattern.Stamp(p, (nuint)size, 7);
        Pattern.Verify(p, (nuint)size, 7, $"Realloc(null, {size})");
        SlabMemory.Free(p);
    }

    [Fact]
    public void Realloc_keeps_the_common_prefix_across_size_classes_and_the_large_boundary()
    {
        nuint[] sizes =
        [
            1, 17, 100, 1000, 1024, 1025, 5000, 20000, SmallLimit - 1, SmallLimit, SmallLimit + 1,
            70000, 3_000_000, 2_000_000, 70000, SmallLimit, 200, 8, 1,
        ];
        const byte Seed = 0x5A;

        nuint size = sizes[0];
        void* p = SlabMemory.Alloc(size);
        Pattern.Stamp(p, size, Seed);
        foreach (nuint next in sizes.Skip(1))
        {
            p = SlabMemory.Realloc(p, next);
            Assert.True(p != null, $"Realloc({size} -> {next}) returned null.");
            Assert.True(SlabMemory.UsableSize(p) >= next, $"Realloc({size} -> {next}): usable size {SlabMemory.UsableSize(p)}.");
            Pattern.Verify(p, Math.Min(size, next), Seed, $"Realloc({size} -> {next})");
            Pattern.Stamp(p, next, Seed);
            size = next;
        }
        SlabMemory.Free(p);
    }

    [Theory]
    [InlineData(1UL)]
    [InlineData(1000UL)]
    [InlineData(20000UL)]
    [InlineData(200000UL)]
    public void Realloc_to_zero_bytes_returns_a_non_null_block_that_can_be_freed(ulong size)
    {
        void* p = SlabMemory.Alloc((nuint)size);
        void* q = SlabMemory.Realloc(p, 0);
        Assert.True(q != null, $"Realloc(Alloc({size}), 0) returned null.");
        SlabMemory.Free(q);
    }

    // ------------------------------------------------------------------ alignment

    public static TheoryData<ulong, ulong> AlignedAllocCases()
    {
        var data = new TheoryData<ulong, ulong>();
        ulong[] sizes = [0, 1, 100, 5000, 70000, 5_000_000];
        var alignments = new List<ulong>();
        for (int shift = 0; shift <= 22; shift++) alignments.Add(1UL << shift); // 1 B .. 4 MiB
        alignments.Add(16UL << 20);                                             // 16 MiB
        foreach (ulong alignment in alignments)
            foreach (ulong size in sizes)
                data.Add(alignment, size);
        return data;
    }

    [Theory]
    [MemberData(nameof(AlignedAllocCases))]
    public void AlignedAlloc_returns_an_aligned_writable_block_freeable_by_AlignedFree_and_Free(ulong alignment, ulong size)
    {
        nuint a = (nuint)alignment, n = (nuint)size;
        string call = $"AlignedAlloc({size}, {alignment})";

        void* first = SlabMemory.AlignedAlloc(n, a);
        void* second = SlabMemory.AlignedAlloc(n, a);
        Assert.True(first != null && second != null, $"{call} returned null.");
        Assert.True(first != second, $"{call} returned the same block twice.");
        foreach (nint block in new[] { (nint)first, (nint)second })
        {
            AssertAligned((void*)block, a, call);
            nuint usable = SlabMemory.UsableSize((void*)block);
            Assert.True(usable >= n, $"{call}: usable size {usable} is below the request.");
        }
        Pattern.Stamp(first, n, 1);
        Pattern.Stamp(second, n, 2);
        Pattern.Verify(first, n, 1, call);
        Pattern.Verify(second, n, 2, call);

        SlabMemory.AlignedFree(first);
        SlabMemory.Free(second);
    }

    [Theory]
    [InlineData(32UL)]
    [InlineData(256UL)]
    [InlineData(4096UL)]
    [InlineData(65536UL)]
    [InlineData(1UL << 20)]
    [InlineData(4UL << 20)]
    public void AlignedRealloc_keeps_alignment_and_contents_growing_and_shrinking(ulong alignment)
    {
        nuint a = (nuint)alignment;
        nuint[] sizes = [1, 100, 1000, 5000, 20000, SmallLimit, 70000, 3_000_000, 2_000_000, 200, 8, 1, 300];
        const byte Seed = 0xC3;

        nuint size = 10;
        void* p = SlabMemory.AlignedRealloc(null, size, a); // null: allocates
        Assert.True(p != null);
        AssertAligned(p, a, $"AlignedRealloc(null, {size}, {alignment})");
        Pattern.Stamp(p, size, Seed);
        foreach (nuint next in sizes)
        {
            string call = $"AlignedRealloc({size} -> {next}, {alignment})";
            p = SlabMemory.AlignedRealloc(p, next, a);
            Assert.True(p != null, $"{call} returned null.");
            AssertAligned(p, a, call);
            Assert.True(SlabMemory.UsableSize(p) >= next, $"{call}: usable size {SlabMemory.UsableSize(p)}.");
            Pattern.Verify(p, Math.Min(size, next), Seed, call);
            Pattern.Stamp(p, next, Seed);
            size = next;
        }
        SlabMemory.AlignedFree(p);
    }

    [Theory]
    [InlineData(32UL)]
    [InlineData(65536UL)]
    [InlineData(1UL << 20)]
    [InlineData(4UL << 20)]
    [InlineData(16UL << 20)]
    public void AlignedRealloc_to_zero_bytes_returns_an_aligned_block_that_can_be_freed(ulong alignment)
    {
        nuint a = (nuint)alignment;
        void* p = SlabMemory.AlignedAlloc(1000, a);
        void* q = SlabMemory.AlignedRealloc(p, 0, a);
        Assert.True(q != null, $"AlignedRealloc(p, 0, {alignment}) returned null.");
        AssertAligned(q, a, $"AlignedRealloc(p, 0, {alignment})");
        SlabMemory.AlignedFree(q); // a zero-byte block is a block: it must be accepted back
    }

    public static TheoryData<ulong> BadAlignments() => new()
    {
        0UL, 3UL, 6UL, 12UL, 100UL, 24UL, (1UL << 40) | 8UL, (1UL << 63) | 1UL, ulong.MaxValue,
    };

    [Theory]
    [MemberData(nameof(BadAlignments))]
    public void AlignedAlloc_rejects_an_alignment_that_is_not_a_power_of_two(ulong alignment)
    {
        var ex = AssertAllocationThrows<ArgumentException>(() => SlabMemory.AlignedAlloc(100, (nuint)alignment), $"AlignedAlloc(100, {alignment})");
        Assert.Equal("alignment", ex.ParamName);
    }

    [Theory]
    [MemberData(nameof(BadAlignments))]
    public void AlignedRealloc_rejects_an_alignment_that_is_not_a_power_of_two_and_keeps_the_block(ulong alignment)
    {
        var ex = AssertAllocationThrows<ArgumentException>(() => SlabMemory.AlignedRealloc(null, 100, (nuint)alignment), $"AlignedRealloc(null, 100, {alignment})");
        Assert.Equal("alignment", ex.ParamName);

        void* p = SlabMemory.AlignedAlloc(100, 64);
        Pattern.Stamp(p, 100, 9);
        ex = AssertAllocationThrows<ArgumentException>(() => SlabMemory.AlignedRealloc(p, 1000, (nuint)alignment), $"AlignedRealloc(p, 1000, {alignment})");
        Assert.Equal("alignment", ex.ParamName);
        Pattern.Verify(p, 100, 9, "the block after a rejected AlignedRealloc");
        SlabMemory.AlignedFree(p);
    }

    // ------------------------------------------------------------------ impossible sizes

    [Theory]
    [InlineData(ulong.MaxValue)]
    [InlineData(ulong.MaxValue - 4096)]
    [InlineData(ulong.MaxValue - 65536)]
    [InlineData(1UL << 50)]
    [InlineData(1UL << 63)]
    public void Alloc_of_an_impossible_size_throws_OutOfMemoryException(ulong size)
    {
        AssertAllocationThrows<OutOfMemoryException>(() => SlabMemory.Alloc((nuint)size), $"Alloc({size})");
    }

    [Theory]
    [InlineData(ulong.MaxValue)]
    [InlineData(ulong.MaxValue - 4096)]
    [InlineData(1UL << 50)]
    public void AllocZeroed_of_an_impossible_size_throws_OutOfMemoryException(ulong size)
    {
        AssertAllocationThrows<OutOfMemoryException>(() => SlabMemory.AllocZeroed((nuint)size), $"AllocZeroed({size})");
    }

    [Theory]
    [InlineData(ulong.MaxValue, 64UL)]
    [InlineData(ulong.MaxValue, 1UL)]
    [InlineData(ulong.MaxValue, 1UL << 20)]
    [InlineData(1UL << 50, 4096UL)]
    [InlineData(100UL, 1UL << 50)]
    public void AlignedAlloc_of_an_impossible_size_or_alignment_throws_OutOfMemoryException(ulong size, ulong alignment)
    {
        AssertAllocationThrows<OutOfMemoryException>(() => SlabMemory.AlignedAlloc((nuint)size, (nuint)alignment), $"AlignedAlloc({size}, {alignment})");
    }

    [Theory]
    [InlineData(100UL)]
    [InlineData(20000UL)]
    [InlineData(200000UL)]
    public void Realloc_to_an_impossible_size_throws_OutOfMemoryException_and_leaves_the_block_intact(ulong size)
    {
        nuint n = (nuint)size;
        void* p = SlabMemory.Alloc(n);
        nuint usable = SlabMemory.UsableSize(p);
        Pattern.Stamp(p, n, 0x33);

        AssertAllocationThrows<OutOfMemoryException>(() => SlabMemory.Realloc(p, nuint.MaxValue), $"Realloc(Alloc({size}), nuint.MaxValue)");
        AssertAllocationThrows<OutOfMemoryException>(() => SlabMemory.AlignedRealloc(p, nuint.MaxValue, 64), $"AlignedRealloc(Alloc({size}), nuint.MaxValue, 64)");

        Assert.Equal(usable, SlabMemory.UsableSize(p));
        Pattern.Verify(p, n, 0x33, "the block after a failed Realloc");
        SlabMemory.Free(p);
    }

    [Theory]
    [InlineData(1UL << 33, 1UL << 33)]
    [InlineData(ulong.MaxValue, 2UL)]
    [InlineData(2UL, ulong.MaxValue)]
    [InlineData((ulong.MaxValue / 16) + 1, 16UL)]
    public void Alloc_and_AllocZeroed_of_an_overflowing_element_count_throw_OutOfMemoryException(ulong count, ulong size)
    {
        AssertAllocationThrows<OutOfMemoryException>(() => SlabMemory.Alloc((nuint)count, (nuint)size), $"Alloc({count}, {size})");
        AssertAllocationThrows<OutOfMemoryException>(() => SlabMemory.AllocZeroed((nuint)count, (nuint)size), $"AllocZeroed({count}, {size})");
    }

    // ------------------------------------------------------------------ AllocZeroed

    /// <summary>Dirties a batch of blocks, frees them, then allocates zeroed blocks of the same size
    /// round after round (dirtying and freeing them again) until freed dirty blocks have been handed
    /// out again, checking each zeroed block.</summary>
    private static void AssertZeroedAllocationsReuseDirtyBlocksAsZero(Allocation allocZeroed, Allocation alloc, nuint size, string call)
    {
        const int Batch = 64;
        const int MaxRounds = 64;
        var dirty = new HashSet<nint>();
        var blocks = new nint[Batch];

        for (int i = 0; i < Batch; i++)
        {
            void* p = alloc();
            Dirty(p, 0xFF);
            blocks[i] = (nint)p;
        }
        FreeAll(blocks);

        int reused = 0;
        for (int round = 0; round < MaxRounds && reused < Batch; round++)
        {
            for (int i = 0; i < Batch; i++)
            {
                void* p = allocZeroed();
                Assert.True(p != null, $"{call} returned null.");
                if (dirty.Contains((nint)p)) reused++;
                AssertAllBytes(p, size, 0, $"{call}, round {round}");
                blocks[i] = (nint)p;
            }
            for (int i = 0; i < Batch; i++) Dirty((void*)blocks[i], 0xFF);
            FreeAll(blocks);
        }
        Assert.True(reused > 0, $"{call}: no freed block was handed out again, so zeroing was not tested.");

        void Dirty(void* p, byte value)
        {
            NativeMemory.Fill(p, SlabMemory.UsableSize(p), value);
            dirty.Add((nint)p);
        }
    }

    [Theory]
    [InlineData(1UL)]
    [InlineData(16UL)]
    [InlineData(100UL)]
    [InlineData(1000UL)]
    [InlineData(5000UL)]
    [InlineData(20000UL)]
    [InlineData(65536UL)]
    [InlineData(200000UL)]
    public void AllocZeroed_returns_zeroed_memory_even_when_it_reuses_a_dirty_block(ulong size)
    {
        nuint n = (nuint)size;
        AssertZeroedAllocationsReuseDirtyBlocksAsZero(() => SlabMemory.AllocZeroed(n), () => SlabMemory.Alloc(n), n, $"AllocZeroed({size})");
    }

    [Theory]
    [InlineData(3UL, 7UL)]
    [InlineData(10UL, 100UL)]
    [InlineData(4UL, 5000UL)]
    [InlineData(1000UL, 200UL)]
    public void AllocZeroed_with_an_element_count_returns_zeroed_memory_even_when_it_reuses_a_dirty_block(ulong count, ulong size)
    {
        nuint c = (nuint)count, s = (nuint)size;
        AssertZeroedAllocationsReuseDirtyBlocksAsZero(() => SlabMemory.AllocZeroed(c, s), () => SlabMemory.Alloc(c, s), c * s, $"AllocZeroed({count}, {size})");
    }

    // ------------------------------------------------------------------ sizes

    [Theory]
    [InlineData(0UL, 100UL)]
    [InlineData(100UL, 0UL)]
    [InlineData(1UL, 1UL)]
    [InlineData(3UL, 7UL)]
    [InlineData(10UL, 100UL)]
    [InlineData(16UL, 4096UL)]
    [InlineData(1000UL, 70UL)]
    [InlineData(7UL, 100000UL)]
    public void Alloc_with_an_element_count_gives_count_times_size_usable_bytes(ulong count, ulong size)
    {
        nuint total = (nuint)(count * size);
        void* p = SlabMemory.Alloc((nuint)count, (nuint)size);
        Assert.True(p != null, $"Alloc({count}, {size}) returned null.");
        Assert.True(SlabMemory.UsableSize(p) >= total, $"Alloc({count}, {size}): usable size {SlabMemory.UsableSize(p)} is below {total}.");
        Pattern.Stamp(p, total, 0x11);
        Pattern.Verify(p, total, 0x11, $"Alloc({count}, {size})");
        SlabMemory.Free(p);
    }

    public static TheoryData<ulong> UsableSizeCases() => new()
    {
        0UL, 1UL, 8UL, 15UL, 16UL, 17UL, 100UL, 1000UL, 1023UL, 1024UL, 1025UL, 1500UL, 4096UL, 8191UL, 8192UL, 8193UL,
        20000UL, 40000UL, 65535UL, 65536UL, 65537UL, 70000UL, 100000UL, 1_000_000UL, 4UL << 20, (4UL << 20) + 1,
    };

    [Theory]
    [MemberData(nameof(UsableSizeCases))]
    public void UsableSize_is_at_least_the_request_and_every_usable_byte_is_writable(ulong size)
    {
        nuint n = (nuint)size;
        void* p = SlabMemory.Alloc(n);
        nuint usable = SlabMemory.UsableSize(p);
        Assert.True(usable >= n, $"Alloc({size}): usable size {usable} is below the request.");
        Pattern.Stamp(p, usable, 0x42);
        Pattern.Verify(p, usable, 0x42, $"Alloc({size}) over its {usable} usable bytes");
        Assert.Equal(usable, SlabMemory.UsableSize(p));
        SlabMemory.Free(p);
    }

    [Theory]
    [InlineData(0UL)]
    [InlineData(1UL)]
    [InlineData(17UL)]
    [InlineData(1000UL)]
    [InlineData(5000UL)]
    [InlineData(20000UL)]
    [InlineData(65536UL)]
    [InlineData(70000UL)]
    public void Alloc_and_AllocZeroed_return_16_byte_aligned_blocks(ulong size)
    {
        void* p = SlabMemory.Alloc((nuint)size);
        void* q = SlabMemory.AllocZeroed((nuint)size);
        AssertAligned(p, 16, $"Alloc({size})");
        AssertAligned(q, 16, $"AllocZeroed({size})");
        SlabMemory.Free(p);
        SlabMemory.Free(q);
    }

    // ------------------------------------------------------------------ distinctness

    [Fact]
    public void Ten_thousand_live_blocks_of_mixed_sizes_are_distinct_and_do_not_overlap()
    {
        const int Count = 10_000;
        var random = new Random(20240611);
        var blocks = new (nint Address, nuint Usable, nuint Size)[Count];
        var addresses = new HashSet<nint>();

        for (int i = 0; i < Count; i++)
        {
            nuint size = (i % 1000) switch
            {
                999 => (nuint)random.Next(65537, 300_000),        // large
                >= 950 => (nuint)random.Next(8193, 65537),        // medium slabs
                >= 700 => (nuint)random.Next(1025, 8193),         // coarse classes
                _ => (nuint)random.Next(0, 1025),                 // fine classes, 0 included
            };
            void* p = SlabMemory.Alloc(size);
            Assert.True(p != null, $"Alloc({size}) returned null.");
            Assert.True(addresses.Add((nint)p), $"Alloc({size}) returned 0x{(nint)p:x}, which is already live.");
            blocks[i] = ((nint)p, SlabMemory.UsableSize(p), size);
            Pattern.Stamp(p, size, (byte)i);
        }

        var byAddress = blocks.OrderBy(b => (nuint)b.Address).ToArray();
        for (int i = 0; i + 1 < byAddress.Length; i++)
        {
            var (a, b) = (byAddress[i], byAddress[i + 1]);
            Assert.True((nuint)a.Address + a.Usable <= (nuint)b.Address,
                $"Block 0x{a.Address:x} (+{a.Usable} usable) overlaps block 0x{b.Address:x}.");
        }

        for (int i = 0; i < Count; i++)
            Pattern.Verify((void*)blocks[i].Address, blocks[i].Size, (byte)i, $"block {i} after all were allocated");

        FreeAll(blocks.Select(b => b.Address));
    }

    // ------------------------------------------------------------------ statistics

    [Theory]
    [InlineData(48UL, 100)]
    [InlineData(3000UL, 100)]
    [InlineData(20000UL, 50)]
    [InlineData(100000UL, 20)]
    public void Statistics_count_exactly_the_blocks_and_usable_bytes_in_use(ulong size, int count)
    {
        SlabStatistics before = SlabMemory.GetStatistics();

        var blocks = new nint[count];
        long usableTotal = 0;
        for (int i = 0; i < count; i++)
        {
            void* p = SlabMemory.Alloc((nuint)size);
            blocks[i] = (nint)p;
            usableTotal += (long)SlabMemory.UsableSize(p);
        }
        if (size <= SmallLimit) Assert.Equal((long)SlabMemory.UsableSize((void*)blocks[0]) * count, usableTotal);

        SlabStatistics during = SlabMemory.GetStatistics();
        Assert.Equal(before.BlocksInUse + count, during.BlocksInUse);
        Assert.Equal(before.BytesInUse + usableTotal, during.BytesInUse);
        Assert.True(during.BytesRequestedTotal >= before.BytesRequestedTotal,
            "BytesRequestedTotal is a running total and never decreases.");

        FreeAll(blocks);

        SlabStatistics after = SlabMemory.GetStatistics();
        Assert.Equal(before.BlocksInUse, after.BlocksInUse);
        Assert.Equal(before.BytesInUse, after.BytesInUse);
    }

    // ------------------------------------------------------------------ Trim

    [Fact]
    public void Trim_after_everything_is_freed_leaves_the_allocator_usable()
    {
        nuint[] sizes = [0, 16, 100, 1000, 5000, 20000, SmallLimit, 70000, 1_000_000];
        SlabStatistics before = SlabMemory.GetStatistics();

        for (int pass = 0; pass < 3; pass++)
        {
            var blocks = new List<nint>();
            for (int copy = 0; copy < 40; copy++)
            {
                foreach (nuint size in sizes)
                {
                    void* p = SlabMemory.Alloc(size);
                    Pattern.Stamp(p, size, (byte)(copy + pass));
                    blocks.Add((nint)p);
                }
            }
            int k = 0;
            for (int copy = 0; copy < 40; copy++)
                foreach (nuint size in sizes)
                    Pattern.Verify((void*)blocks[k++], size, (byte)(copy + pass), $"pass {pass}, Alloc({size})");
            FreeAll(blocks);

            SlabMemory.Trim();

            SlabStatistics trimmed = SlabMemory.GetStatistics();
            Assert.Equal(before.BlocksInUse, trimmed.BlocksInUse);
            Assert.Equal(before.BytesInUse, trimmed.BytesInUse);
            Assert.Equal(0, trimmed.LargeCachedBytes);
        }

        void* last = SlabMemory.AllocZeroed(300);
        AssertAllBytes(last, 300, 0, "AllocZeroed after Trim");
        SlabMemory.Free(last);
    }
}
