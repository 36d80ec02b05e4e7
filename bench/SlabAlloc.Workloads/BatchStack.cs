namespace SlabAlloc.Workloads;

/// <summary>
/// A bounded last-in first-out stack of batches, through which xmalloc-test's producer threads hand
/// the blocks they allocated to its consumer threads. A batch is a raw block whose first word is the
/// link to the batch below it, so a hand-off allocates nothing; the push and the pop are a few stores
/// under one lock, the same shape as the original's mutex-protected list of batches.
/// </summary>
/// <remarks>
/// Invariants, while open: the stack holds at most <c>limit</c> batches; <c>_space</c>'s count plus
/// the batches held plus the pushes between their wait and their push is <c>limit</c>; <c>_ready</c>'s
/// count plus the pops between their wait and their pop is the number of batches held. So a push
/// blocks while the stack is full and a pop while it is empty, and a pop that waited always finds a
/// batch. <see cref="Close"/> wakes every thread waiting and lets every later call through without
/// waiting: pushes may then exceed the limit and pops return null when the stack is empty, and the
/// closer drains what is left with <see cref="Pop"/>.
/// </remarks>
internal sealed unsafe class BatchStack(int limit) : IDisposable
{
    private readonly SemaphoreSlim _space = new(limit);
    private readonly SemaphoreSlim _ready = new(0);
    private readonly Lock _lock = new();
    private nint* _top;
    private volatile bool _closed;

    /// <summary>Pushes <paramref name="batch"/>, whose first word becomes the link; waits while the stack is full and open.</summary>
    public void Push(nint* batch)
    {
        if (!_closed) _space.Wait();
        lock (_lock)
        {
            batch[0] = (nint)_top;
            _top = batch;
        }
        _ready.Release();
    }

    /// <summary>Pops the batch pushed last; waits while the stack is empty and open. Null only once closed and empty.</summary>
    public nint* Pop()
    {
        if (!_closed) _ready.Wait();
        nint* batch;
        lock (_lock)
        {
            batch = _top;
            if (batch != null) _top = (nint*)batch[0];
        }
        if (batch != null) _space.Release();
        return batch;
    }

    /// <summary>Stops all waiting: wakes the <paramref name="pushers"/> and <paramref name="poppers"/> threads
    /// that use the stack (each calls at most once more after the close, so one release each is enough).</summary>
    public void Close(int pushers, int poppers)
    {
        _closed = true;
        _space.Release(pushers);
        _ready.Release(poppers);
    }

    public void Dispose()
    {
        _space.Dispose();
        _ready.Dispose();
    }
}
