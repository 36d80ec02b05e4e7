using SlabAlloc.Memory;

namespace SlabAlloc.Tests.Memory;

/// <summary><c>Free</c>'s validation (<see cref="SlabMeta.BlockIndexOf"/>): a pointer is accepted exactly when
/// it is the start of a block of its slab that was carved, for every class, every offset in and around the
/// slab, and several carve levels.</summary>
public sealed unsafe class BlockStartTests
{
    // Never dereferenced: Format and the validation only do arithmetic on the slab's start.
    private static readonly byte* FakeStart = (byte*)0x7100_0001_0000;

    public static TheoryData<int> Classes()
    {
        var data = new TheoryData<int>();
        for (int c = 0; c < SizeClasses.Count; c++) data.Add(c);
        return data;
    }

    [Theory]
    [MemberData(nameof(Classes))]
    public void EveryOffsetIsJudgedByTheDefinition(int sizeClass)
    {
        SlabMeta meta = default;
        SlabMeta* s = &meta;
        SlabMeta.Format(s, FakeStart, sizeClass, globalIndex: 1);
        long block = SizeClasses.BlockBytes(sizeClass);
        long slabBytes = (long)SizeClasses.SpanSlots(sizeClass) * (long)Geometry.SlotBytes;
        foreach (int carved in new[] { 0, 1, s->Capacity / 2 + 1, s->Capacity })
        {
            s->Carved = carved;
            for (long offset = -block; offset < slabBytes + block; offset++)
            {
                bool expected = offset >= 0 && offset % block == 0 && offset / block < carved;
                void* p = FakeStart + offset;
                if (SlabMeta.BlockIndexOf(s, p) != (expected ? (int)(offset / block) : -1))
                    Assert.Fail($"class {sizeClass} ({block} B), carved {carved}: offset {offset} has index {SlabMeta.BlockIndexOf(s, p)}");
            }
        }
    }

    [Fact]
    public void OffsetsBeyondFourGigabytesAreRejectedThoughTheirLowBitsMatch()
    {
        SlabMeta meta = default;
        SlabMeta* s = &meta;
        SlabMeta.Format(s, FakeStart, 3, globalIndex: 1);
        s->Carved = s->Capacity;
        // Low 32 bits 0 and 64: block starts, were it not for the high bits.
        Assert.Equal(-1, SlabMeta.BlockIndexOf(s, FakeStart + (1L << 32)));
        Assert.Equal(-1, SlabMeta.BlockIndexOf(s, FakeStart + (1L << 32) + 64));
        Assert.Equal(-1, SlabMeta.BlockIndexOf(s, FakeStart - (1L << 32)));
        Assert.Equal(1, SlabMeta.BlockIndexOf(s, FakeStart + 64));
    }
}
