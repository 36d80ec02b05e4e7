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
/// <see cref="SpinDuration"/> (longer, up to 1 ms, while recent waits ended within that long: an adaptive
/// spin, as an adaptive mutex learns its spin count), then sleeps in the kernel on a futex in the shared region until a sender
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
    private static readonly long MaxSpinTicks = Stopwatch.Frequency / 1000; // 1 ms
    /// <summary>A running average of the waits that ended within <see cref="MaxSpinTicks"/> (plain updates from any
    /// thread: a hint). The spin lasts twice that, at least <see cref="SpinDuration"/>.</summary>
    private long _typicalWaitTicks;

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

    /// <summary>How long a blocked send or receive spins at least before it sleeps in the kernel (default 50 µs;
    /// zero sleeps at once). While recent waits ended within 1 ms, it spins for twice their average instead, up to
    /// 1 ms; waits longer than that bring it back down.</summary>
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
        Sent(woke);
        return true;
    }

    /// <summary>Sends a block, waiting while the channel is full.</summary>
    /// <exception cref="TimeoutException">Still full after <paramref name="timeout"/> (default: wait forever).</exception>
    public void Send(SharedBlock block, TimeSpan? timeout = null)
    {
        if (TrySend(block)) return;
        var attempt = new SendBlock(block);
        if (!Wait(receiving: false, ref attempt, timeout))
            throw new TimeoutException($"channel '{Name}' stayed full for {timeout}.");
    }

    /// <summary>Copies <paramref name="message"/> into a new block and sends it, waiting while the channel is full:
    /// the allocation, the copy and the send are one operation on the heap when there is room.</summary>
    /// <exception cref="InsufficientMemoryException">The heap is full.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A message longer than the heap's largest block.</exception>
    /// <exception cref="TimeoutException">Still full after <paramref name="timeout"/> (the message is not sent).</exception>
    public void Send(ReadOnlySpan<byte> message, TimeSpan? timeout = null)
    {
        if (message.Length > _heap.MaxBlockBytes)
            throw new ArgumentOutOfRangeException(nameof(message), $"a message of {message.Length} bytes is longer than the heap's largest block ({_heap.MaxBlockBytes}).");
        for (int attempt = 0; ; attempt++)
        {
            HeapRegion.CopySent outcome = _region.SendCopy(_index, message, out uint unit, out bool woke);
            if (outcome == HeapRegion.CopySent.Sent)
            {
                Sent(woke);
                return;
            }
            if (outcome == HeapRegion.CopySent.Full)
            {
                var block = new SharedBlock((long)unit * 64, message.Length);
                try
                {
                    Send(block, timeout);
                }
                catch
                {
                    _heap.Free(block);
                    throw;
                }
                return;
            }
            // The heap is full: free blocks may wait in other classes, empty slabs or dead processes.
            if (attempt > 0) throw new InsufficientMemoryException($"the shared heap {_heap.Path} has no free block of {message.Length} bytes.");
            _region.RunMaintenance(leaving: false);
        }
    }

    /// <summary>Receives a block, or returns false at once when the channel is empty. The block is then this process's.</summary>
    public bool TryReceive(out SharedBlock block)
    {
        bool got = _region.TryReceive(_index, out long offset, out int length, out bool woke, out int dropped);
        Received(got, woke, dropped);
        block = got ? new SharedBlock(offset, length) : default;
        return got;
    }

    /// <summary>Receives a block, waiting while the channel is empty.</summary>
    /// <exception cref="TimeoutException">Still empty after <paramref name="timeout"/> (default: wait forever).</exception>
    public SharedBlock Receive(TimeSpan? timeout = null)
    {
        if (!TryReceive(out SharedBlock block, timeout ?? Timeout.InfiniteTimeSpan))
            throw new TimeoutException($"channel '{Name}' stayed empty for {timeout}.");
        return block;
    }

    /// <summary>Receives a block, waiting up to <paramref name="timeout"/>; false when none came.</summary>
    public bool TryReceive(out SharedBlock block, TimeSpan timeout)
    {
        if (TryReceive(out block)) return true;
        var attempt = new ReceiveBlock();
        bool got = Wait(receiving: true, ref attempt, timeout);
        block = attempt.Block;
        return got;
    }

    /// <summary>Receives a message into <paramref name="destination"/> and frees its block, or returns false at
    /// once when the channel is empty: the receive, the copy and the free are one operation on the heap.</summary>
    /// <param name="destination">Where the message goes.</param>
    /// <param name="length">The message's length.</param>
    /// <exception cref="ArgumentException">The next message is longer than <paramref name="destination"/>; it stays
    /// in the channel.</exception>
    public bool TryReceive(Span<byte> destination, out int length)
    {
        HeapRegion.CopyReceived outcome = _region.ReceiveCopy(_index, destination, out length, out bool woke, out int dropped);
        Received(outcome == HeapRegion.CopyReceived.Received, woke, dropped);
        if (outcome == HeapRegion.CopyReceived.TooLong)
            throw new ArgumentException($"the next message of channel '{Name}' is {length} bytes, longer than the destination ({destination.Length}); it stays in the channel.", nameof(destination));
        return outcome == HeapRegion.CopyReceived.Received;
    }

    /// <summary>Receives a message into <paramref name="destination"/> and frees its block, waiting while the
    /// channel is empty.</summary>
    /// <returns>The message's length.</returns>
    /// <exception cref="ArgumentException">The next message is longer than <paramref name="destination"/>.</exception>
    /// <exception cref="TimeoutException">Still empty after <paramref name="timeout"/> (default: wait forever).</exception>
    public int Receive(Span<byte> destination, TimeSpan? timeout = null)
    {
        if (TryReceive(destination, out int length)) return length;
        var attempt = new ReceiveCopy(destination);
        if (!Wait(receiving: true, ref attempt, timeout))
            throw new TimeoutException($"channel '{Name}' stayed empty for {timeout}.");
        return attempt.Length;
    }

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

    private void Sent(bool woke)
    {
        Interlocked.Increment(ref _sent);
        if (woke) Interlocked.Increment(ref _kernelWakes);
    }

    private void Received(bool got, bool woke, int dropped)
    {
        if (got) Interlocked.Increment(ref _received);
        if (woke) Interlocked.Increment(ref _kernelWakes);
        if (dropped != 0) Interlocked.Add(ref _dropped, dropped);
    }

    /// <summary>One try of a blocked send or receive.</summary>
    private interface IAttempt
    {
        bool Try(SharedChannel channel);
    }

    private struct SendBlock(SharedBlock block) : IAttempt
    {
        public readonly bool Try(SharedChannel channel) => channel.TrySend(block);
    }

    private struct ReceiveBlock : IAttempt
    {
        public SharedBlock Block;
        public bool Try(SharedChannel channel) => channel.TryReceive(out Block);
    }

    private ref struct ReceiveCopy(Span<byte> destination) : IAttempt
    {
        private readonly Span<byte> _destination = destination;
        public int Length;
        public bool Try(SharedChannel channel) => channel.TryReceive(_destination, out Length);
    }

    /// <summary>The blocked path of a send or a receive: spin until the channel looks ready, then sleep in slices,
    /// looking for dead peers.</summary>
    private bool Wait<TAttempt>(bool receiving, ref TAttempt attempt, TimeSpan? timeout) where TAttempt : IAttempt, allows ref struct
    {
        Interlocked.Increment(ref receiving ? ref _receivesEmpty : ref _sendsFull);
        long start = Stopwatch.GetTimestamp();
        long deadline = timeout is TimeSpan t && t != Timeout.InfiniteTimeSpan ? start + (long)(Math.Max(0, t.TotalSeconds) * Stopwatch.Frequency) : long.MaxValue;
        long minimum = Volatile.Read(ref _spinTicks);
        long spinEnd = Math.Min(deadline, start + (minimum == 0 ? 0 : Math.Clamp(2 * Volatile.Read(ref _typicalWaitTicks), minimum, Math.Max(minimum, MaxSpinTicks))));
        try
        {
            return WaitAfterSpinning(receiving, ref attempt, deadline, spinEnd);
        }
        finally
        {
            long waited = Stopwatch.GetTimestamp() - start;
            long typical = Volatile.Read(ref _typicalWaitTicks);
            // A wait a spin could have covered teaches the average; a longer one (the peer was idle) halves it.
            Volatile.Write(ref _typicalWaitTicks, waited <= MaxSpinTicks ? typical + (waited - typical) / 8 : typical / 2);
        }
    }

    private bool WaitAfterSpinning<TAttempt>(bool receiving, ref TAttempt attempt, long deadline, long spinEnd) where TAttempt : IAttempt, allows ref struct
    {
        // The spin reads the channel's two lines without entering an operation, and tries only when they say so.
        while (_region.SpinUntilReady(_index, receiving, spinEnd, out long spins))
        {
            Interlocked.Add(ref _spinIterations, spins);
            if (attempt.Try(this))
            {
                Interlocked.Increment(ref _settledBySpinning);
                return true;
            }
            if (Stopwatch.GetTimestamp() >= spinEnd) break;
        }
        long nextLivenessCheck = Stopwatch.GetTimestamp() + LivenessCheckTicks;
        while (true)
        {
            long now = Stopwatch.GetTimestamp();
            if (now >= deadline) return false;
            int observed = _region.BeginSleep(_index, receiving);
            try
            {
                if (attempt.Try(this)) return true;
                // Divided before it is multiplied: an infinite deadline (long.MaxValue) must not overflow into a
                // negative timeout, which the kernel refuses at once (a busy loop of failed waits).
                long slice = Math.Min(SleepSliceMilliseconds, (deadline - now) / (Stopwatch.Frequency / 1000) + 1);
                _region.Sleep(_index, receiving, observed, (int)slice);
                Interlocked.Increment(ref _kernelWaits);
            }
            finally
            {
                _region.EndSleep(_index, receiving);
            }
            if (attempt.Try(this)) return true;
            if (Stopwatch.GetTimestamp() >= nextLivenessCheck)
            {
                // A peer that died mid-operation can leave this channel looking full or empty for good.
                if (_region.AnyProcessDead()) _region.RunMaintenance(leaving: false);
                nextLivenessCheck = Stopwatch.GetTimestamp() + LivenessCheckTicks;
            }
        }
    }
}
