namespace SlabAlloc.Tests.Frontend;

/// <summary>The remote-free batch under thread churn: short-lived freers end holding a batch, new threads
/// take over their cache records, and Trim races on another thread; every block is accounted for.</summary>
[Collection("SlabAlloc global state")]
public sealed unsafe class RemoteFreeBatchChurnTests
{
    [Fact]
    public void BatchesOfEndedThreadsComeBackUnderChurnWithTrimRacing()
    {
        long before = SlabMemory.GetStatistics().BlocksInUse;
        var random = new Random(424242);
        var errors = new System.Collections.Concurrent.ConcurrentQueue<string>();
        bool stop = false;
        var trimmer = new Thread(() =>
        {
            while (!Volatile.Read(ref stop))
            {
                try { SlabMemory.Trim(); } catch (Exception e) { errors.Enqueue(e.ToString()); }
                Thread.Sleep(1);
            }
        });
        trimmer.Start();
        for (int wave = 0; wave < 40; wave++)
        {
            var sizes = Enumerable.Range(0, 3000).Select(_ => (nuint)random.Next(1, 1500)).ToArray();
            nint[] blocks = new nint[sizes.Length];
            var owner = new Thread(() =>
            {
                try { for (int i = 0; i < sizes.Length; i++) { blocks[i] = (nint)SlabMemory.Alloc(sizes[i]); *(nint*)blocks[i] = blocks[i]; } }
                catch (Exception e) { errors.Enqueue(e.ToString()); }
            });
            owner.Start();
            owner.Join();
            nint[][] runs = blocks.Chunk(40 + wave).OrderBy(_ => random.Next()).ToArray();
            int next = -1;
            var freers = Enumerable.Range(0, 6).Select(f => new Thread(() =>
            {
                try
                {
                    // Each freer ends after a few runs, holding its last batch.
                    for (int k = 0, r; k < 5 && (r = Interlocked.Increment(ref next)) < runs.Length; k++)
                    {
                        foreach (nint p in runs[r])
                        {
                            if (*(nint*)p != p) throw new InvalidOperationException($"0x{p:x} overwritten");
                            SlabMemory.Free((void*)p);
                        }
                    }
                    if (f % 2 == 0) SlabMemory.Free(SlabMemory.Alloc((nuint)(f * 100 + 8)));
                }
                catch (Exception e) { errors.Enqueue(e.ToString()); }
            })).ToList();
            while (Volatile.Read(ref next) < runs.Length - 1)
            {
                freers.ForEach(t => t.Start());
                freers.ForEach(t => t.Join());
                freers = freers.Select((_, f) => new Thread(() =>
                {
                    try
                    {
                        for (int k = 0, r; k < 5 && (r = Interlocked.Increment(ref next)) < runs.Length; k++)
                            foreach (nint p in runs[r])
                            {
                                if (*(nint*)p != p) throw new InvalidOperationException($"0x{p:x} overwritten");
                                SlabMemory.Free((void*)p);
                            }
                    }
                    catch (Exception e) { errors.Enqueue(e.ToString()); }
                })).ToList();
            }
        }
        Volatile.Write(ref stop, true);
        trimmer.Join();
        SlabMemory.Trim();
        Assert.Empty(errors);
        Assert.Equal(before, SlabMemory.GetStatistics().BlocksInUse);
    }
}
