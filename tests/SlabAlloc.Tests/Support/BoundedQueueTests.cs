using SlabAlloc.Support;

namespace SlabAlloc.Tests.Support;

/// <summary>
/// <see cref="BoundedQueue{T}"/>: FIFO order, full and empty, and, with producers and consumers racing on a
/// queue small enough that every cell is reused thousands of times, every item taken exactly once and
/// each producer's items in the order it added them.
/// </summary>
public sealed class BoundedQueueTests
{
    private sealed record Item(int Producer, int Sequence);

    [Fact]
    public void ItemsComeOutInOrderUpToTheCapacity()
    {
        var queue = new BoundedQueue<Item>(4);
        Assert.False(queue.TryDequeue(out _));
        for (int lap = 0; lap < 3; lap++)
        {
            var items = Enumerable.Range(0, 4).Select(i => new Item(lap, i)).ToList();
            foreach (Item item in items) Assert.True(queue.TryEnqueue(item));
            Assert.False(queue.TryEnqueue(new Item(-1, -1)));
            Assert.Equal(4, queue.Count);
            foreach (Item item in items)
            {
                Assert.True(queue.TryDequeue(out Item? taken));
                Assert.Same(item, taken);
            }
            Assert.False(queue.TryDequeue(out Item? none));
            Assert.Null(none);
            Assert.Equal(0, queue.Count);
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(100)]
    public void ACapacityThatIsNotAPowerOfTwoOfAtLeastTwoIsRefused(int capacity) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new BoundedQueue<Item>(capacity));

    [Theory]
    [InlineData(2, 2, 2)]
    [InlineData(8, 4, 4)]
    [InlineData(64, 3, 5)]
    public void RacingProducersAndConsumersTakeEveryItemOnceInEachProducersOrder(int capacity, int producers, int consumers)
    {
        const int PerProducer = 50_000;
        var queue = new BoundedQueue<Item>(capacity);
        var items = new Item[producers][];
        for (int p = 0; p < producers; p++) items[p] = Enumerable.Range(0, PerProducer).Select(i => new Item(p, i)).ToArray();
        var taken = new int[producers * PerProducer];
        int consumed = 0;
        var errors = new System.Collections.Concurrent.ConcurrentQueue<string>();

        var threads = new List<Thread>();
        for (int p = 0; p < producers; p++)
        {
            Item[] mine = items[p];
            threads.Add(new Thread(() =>
            {
                var spin = new SpinWait();
                foreach (Item item in mine)
                {
                    while (!queue.TryEnqueue(item)) spin.SpinOnce(sleep1Threshold: -1);
                    int count = queue.Count;
                    if (count < 0 || count > capacity) errors.Enqueue($"count {count}");
                }
            }));
        }
        for (int c = 0; c < consumers; c++)
        {
            threads.Add(new Thread(() =>
            {
                var last = new int[producers];
                Array.Fill(last, -1);
                var spin = new SpinWait();
                while (Volatile.Read(ref consumed) < producers * PerProducer)
                {
                    if (!queue.TryDequeue(out Item? item)) { spin.SpinOnce(sleep1Threshold: -1); continue; }
                    if (item is null) { errors.Enqueue("null item"); continue; }
                    if (item.Sequence <= last[item.Producer]) errors.Enqueue($"producer {item.Producer}: {item.Sequence} after {last[item.Producer]}");
                    last[item.Producer] = item.Sequence;
                    Interlocked.Increment(ref taken[item.Producer * PerProducer + item.Sequence]);
                    Interlocked.Increment(ref consumed);
                }
            }));
        }
        foreach (Thread t in threads) t.Start();
        Assert.True(threads.All(t => t.Join(TimeSpan.FromMinutes(2))), "the producers and consumers did not finish");

        Assert.Empty(errors.Take(10));
        Assert.Equal(producers * PerProducer, consumed);
        Assert.All(taken, n => Assert.Equal(1, n));
        Assert.False(queue.TryDequeue(out _));
    }
}
