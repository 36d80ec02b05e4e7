using System.Diagnostics;
using SlabAlloc.Interprocess;

namespace SlabAlloc;

/// <summary>
/// A bounded lock-free queue of blocks between processes, inside a <see cref="SharedHeap"/>: any process may
/// send and any may receive. Sending hands the block to the channel; receiving hands it to the receiver, who
/// frees it (or sends it on).
/// </summary>
/// <remarks>
/// <para>A receive that finds the channel empty (a send that finds it full) first spins for
/// <see cref="SpinDuration"/>, then sleeps in the kernel on a futex in the shared region until a sender
/// (receiver) wakes it. Senders and receivers issue a wake only when someone sleeps, so a busy channel makes
/// no system calls. Both phases are counted (<see cref="GetStatistics"/>).</para>
/// <para>While it sleeps, a blocked operation looks every 100 ms for a peer that died in the middle of an
/// operation on this channel, and runs maintenance if it finds one, so a killed peer cannot wedge it.</para>
/// <para>Thread-safe; one instance per channel and heap instance (<see cref="SharedHeap.GetChannel"/>).</para>
/// </remarks>
public sealed class SharedChannel
{
    private static readonly long LivenessCheckTicks = Stopwatch.Frequency / 10;
    private const int SleepSliceMilliseconds = 50;

    private readonly SharedHeap _heap;
    private readonly HeapRegion _region;
    private readonly int _index;
    private long _spinTicks = Stopwatch.Frequency / 20_000; // 50 µs

    private long _sent, _received, _sendsFull, _receivesEmpty, _settledBySpinning, _spinIterations, _kernelWaits, _kernelWakes, _dropped;

    internal SharedChannel(SharedHeap heap, HeapRegion region, int index, string name)
    {
        _heap = heap;
        _region = region;
        _index = index;
        Name = name;
        Capacity = (int)region.Layout.ChannelCapacities[index];
    }

    /// <summary>The channel's name.</summary>
    public string Name { get; }

    /// <summary>How many messages the channel holds before a sender waits.</summary>
    public int Capacity { get; }

    /// <summary>Messages in the channel at the moment of the read.</summary>
    public long Count => _region.CountOf(_index);

    /// <summary>How long a blocked send or receive spins before it sleeps in the kernel (default 50 µs; zero sleeps at once).</summary>
    public TimeSpan SpinDuration
    {
        get => TimeSpan.FromSeconds((double)Volatile.Read(ref _spinTicks) / Stopwatch.Frequency);
        set => Volatile.Write(ref _spinTicks, (long)(Math.Max(0, value.TotalSeconds) * Stopwatch.Frequency));
    }

    /// <summary>Sends a block this process holds, or returns false at once when the channel is full.</summary>
    /// <exception cref="ArgumentException">Not an allocated block of the heap (free, or already sent), or a length
    /// beyond the block.</exception>
    public bool TrySend(SharedBlock block)
    {
        if (!_region.TrySend(_index, block.Offset, block.Length, out bool woke)) return false;
        Interlocked.Increment(ref _sent);
        if (woke) Interlocked.Increment(ref _kernelWakes);
        return true;
    }

    /// <summary>Sends a block, waiting while the channel is full.</summary>
    /// <exception cref="TimeoutException">Still full after <paramref name="timeout"/> (default: wait forever).</exception>
    public void Send(SharedBlock block, TimeSpan? timeout = null)
    {
        if (TrySend(block)) return;
        if (!Wait(receiving: false, block, timeout, out _))
            throw new TimeoutException($"channel '{Name}' stayed full for {timeout}.");
    }

    /// <summary>Copies <paramref name="message"/> into a new block and sends it, waiting while the channel is full.</summary>
    /// <exception cref="InsufficientMemoryException">The heap is full.</exception>
    public void Send(ReadOnlySpan<byte> message, TimeSpan? timeout = null)
    {
        SharedBlock block = _heap.Allocate(Math.Max(1, message.Length)) with { Length = message.Length };
        message.CopyTo(_heap.GetSpan(block));
        try
        {
            Send(block, timeout);
        }
        catch
        {
            _heap.Free(block);
            throw;
        }
    }

