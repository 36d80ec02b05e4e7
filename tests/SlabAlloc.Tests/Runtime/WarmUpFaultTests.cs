using SlabAlloc.Runtime;
using SlabAlloc.Tests.Reliability;

namespace SlabAlloc.Tests.Runtime;

/// <summary>
/// The start-up warm-up meeting a refused reservation (the platform layer's fault injector, as in
/// <see cref="FaultInjectionTests"/>): it must end quietly, on its own thread, with everything it
/// allocated freed, its slabs handed back and nothing left in the large-block cache.
/// </summary>
[Collection("SlabAlloc global state")]
public sealed class WarmUpFaultTests
{
    [Fact]
    public void ARefusedReservation_EndsTheWarmUpWithNothingLeftBehind()
    {
        SlabMemory.Trim();
        SlabStatistics baseline = SlabMemory.GetStatistics();
        var refusedAt = new List<int>();
        // Every run maps at least the large block (Trim emptied the cache), so the first reservation of
        // each run is always one of the warm-up's; later ones depend on what the pool still holds.
        for (int n = 1; n <= 6; n++)
        {
            Exception? escaped = null;
            long failuresBefore = TestHooks.ReservationsRefused;
            var warmUp = new Thread(() =>
            {
                TestHooks.FailReservationsFrom(n);
                try { WarmUp.Run(); }
                catch (Exception e) { escaped = e; }
                finally { TestHooks.StopFailingReservations(); }
            });
            warmUp.Start();
            warmUp.Join();
            Assert.Null(escaped);
            if (TestHooks.ReservationsRefused > failuresBefore) refusedAt.Add(n);

            SlabMemory.Trim();
            SlabStatistics s = SlabMemory.GetStatistics();
            Assert.Equal(baseline.BlocksInUse, s.BlocksInUse);
            Assert.Equal(baseline.BytesInUse, s.BytesInUse);
            Assert.Equal(baseline.LargeBlocks, s.LargeBlocks);
            Assert.Equal(0, s.LargeCachedBytes);
            Assert.Equal(0, s.SlabsFull + s.SlabsPartial + s.SlabsEmpty + s.SlabsReserved);
        }
        Assert.Contains(1, refusedAt);
    }

    [Fact]
    public void AFailureInTheMiddleOfAStep_FreesWhatTheStepHeld()
    {
        // Large blocks held at once each need a mapping of their own: refusing the third leaves two
        // allocated, which the warm-up's clean-up must free.
        SlabMemory.Trim();
        SlabStatistics baseline = SlabMemory.GetStatistics();
        long failuresBefore = TestHooks.ReservationsRefused;
        Exception? escaped = null;
        var warmUp = new Thread(() =>
        {
            TestHooks.FailReservationsFrom(3);
            try { WarmUp.Run([new WarmUp.Step(256 * 1024, 5)]); }
            catch (Exception e) { escaped = e; }
            finally { TestHooks.StopFailingReservations(); }
        });
        warmUp.Start();
        warmUp.Join();
        Assert.Null(escaped);
        Assert.True(TestHooks.ReservationsRefused > failuresBefore, "the third mapping was refused");
        SlabStatistics s = SlabMemory.GetStatistics();
        Assert.Equal(baseline.LargeBlocks, s.LargeBlocks);
        Assert.Equal(baseline.LargeBytes, s.LargeBytes);
        Assert.Equal(0, s.LargeCachedBytes);
    }

    [Fact]
    public void APlanHoldingMoreBlocksThanTheStackHas_IsRefused() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => WarmUp.Run([new WarmUp.Step(64, WarmUp.MaxBlocksPerStep + 1)]));

    [Fact]
    public void AWarmUpThatCompletes_LeavesNothingCachedOrInUse()
    {
        SlabMemory.Trim();
        SlabStatistics baseline = SlabMemory.GetStatistics();
        var warmUp = new Thread(WarmUp.Run);
        warmUp.Start();
        warmUp.Join();
        SlabStatistics s = SlabMemory.GetStatistics();
        Assert.Equal(baseline.BlocksInUse, s.BlocksInUse);
        Assert.Equal(0, s.LargeCachedBytes);
        Assert.Equal(baseline.LargeBlocks, s.LargeBlocks);
    }
}
