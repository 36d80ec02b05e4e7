using System.Diagnostics.Metrics;
using SlabAlloc.Memory;
using SlabAlloc.Runtime;
using SlabAlloc.Telemetry;

namespace SlabAlloc.Tests.Telemetry;

/// <summary>
/// The "SlabAlloc" <see cref="Meter"/>: every instrument is published, its figures follow what the
/// test thread allocates, they equal <see cref="SlabMemory.GetStatistics"/> at a quiescent moment,
/// and nothing is computed while no listener collects.
/// </summary>
/// <remarks>In the non-parallel "SlabAlloc global state" collection: the tests compare global counters exactly.</remarks>
[Collection("SlabAlloc global state")]
public sealed unsafe class SlabMeterTests
{
    private const int N = 100;

    /// <summary>One measurement: integral values in <see cref="Long"/>, the hit ratio in <see cref="Double"/>.</summary>
    private sealed record Reading(string Name, long Long, double Double, string? Tag);

    /// <summary>A <see cref="MeterListener"/> that enables every instrument of the SlabAlloc meter.</summary>
    private sealed class Recorder : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly List<Reading> _readings = [];

        public List<Instrument> Published { get; } = [];

        public Recorder()
        {
            // The meter is published from a background thread when the assembly loads; make sure it exists
            // before this listener starts (TheMeterIsPublishedAtLoadWithoutBeingAskedFor covers that thread).
            _ = SlabMeter.Meter;
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name != SlabAllocMetrics.MeterName) return;
                Published.Add(instrument);
                listener.EnableMeasurementEvents(instrument);
            };
            _listener.SetMeasurementEventCallback<int>((i, v, tags, _) => _readings.Add(new(i.Name, v, v, TagOf(tags))));
            _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => _readings.Add(new(i.Name, v, v, TagOf(tags))));
            _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => _readings.Add(new(i.Name, (long)v, v, TagOf(tags))));
            _listener.Start();
        }

        private static string? TagOf(ReadOnlySpan<KeyValuePair<string, object?>> tags) =>
            tags.Length == 0 ? null : string.Join(',', tags.ToArray().Select(t => $"{t.Key}={t.Value}"));

        /// <summary>One collection pass.</summary>
        public List<Reading> Collect()
        {
            _readings.Clear();
            _listener.RecordObservableInstruments();
            return [.. _readings];
        }

        public void Dispose() => _listener.Dispose();
    }

    private static long Single(List<Reading> readings, string name) => readings.Single(r => r.Name == name && r.Tag is null).Long;

    private static long Tagged(List<Reading> readings, string name, string tag) => readings.Single(r => r.Name == name && r.Tag == tag).Long;

    [Fact]
    public void TheMeterIsNamedSlabAllocAndExistsBeforeAnyListener()
    {
        Assert.NotNull(SlabMeter.Meter);
        Assert.Equal("SlabAlloc", SlabAllocMetrics.MeterName);
        Assert.Equal(SlabAllocMetrics.MeterName, SlabMeter.Meter.Name);
    }

    [Fact]
    public void TheMeterIsPublishedAtLoadWithoutBeingAskedFor()
    {
        // In a fresh process that never asks for the meter: a listener sees all its instruments.
        var result = ProbeProcess.Run(new Dictionary<string, string>(), "meter", SlabMeter.Names.All.Length.ToString());
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal([$"METER_PUBLISHED {SlabMeter.Names.All.Length}"], result.Lines("METER_"));
        Assert.Single(result.Lines("PROBE_OK"));
    }

    [Fact]
    public void EveryInstrumentIsPublishedWithItsKindUnitAndDescription()
    {
        using var recorder = new Recorder();
        Assert.All(recorder.Published, i => Assert.Same(SlabMeter.Meter, i.Meter));
        Assert.Equal(SlabMeter.Names.All.Order(), recorder.Published.Select(i => i.Name).Order());
        Assert.All(recorder.Published, i => Assert.False(string.IsNullOrWhiteSpace(i.Description), i.Name));
        Assert.All(recorder.Published, i => Assert.True(i.IsObservable, i.Name));

        Instrument Get(string name) => recorder.Published.Single(i => i.Name == name);
        Assert.IsType<ObservableUpDownCounter<long>>(Get("slaballoc.memory.in_use"));
        Assert.IsType<ObservableUpDownCounter<long>>(Get("slaballoc.memory.mapped"));
        Assert.Equal("By", Get("slaballoc.memory.in_use").Unit);
        Assert.Equal("By", Get("slaballoc.memory.mapped").Unit);
        Assert.IsType<ObservableUpDownCounter<int>>(Get("slaballoc.superslabs"));
        Assert.IsType<ObservableUpDownCounter<int>>(Get("slaballoc.slabs"));
        Assert.IsType<ObservableUpDownCounter<int>>(Get("slaballoc.slots.unused"));
        Assert.IsType<ObservableGauge<double>>(Get("slaballoc.thread_cache.hit_ratio"));
        Assert.Equal("1", Get("slaballoc.thread_cache.hit_ratio").Unit);
        foreach (string counter in new[]
                 {
                     "slaballoc.thread_cache.misses", "slaballoc.remote_frees", "slaballoc.allocations", "slaballoc.frees",
                     "slaballoc.pool.lock.acquisitions", "slaballoc.pool.lock.contended_acquisitions", "slaballoc.pool.cas.retries",
                     "slaballoc.remote_frees.to_ended_threads", "slaballoc.remote_frees.to_unowned_slabs",
                     "slaballoc.slabs.let_go_in_use", "slaballoc.slabs.partial_adopted", "slaballoc.slabs.taken_back",
                 })
            Assert.IsType<ObservableCounter<long>>(Get(counter));

        // Every instrument reports in a pass, with the tags it promises.
        List<Reading> readings = recorder.Collect();
        foreach (string name in SlabMeter.Names.All) Assert.Contains(readings, r => r.Name == name);
        Assert.Equal(["state=empty", "state=full", "state=owned", "state=partial", "state=reserved"],
            readings.Where(r => r.Name == "slaballoc.slabs").Select(r => r.Tag!).Order());
        Assert.Equal(["path=acquire_slab", "path=release_slab"],
            readings.Where(r => r.Name == "slaballoc.pool.lock.acquisitions").Select(r => r.Tag!).Order());
        Assert.Equal(["path=acquire_slab", "path=release_slab"],
            readings.Where(r => r.Name == "slaballoc.pool.lock.contended_acquisitions").Select(r => r.Tag!).Order());
        Assert.Equal(["site=release", "site=stage1", "site=stage2", "site=stage3"],
            readings.Where(r => r.Name == "slaballoc.pool.cas.retries").Select(r => r.Tag!).Order());
        double ratio = readings.Single(r => r.Name == "slaballoc.thread_cache.hit_ratio").Double;
        Assert.InRange(ratio, 0.0, 1.0);
    }

    [Fact]
    public void BytesInUseAndAllocationsFollowTheBlocksOfThisThread()
    {
        using var fresh = new FreshSnapshots();
        // Attach this thread first, so the measured allocations need nothing but blocks.
        SlabMemory.Free(SlabMemory.Alloc(64));
        using var recorder = new Recorder();
        List<Reading> before = recorder.Collect();

        var blocks = new nint[N];
        for (int i = 0; i < N; i++) blocks[i] = (nint)SlabMemory.Alloc(64);
        List<Reading> during = recorder.Collect();
        foreach (nint p in blocks) SlabMemory.Free((void*)p);
        List<Reading> after = recorder.Collect();

        long inUseBefore = Single(before, "slaballoc.memory.in_use");
        Assert.True(Single(during, "slaballoc.memory.in_use") - inUseBefore >= N * 64,
            $"bytes in use went from {inUseBefore} to {Single(during, "slaballoc.memory.in_use")} for {N} blocks of 64 bytes");
        Assert.Equal(inUseBefore, Single(after, "slaballoc.memory.in_use"));

        Assert.Equal(N, Single(during, "slaballoc.allocations") - Single(before, "slaballoc.allocations"));
        Assert.Equal(0, Single(during, "slaballoc.frees") - Single(before, "slaballoc.frees"));
        Assert.Equal(N, Single(after, "slaballoc.frees") - Single(during, "slaballoc.frees"));
        Assert.Equal(N, Single(after, "slaballoc.allocations") - Single(before, "slaballoc.allocations"));
        Assert.True(Single(during, "slaballoc.memory.mapped") >= Single(during, "slaballoc.memory.in_use"));
    }

    [Fact]
    public void HandOffCountersReportWhatTheStatisticsReport()
    {
        using var fresh = new FreshSnapshots();
        using var recorder = new Recorder();
        List<Reading> before = recorder.Collect();
        SlabStatistics s0 = SlabMemory.GetStatistics();
        // Blocks of a thread that ends; Trim hands its cache back (its slabs let go with blocks out, once
        // its exit is complete), and this thread's frees go into its slabs, owned by the ended thread or
        // by none.
        var blocks = new nint[N];
        var t = new Thread(() => { for (int i = 0; i < N; i++) blocks[i] = (nint)SlabMemory.Alloc(48); });
        t.Start();
        t.Join();
        SlabMemory.Trim();
        foreach (nint p in blocks) SlabMemory.Free((void*)p);
        List<Reading> after = recorder.Collect();
        SlabStatistics s1 = SlabMemory.GetStatistics();

        long Delta(string name) => Single(after, name) - Single(before, name);
        Assert.Equal(s1.RemoteFreesToEndedThreads - s0.RemoteFreesToEndedThreads, Delta("slaballoc.remote_frees.to_ended_threads"));
        Assert.Equal(s1.RemoteFreesToUnownedSlabs - s0.RemoteFreesToUnownedSlabs, Delta("slaballoc.remote_frees.to_unowned_slabs"));
        Assert.Equal(s1.SlabsLetGoInUse - s0.SlabsLetGoInUse, Delta("slaballoc.slabs.let_go_in_use"));
        Assert.Equal(s1.PartialSlabsAdopted - s0.PartialSlabsAdopted, Delta("slaballoc.slabs.partial_adopted"));
        Assert.Equal(s1.SlabsTakenBack - s0.SlabsTakenBack, Delta("slaballoc.slabs.taken_back"));
        Assert.Equal(N, Delta("slaballoc.remote_frees"));
    }

    [Fact]
    public void MemoryPoolCountersReportWhatTheStatisticsReport()
    {
        using var fresh = new FreshSnapshots();
        using var recorder = new Recorder();
        List<Reading> before = recorder.Collect();
        SlabStatistics s0 = SlabMemory.GetStatistics();
        using (var pool = new SlabMemoryPool())
        {
            RentAndDrop(pool, 20);
            for (int attempt = 0; attempt < 100 && SlabMemory.GetStatistics().PoolBuffersReclaimed - s0.PoolBuffersReclaimed < 20; attempt++)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }
        }
        List<Reading> after = recorder.Collect();
        SlabStatistics s1 = SlabMemory.GetStatistics();

        long Delta(string name) => Single(after, name) - Single(before, name);
        Assert.Equal(20, s1.PoolBuffersReclaimed - s0.PoolBuffersReclaimed);
        Assert.Equal(20, Delta("slaballoc.memory_pool.buffers_reclaimed"));
        Assert.Equal(s1.PoolOwnersCreated - s0.PoolOwnersCreated, Delta("slaballoc.memory_pool.owners_created"));
        Assert.True(s1.PoolOwnersCreated - s0.PoolOwnersCreated >= 20);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void RentAndDrop(SlabMemoryPool pool, int count)
    {
        for (int i = 0; i < count; i++) pool.Rent(100 * (i + 1)).Memory.Span[0] = 1;
    }

    [Fact]
    public void RemoteFreesAreCounted()
    {
        using var fresh = new FreshSnapshots();
        var blocks = new nint[N];
        for (int i = 0; i < N; i++) blocks[i] = (nint)SlabMemory.Alloc(48);
        using var recorder = new Recorder();
        long before = Single(recorder.Collect(), "slaballoc.remote_frees");
        var t = new Thread(() => { foreach (nint p in blocks) SlabMemory.Free((void*)p); });
        t.Start();
        t.Join();
        Assert.Equal(N, Single(recorder.Collect(), "slaballoc.remote_frees") - before);
    }

    [Fact]
    public void EveryFigureEqualsTheStatisticsAtAQuiescentMoment()
    {
        using var fresh = new FreshSnapshots();
        Quiescence.Quiesce();
        var blocks = new nint[N];
        for (int i = 0; i < N; i++) blocks[i] = (nint)SlabMemory.Alloc((nuint)(16 + i * 97)); // many size classes, up to 9.4 KiB
        try
        {
            using var recorder = new Recorder();
            // The figures are compared with statistics taken just after the pass; a pass is repeated if
            // something moved the statistics meanwhile (the finalizer handing back a cache of a thread-pool
            // thread that ended: this class shares the process with every other test class).
            List<Reading> r = [];
            SlabStatistics s = null!;
            SlabLockStatistics l = null!;
            for (int attempt = 0; attempt < 5; attempt++)
            {
                SlabStatistics s0 = SlabMemory.GetStatistics();
                SlabLockStatistics l0 = SlabMemory.GetLockStatistics();
                r = recorder.Collect();
                s = SlabMemory.GetStatistics();
                l = SlabMemory.GetLockStatistics();
                if (Unmoved(s0, s) && l0.Allocations == l.Allocations && l0.Frees == l.Frees && l0.LockAcquisitions == l.LockAcquisitions && l0.CasRetries == l.CasRetries) break;
            }

            Assert.Equal(s.BytesInUse, Single(r, "slaballoc.memory.in_use"));
            Assert.Equal(s.BytesMapped, Single(r, "slaballoc.memory.mapped"));
            Assert.Equal(s.Superslabs, Single(r, "slaballoc.superslabs"));
            Assert.Equal(s.UnusedSlots, Single(r, "slaballoc.slots.unused"));
            Assert.Equal(s.SlabsOwned, Tagged(r, "slaballoc.slabs", "state=owned"));
            Assert.Equal(s.SlabsFull, Tagged(r, "slaballoc.slabs", "state=full"));
            Assert.Equal(s.SlabsPartial, Tagged(r, "slaballoc.slabs", "state=partial"));
            Assert.Equal(s.SlabsEmpty, Tagged(r, "slaballoc.slabs", "state=empty"));
            Assert.Equal(s.SlabsReserved, Tagged(r, "slaballoc.slabs", "state=reserved"));
            Assert.True(s.SlabsOwned > 0);

            Assert.Equal(s.ThreadCacheMisses, Single(r, "slaballoc.thread_cache.misses"));
            Assert.Equal(s.RemoteFrees, Single(r, "slaballoc.remote_frees"));
            Assert.Equal(l.Allocations, Single(r, "slaballoc.allocations"));
            Assert.Equal(l.Frees, Single(r, "slaballoc.frees"));
            Assert.Equal(l.Allocations - l.Frees, s.BlocksInUse);
            Assert.Equal(l.ThreadCacheHitRate, r.Single(x => x.Name == "slaballoc.thread_cache.hit_ratio").Double);
            Assert.Equal(1 - (double)s.ThreadCacheMisses / l.Allocations, l.ThreadCacheHitRate, 12);

            Assert.Equal(l.AcquireSlabLocks, Tagged(r, "slaballoc.pool.lock.acquisitions", "path=acquire_slab"));
            Assert.Equal(l.ReleaseSlabLocks, Tagged(r, "slaballoc.pool.lock.acquisitions", "path=release_slab"));
            Assert.Equal(l.AcquireSlabContended, Tagged(r, "slaballoc.pool.lock.contended_acquisitions", "path=acquire_slab"));
            Assert.Equal(l.ReleaseSlabContended, Tagged(r, "slaballoc.pool.lock.contended_acquisitions", "path=release_slab"));
            Assert.Equal(l.CasRetries, r.Where(x => x.Name == "slaballoc.pool.cas.retries").Sum(x => x.Long));
        }
        finally
        {
            foreach (nint p in blocks) SlabMemory.Free((void*)p);
        }
    }

    private static bool Unmoved(SlabStatistics a, SlabStatistics b) =>
        a.BytesInUse == b.BytesInUse && a.BytesMapped == b.BytesMapped && a.Superslabs == b.Superslabs &&
        a.UnusedSlots == b.UnusedSlots && a.SlabsOwned == b.SlabsOwned && a.SlabsFull == b.SlabsFull &&
        a.SlabsPartial == b.SlabsPartial && a.SlabsEmpty == b.SlabsEmpty && a.SlabsReserved == b.SlabsReserved && a.ThreadCacheMisses == b.ThreadCacheMisses &&
        a.RemoteFrees == b.RemoteFrees;

    [Fact]
    public void OneCollectionPassTakesOneSnapshot()
    {
        using var recorder = new Recorder();
        WithMaxAge(TimeSpan.MaxValue, () => // a pass slowed by a busy machine must not count as two
        {
            long snapshots = TestHooks.MeterWork.Snapshots, callbacks = TestHooks.MeterWork.Callbacks;
            recorder.Collect();
            Assert.Equal(1, TestHooks.MeterWork.Snapshots - snapshots);
            Assert.Equal(SlabMeter.Names.All.Length, TestHooks.MeterWork.Callbacks - callbacks);

            // A second pass right away is a new pass: it sees fresh figures, not the cached ones.
            recorder.Collect();
            Assert.Equal(2, TestHooks.MeterWork.Snapshots - snapshots);
        });
    }

    [Fact]
    public void ASnapshotOlderThanTheMaximumAgeIsNotReused()
    {
        using var recorder = new Recorder();
        WithMaxAge(TimeSpan.MinValue, () => // every snapshot is too old by the time the next instrument reads
        {
            long snapshots = TestHooks.MeterWork.Snapshots;
            recorder.Collect();
            Assert.Equal(SlabMeter.Names.All.Length, TestHooks.MeterWork.Snapshots - snapshots);
        });
    }

    /// <summary>Every instrument builds its own snapshot while this lives. For the tests that compare figures
    /// taken a few milliseconds apart: the first instruments of a pass may otherwise read a snapshot that
    /// an earlier pass (of any test) left, younger than <see cref="TestHooks.MeterSnapshotMaxAge"/>, which is staleness
    /// the meter allows by design.</summary>
    private sealed class FreshSnapshots : IDisposable
    {
        private readonly TimeSpan _saved = TestHooks.MeterSnapshotMaxAge;

        public FreshSnapshots() => TestHooks.MeterSnapshotMaxAge = TimeSpan.MinValue;

        public void Dispose() => TestHooks.MeterSnapshotMaxAge = _saved;
    }

    /// <summary>Runs <paramref name="body"/> with the snapshots' maximum age set to <paramref name="maxAge"/>.</summary>
    private static void WithMaxAge(TimeSpan maxAge, Action body)
    {
        TimeSpan saved = TestHooks.MeterSnapshotMaxAge;
        TestHooks.MeterSnapshotMaxAge = maxAge;
        try { body(); }
        finally { TestHooks.MeterSnapshotMaxAge = saved; }
    }

    [Fact]
    public void NothingIsComputedWhileNoListenerCollects()
    {
        long snapshots = TestHooks.MeterWork.Snapshots, callbacks = TestHooks.MeterWork.Callbacks;
        var blocks = new nint[10_000];
        for (int i = 0; i < blocks.Length; i++) blocks[i] = (nint)SlabMemory.Alloc((nuint)(1 + i % 2000));
        foreach (nint p in blocks) SlabMemory.Free((void*)p);
        _ = SlabMemory.GetStatistics();
        _ = SlabMemory.GetLockStatistics();
        Assert.Equal(snapshots, TestHooks.MeterWork.Snapshots);
        Assert.Equal(callbacks, TestHooks.MeterWork.Callbacks);

        // A listener that subscribes but does not collect does not run the callbacks either.
        using (new Recorder())
        {
            for (int i = 0; i < blocks.Length; i++) blocks[i] = (nint)SlabMemory.Alloc(64);
            foreach (nint p in blocks) SlabMemory.Free((void*)p);
        }
        Assert.Equal(snapshots, TestHooks.MeterWork.Snapshots);
        Assert.Equal(callbacks, TestHooks.MeterWork.Callbacks);
    }
}