    /// <summary>Receives a block, or returns false at once when the channel is empty. The block is then this process's.</summary>
    public bool TryReceive(out SharedBlock block)
    {
        bool got = _region.TryReceive(_index, out long offset, out int length, out bool woke, out int dropped);
        if (dropped != 0) Interlocked.Add(ref _dropped, dropped);
        if (woke) Interlocked.Increment(ref _kernelWakes);
        block = got ? new SharedBlock(offset, length) : default;
        if (got) Interlocked.Increment(ref _received);
        return got;
    }

    /// <summary>Receives a block, waiting while the channel is empty.</summary>
    /// <exception cref="TimeoutException">Still empty after <paramref name="timeout"/> (default: wait forever).</exception>
    public SharedBlock Receive(TimeSpan? timeout = null)
    {
        if (TryReceive(out SharedBlock block)) return block;
        if (!Wait(receiving: true, default, timeout, out block))
            throw new TimeoutException($"channel '{Name}' stayed empty for {timeout}.");
        return block;
    }

    /// <summary>Receives a block, waiting up to <paramref name="timeout"/>; false when none came.</summary>
    public bool TryReceive(out SharedBlock block, TimeSpan timeout) =>
        TryReceive(out block) || Wait(receiving: true, default, timeout, out block);

    /// <summary>This process's counts for this channel.</summary>
    public SharedChannelStatistics GetStatistics() => new()
    {
        Sent = Volatile.Read(ref _sent),
        Received = Volatile.Read(ref _received),
        SendsThatFoundItFull = Volatile.Read(ref _sendsFull),
        ReceivesThatFoundItEmpty = Volatile.Read(ref _receivesEmpty),
        SettledBySpinning = Volatile.Read(ref _settledBySpinning),
        SpinIterations = Volatile.Read(ref _spinIterations),
        KernelWaits = Volatile.Read(ref _kernelWaits),
        KernelWakes = Volatile.Read(ref _kernelWakes),
        DroppedSkipped = Volatile.Read(ref _dropped),
    };

    /// <summary>The blocked path of a send or a receive: spin, then sleep in slices, looking for dead peers.</summary>
    private bool Wait(bool receiving, SharedBlock toSend, TimeSpan? timeout, out SharedBlock received)
    {
        Interlocked.Increment(ref receiving ? ref _receivesEmpty : ref _sendsFull);
        long start = Stopwatch.GetTimestamp();
        long deadline = timeout is TimeSpan t && t != Timeout.InfiniteTimeSpan ? start + (long)(Math.Max(0, t.TotalSeconds) * Stopwatch.Frequency) : long.MaxValue;
        long spinEnd = start + Volatile.Read(ref _spinTicks);
        long spins = 0;
        try
        {
            for (long now = start; now < spinEnd && now < deadline; now = Stopwatch.GetTimestamp())
            {
                Thread.SpinWait(16);
                spins++;
                if (Attempt(receiving, toSend, out received))
                {
                    Interlocked.Increment(ref _settledBySpinning);
                    return true;
                }
            }
            long nextLivenessCheck = Stopwatch.GetTimestamp() + LivenessCheckTicks;
            while (true)
            {
                long now = Stopwatch.GetTimestamp();
                if (now >= deadline)
                {
                    received = default;
                    return false;
                }
                int observed = _region.BeginSleep(_index, receiving);
                try
                {
                    if (Attempt(receiving, toSend, out received)) return true;
                    long slice = Math.Min(SleepSliceMilliseconds, (deadline - now) * 1000 / Stopwatch.Frequency + 1);
                    _region.Sleep(_index, receiving, observed, (int)slice);
                    Interlocked.Increment(ref _kernelWaits);
                }
                finally
                {
                    _region.EndSleep(_index, receiving);
                }
                if (Attempt(receiving, toSend, out received)) return true;
                if (Stopwatch.GetTimestamp() >= nextLivenessCheck)
                {
                    // A peer that died mid-operation can leave this channel looking full or empty for good.
                    if (_region.AnyProcessDead()) _region.Recover();
                    nextLivenessCheck = Stopwatch.GetTimestamp() + LivenessCheckTicks;
                }
            }
        }
        finally
        {
            Interlocked.Add(ref _spinIterations, spins);
        }
    }

    private bool Attempt(bool receiving, SharedBlock toSend, out SharedBlock received)
    {
        received = default;
        return receiving ? TryReceive(out received) : TrySend(toSend);
    }
}
