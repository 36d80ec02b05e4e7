using SlabAlloc.Memory;

namespace SlabAlloc.Tests.Memory;

/// <summary>The registry's values and its superslab bits. In the portable platform layer there is no bitmap, and
/// the same facts about <see cref="Registry.IsSuperslab"/> are answered by the radix map.</summary>
public sealed unsafe class RegistryTests : IDisposable
{
    // Made-up granules inside a hole no mapping can take: values are only numbers here, nothing is
    // touched, and no real superslab's entry can be overwritten or cleared. One hole holds a whole
    // registry leaf (32 GiB) aligned to one, so the leaf test's granules share a leaf that no real
    // block uses (fresh unless an earlier hole at the same address installed it); the bitmap tests use
    // 64-granule words of their own.
    private static readonly nuint LeafBytes = (nuint)1 << (Geometry.SuperslabShift + 13);
    private readonly AddressHole _hole = new(LeafBytes, LeafBytes);
    private nuint Probe => _hole.Base + (nuint)64 * Geometry.SuperslabBytes + 5 * Geometry.SuperslabBytes;

    public void Dispose() => _hole.Dispose();

    [Fact]
    public void SetLookupAndClearAGranule()
    {
        Assert.Equal(0u, Registry.Lookup((void*)Probe));
        Assert.True(Registry.TrySet(Probe, Registry.LargeValue(3)));
        Assert.Equal(Registry.LargeValue(3), Registry.Lookup((void*)(Probe + 12345)));
        Assert.Equal(Registry.LargeValue(3), Registry.Lookup((void*)(Probe + Geometry.SuperslabBytes - 1)));
        Assert.Equal(0u, Registry.Lookup((void*)(Probe + Geometry.SuperslabBytes)));
        Registry.Clear(Probe);
        Assert.Equal(0u, Registry.Lookup((void*)Probe));
    }

    [Fact]
    public void AddressesOutsideTheUserHalfAreNeverOurs()
    {
        Assert.Equal(0u, Registry.Lookup((void*)0xffff_8000_0000_1000));
        Assert.Equal(0u, Registry.Lookup((void*)(1UL << 47)));
        Assert.Equal(0u, Registry.Lookup(null));
        Assert.False(Registry.IsSuperslab((void*)0xffff_8000_0000_1000));
        Assert.False(Registry.IsSuperslab((void*)(1UL << 47)));
        Assert.False(Registry.IsSuperslab((void*)ulong.MaxValue));
        Assert.False(Registry.IsSuperslab(null));
    }

    [Fact]
    public void TheSuperslabBitFollowsTheValueOfItsGranuleOnly()
    {
        // Granules that share a bitmap word with the probe (64 granules per word) keep their own bits.
        nuint neighbour = Probe + Geometry.SuperslabBytes;
        Assert.True(Registry.TrySet(Probe, Registry.SuperslabValue));
        Assert.True(Registry.TrySet(neighbour, Registry.LargeValue(0)));
        Assert.True(Registry.IsSuperslab((void*)Probe));
        Assert.True(Registry.IsSuperslab((void*)(Probe + Geometry.SuperslabBytes - 1)));
        Assert.False(Registry.IsSuperslab((void*)neighbour));
        Assert.False(Registry.IsSuperslab((void*)(Probe - 1)));
        Assert.True(Registry.TrySet(neighbour, Registry.SuperslabValue));
        Registry.Clear(Probe);
        Assert.False(Registry.IsSuperslab((void*)Probe));
        Assert.True(Registry.IsSuperslab((void*)neighbour));
        Registry.Clear(neighbour);
        Assert.False(Registry.IsSuperslab((void*)neighbour));
        Assert.Equal(0u, Registry.Lookup((void*)neighbour));
    }

    [Fact]
    public void ConcurrentBitChangesInOneWordLoseNothing()
    {
        // Four threads each own 16 granules of one bitmap word and set and clear them over and over; at
        // the end each granule's bit must be exactly its own last write.
        const int Threads = 4, PerThread = 16, Rounds = 2000;
        nuint wordBase = _hole.Base + (nuint)128 * Geometry.SuperslabBytes; // a word of its own
        using var start = new Barrier(Threads);
        var threads = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
        {
            start.SignalAndWait();
            for (int r = 0; r < Rounds; r++)
                for (int i = 0; i < PerThread; i++)
                {
                    nuint g = wordBase + (nuint)(t * PerThread + i) * Geometry.SuperslabBytes;
                    if ((r + i) % 2 == 0) Assert.True(Registry.TrySet(g, Registry.SuperslabValue));
                    else Registry.Clear(g);
                }
        })).ToArray();
        foreach (Thread th in threads) th.Start();
        foreach (Thread th in threads) th.Join();
        for (int t = 0; t < Threads; t++)
            for (int i = 0; i < PerThread; i++)
            {
                nuint g = wordBase + (nuint)(t * PerThread + i) * Geometry.SuperslabBytes;
                bool lastSet = (Rounds - 1 + i) % 2 == 0;
                Assert.Equal(lastSet, Registry.IsSuperslab((void*)g));
                Registry.Clear(g);
            }
    }

    [Fact]
    public void ConcurrentLeafInstallationKeepsEveryValue()
    {
        // Several threads set granules under the same fresh leaf at once; every value must survive.
        const int Threads = 4, PerThread = 64;
        nuint leafBase = _hole.Base;
        using var start = new Barrier(Threads);
        var threads = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
        {
            start.SignalAndWait();
            for (int i = 0; i < PerThread; i++)
                Assert.True(Registry.TrySet(leafBase + ((nuint)(t * PerThread + i) << Geometry.SuperslabShift), (uint)(2 * (t * PerThread + i + 1))));
        })).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        for (int k = 0; k < Threads * PerThread; k++)
        {
            nuint g = leafBase + ((nuint)k << Geometry.SuperslabShift);
            Assert.Equal((uint)(2 * (k + 1)), Registry.Lookup((void*)g));
            Registry.Clear(g);
        }
    }
}
