using System.Runtime.InteropServices;
using SlabAlloc.Memory;

namespace SlabAlloc.Tests.Memory;

/// <summary>Claims on made-up entries: through <see cref="Superslabs.TryClaimSlots"/>, which leaves the
/// process-wide count of empty superslabs alone (these entries are not in the directory, and the
/// class runs in parallel with the allocator's own tests).</summary>
public unsafe class SuperslabsTests
{
    private static SuperslabEntry* FakeEntry(ulong freeMask)
    {
        var e = (SuperslabEntry*)NativeMemory.AllocZeroed((nuint)sizeof(SuperslabEntry));
        e->FreeMask = (long)freeMask;
        return e;
    }

    [Fact]
    public void EntryLayoutKeepsSlabMetadataOnCacheLines()
    {
        Assert.Equal(128, sizeof(SlabMeta));
        Assert.Equal(0, sizeof(SuperslabEntry) % 64);
        var e = FakeEntry(0);
        Assert.Equal(0, ((nint)SuperslabEntry.Slab(e, 0) - (nint)e) % 64);
        Assert.Equal(128, (nint)SuperslabEntry.Slab(e, 1) - (nint)SuperslabEntry.Slab(e, 0));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(Geometry.MediumSpanSlots)]
    public void FindSpanFindsAlignedFreeRunsAndNeverTheHeaderSlot(int span)
    {
        Assert.Equal(span == 1 ? 1 : span, Superslabs.FindSpan(Geometry.AllSlotsFree, span));
        Assert.Equal(-1, Superslabs.FindSpan(0, span));
        ulong onlyLastGroup = Superslabs.SpanBits(64 - span, span);
        Assert.Equal(64 - span, Superslabs.FindSpan(onlyLastGroup, span));
        if (span > 1) Assert.Equal(-1, Superslabs.FindSpan(onlyLastGroup >> 1, span)); // misaligned run
    }

    [Fact]
    public void ConcurrentClaimsTakeEverySlotExactlyOnce()
    {
        var e = FakeEntry(Geometry.AllSlotsFree);
        const int Threads = 4;
        var claimed = new List<int>[Threads];
        int tookEmpty = 0;
        using var start = new Barrier(Threads);
        var threads = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
        {
            claimed[t] = new List<int>();
            int failures = 0;
            start.SignalAndWait();
            while (true)
            {
                int span = (claimed[t].Count + t) % 3 == 0 ? Geometry.MediumSpanSlots : 1;
                int slot = Superslabs.TryClaimSlots(e, span, residentOnly: false, ref failures, out bool wasEmpty);
                if (slot < 0 && span > 1) slot = Superslabs.TryClaimSlots(e, span = 1, residentOnly: false, ref failures, out wasEmpty);
                if (slot < 0) break;
                if (wasEmpty) Interlocked.Increment(ref tookEmpty);
                for (int i = slot; i < slot + span; i++) claimed[t].Add(i);
            }
        })).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();

        var all = claimed.SelectMany(c => c).OrderBy(i => i).ToArray();
        Assert.Equal(Enumerable.Range(1, 63), all);  // every slot but the header, once
        Assert.Equal(0, e->FreeMask);
        Assert.Equal(1, tookEmpty);                  // exactly one claim found it all free
    }

    [Theory]
    [InlineData(1, 37)]
    [InlineData(Geometry.MediumSpanSlots, 40)]
    public void AClaimTakesAResidentSpanFirstAndClearsItsMarks(int span, int residentSlot)
    {
        var e = FakeEntry(Geometry.AllSlotsFree & ~Superslabs.SpanBits(48, 8)); // slots 48-55 claimed by someone
        ulong residentBits = Superslabs.SpanBits(residentSlot, span);
        // Slots 48-55 marked too: a mark on a claimed slot means nothing and must not be taken.
        e->ResidentMask = (long)(residentBits | Superslabs.SpanBits(48, 8));
        e->AgedMask = (long)residentBits;
        int failures = 0;
        Assert.Equal(residentSlot, Superslabs.TryClaimSlots(e, span, residentOnly: true, ref failures, out bool wasEmpty));
        Assert.False(wasEmpty);
        Assert.Equal(0UL, (ulong)e->ResidentMask & residentBits);
        Assert.Equal(0, e->AgedMask);
        Assert.Equal(Superslabs.SpanBits(48, 8), (ulong)e->ResidentMask); // the claimed slots' marks stay, unused
        // No resident span left: only a claim that may take any span gets one, the lowest free.
        Assert.Equal(-1, Superslabs.TryClaimSlots(e, span, residentOnly: true, ref failures, out _));
        Assert.Equal(span == 1 ? 1 : span, Superslabs.TryClaimSlots(e, span, residentOnly: false, ref failures, out _));
        Assert.Equal(0, failures);
    }

    [Fact]
    public void ConcurrentClaimsPreferringResidentSpansStillTakeEverySlotExactlyOnce()
    {
        var e = FakeEntry(Geometry.AllSlotsFree);
        e->ResidentMask = unchecked((long)0xF0F0_F0F0_F0F0_F0F0UL);
        const int Threads = 4;
        var claimed = new List<int>[Threads];
        using var start = new Barrier(Threads);
        var threads = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
        {
            claimed[t] = new List<int>();
            int failures = 0;
            start.SignalAndWait();
            for (int round = 0; ; round++)
            {
                int slot = Superslabs.TryClaimSlots(e, 1, residentOnly: (round + t) % 2 == 0, ref failures, out _);
                if (slot < 0) slot = Superslabs.TryClaimSlots(e, 1, residentOnly: false, ref failures, out _);
                if (slot < 0) break;
                claimed[t].Add(slot);
            }
        })).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();

        Assert.Equal(Enumerable.Range(1, 63), claimed.SelectMany(c => c).OrderBy(i => i));
        Assert.Equal(0, e->FreeMask);
        Assert.Equal(0, e->ResidentMask); // every claim cleared the marks of what it took
    }

    [Fact]
    public void ClaimsOnAZeroMaskFail()
    {
        var e = FakeEntry(0); // a retired entry, or one not published yet
        int failures = 0;
        Assert.Equal(-1, Superslabs.TryClaimSlots(e, 1, residentOnly: false, ref failures, out bool wasEmpty));
        Assert.False(wasEmpty);
        Assert.Equal(0, failures);
    }
}
