using Xunit.Abstractions;
using SlabAlloc.Memory;
using SlabAlloc.Runtime;

namespace SlabAlloc.Tests.Reliability;

/// <summary>
/// Makes the platform layer refuse the n-th reservation (and all after it) at every point of a
/// workload that needs new superslabs, directory segments, registry leaves, thread caches and large
/// mappings, and checks that every caller up the stack fails cleanly: an OutOfMemoryException, no
/// leaked slot, superslab or block, no lock left held, and a working allocator once memory is back.
/// </summary>
[Collection("SlabAlloc global state")]
public sealed unsafe class FaultInjectionTests(ITestOutputHelper output)
{
    [Fact]
    public void EveryReservationFailurePointLeavesTheAllocatorWhole()
    {
        SlabMemory.Trim();
        SlabStatistics baseline = SlabMemory.GetStatistics();
        long failuresBefore = TestHooks.ReservationsRefused;
        int outOfMemory = 0;
        // 24 failure points, each with its own workload; the long version repeats them with other seeds.
        int failurePoints = 24 * TestScale.Factor;
        for (int run = 0; run < failurePoints; run++)
        {
            int n = run % 24 + 1, seed = run + 1;
            var held = new List<nint>();
            var worker = new Thread(() =>
            {
                TestHooks.FailReservationsFrom(n);
                try { Workload(held, seed); }
                catch (OutOfMemoryException) { Interlocked.Increment(ref outOfMemory); }
                finally { TestHooks.StopFailingReservations(); }
            });
            worker.Start();
            worker.Join();

            // Everything that was handed out is intact and can be freed by another thread.
            foreach (nint p in held)
            {
                Assert.Equal((byte)p, *(byte*)p);
                SlabMemory.Free((void*)p);
            }
            AssertAllocatorWorksFromAnotherThread();
            SlabMemory.Trim();
            SlabStatistics s = SlabMemory.GetStatistics();
            Assert.Equal(baseline.BlocksInUse, s.BlocksInUse);
            Assert.Equal(baseline.BytesInUse, s.BytesInUse);
            Assert.Equal(baseline.LargeBlocks, s.LargeBlocks);
            Assert.Equal(0, s.SlabsFull + s.SlabsPartial + s.SlabsEmpty + s.SlabsReserved);
            Assert.True(s.Superslabs <= baseline.Superslabs, $"after failure point {n}: {s.Superslabs} superslabs mapped, {baseline.Superslabs} before");
        }
        output.WriteLine($"{TestHooks.ReservationsRefused - failuresBefore} reservations refused, {outOfMemory} workloads ended in OutOfMemoryException");
        Assert.True(TestHooks.ReservationsRefused - failuresBefore >= failurePoints, "every failure point was reached");
        Assert.True(outOfMemory >= failurePoints * 5 / 6, "the refusals surfaced as OutOfMemoryException");
    }

    /// <summary>Enough different classes, mid-size slabs and large blocks to need a dozen or more reservations.</summary>
    private static void Workload(List<nint> held, int seed)
    {
        var rng = new Random(seed);
        for (int i = 0; i < 400; i++)
        {
            nuint size = (i % 7) switch
            {
                0 => (nuint)rng.Next(64 * 1024 + 1, 3 * 1024 * 1024),
                1 or 2 => (nuint)rng.Next(8 * 1024, 64 * 1024),
                _ => (nuint)rng.Next(1, 4096),
            };
            void* p = (i % 11) == 0 ? SlabMemory.AlignedAlloc(size, 8192) : SlabMemory.Alloc(size);
            *(byte*)p = (byte)(nint)p;
            lock (held) held.Add((nint)p);
        }
    }

    private static void AssertAllocatorWorksFromAnotherThread()
    {
        // Would hang if a pool lock had been left held (the mutex pool), or throw if a CAS protocol was left half done.
        var t = new Thread(() =>
        {
            var blocks = new List<nint>();
            for (int i = 0; i < 300; i++) blocks.Add((nint)SlabMemory.Alloc((nuint)(16 + i * 211 % 70_000)));
            foreach (nint p in blocks) SlabMemory.Free((void*)p);
        });
        t.Start();
        Assert.True(t.Join(TimeSpan.FromSeconds(60)), "the allocator hung after an injected failure");
    }
}
