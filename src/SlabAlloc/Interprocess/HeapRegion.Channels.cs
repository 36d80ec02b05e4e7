using System.Diagnostics;
using SlabAlloc.Platform;

namespace SlabAlloc.Interprocess;

/// <summary>
/// The ring protocol of a channel: a bounded multi-producer, multi-consumer queue of block units in the
/// region (the sequence-numbered cells of Vyukov's bounded MPMC queue, on 64-bit positions).
/// </summary>
/// <remarks>
/// <para><b>Send.</b> The sender claims position p of the ring by compare-exchange on the enqueue position (only
/// when cell p is empty for lap p), moves the block's owner word from Held to InChannel(c), writes the message
/// into the cell and publishes it with a release store of sequence p + 1. A full channel is found before the
/// owner word is touched. If the owner word was taken by a racing free or send after the position was claimed,
/// the position is published as a dropped message.</para>
/// <para><b>Receive.</b> The receiver claims position p by compare-exchange on the dequeue position (only
/// when cell p is full), reads the message, moves the owner word from InChannel(c) to Held(receiver), and
/// empties the cell for the next lap with a release store of sequence p + capacity.</para>
/// <para><b>Why ABA cannot strike.</b> Positions are 64-bit and only grow; a cell's sequence names the exact
/// position it is ready for, so a stale sender or receiver (one that read an old position) finds a
/// sequence that does not match and retries. Nothing is reused under the same name within 2^63 operations.</para>
/// <para><b>A dead peer.</b> Each step that changes shared state is one atomic store or compare-exchange,
/// and every intermediate state is recognisable at quiescence: a position claimed but never published
/// (sequence still p), or a cell received but never emptied (sequence p + 1 behind the dequeue position).
/// Maintenance publishes the first as a dropped message (unit 0) and empties the second; the owner words say
/// whose the blocks were (<c>HeapRegion.Maintenance.cs</c>).</para>
/// <para><b>Waiting.</b> A sender that published, and a receiver that emptied a cell, issue a full fence and
/// then look at the other side's sleeper count; a thread that is about to sleep raises that count first and
/// then checks the ring again. Of the two, at least one sees the other (Dekker), and the futex compares its
/// word before sleeping, so no wake-up is lost.</para>
/// </remarks>
internal sealed unsafe partial class HeapRegion
{
    /// <summary>Sends the block at <paramref name="offset"/> with a message of <paramref name="length"/> bytes.</summary>
    /// <returns>False when the channel is full (the block stays with its holder).</returns>
    public bool TrySend(int channel, long offset, int length, out bool wokeReceiver)
    {
        wokeReceiver = false;
        ChannelHeader* header = Channel(channel);
        Enter();
        try
        {
            uint unit = UnitOfOffset(offset, out int classIndex);
            if ((uint)length > SharedSizeClasses.BlockBytes(classIndex))
                throw new ArgumentOutOfRangeException(nameof(length), $"a message of {length} bytes does not fit the block at offset {offset} ({SharedSizeClasses.BlockBytes(classIndex)} bytes).");
            uint* word = OwnerOf(unit);
            uint holder = Volatile.Read(ref *word);
            if (!OwnerWord.IsHeld(holder)) throw NotSendable(offset, holder);
            // The position is claimed before the block changes hands, so that a send that finds the channel full
            // leaves the owner word alone: a free racing with it always wins, and never sees the block "in a
            // channel" that it never entered.
            if (!TryClaimSend(channel, header, out long position, out ChannelCell* cell)) return false;
            while (true)
            {
                // Loses to another process freeing or sending the same block since the check above (or to a holder
                // changing hands: then the loop sends it from its new holder).
                uint previous = Interlocked.CompareExchange(ref *word, OwnerWord.InChannel(channel), holder);
                if (previous == holder) break;
                if (!OwnerWord.IsHeld(previous))
                {
                    // The claimed position must still be published, or the ring would stall on it: it carries the
                    // dropped mark (unit 0) that receivers skip.
                    Publish(header, cell, position, 0, receivers: false);
                    throw NotSendable(offset, previous);
                }
                holder = previous;
            }
            wokeReceiver = Publish(header, cell, position, (ulong)unit << 32 | (uint)length, receivers: true);
            return true;
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>What <see cref="SendCopy"/> did.</summary>
    public enum CopySent { Sent, Full, HeapFull }

    /// <summary>Allocates a block, copies <paramref name="message"/> into it and sends it on
    /// <paramref name="channel"/>, in one operation (<paramref name="wokeReceiver"/>: a sleeping receiver was
    /// woken). When the channel is full, <paramref name="unit"/> is the block, filled and held by this process, to
    /// send later.</summary>
    /// <returns>Sent; Full (the block is in <paramref name="unit"/>); or HeapFull (nothing changed).</returns>
    public CopySent SendCopy(int channel, ReadOnlySpan<byte> message, out uint unit, out bool wokeReceiver)
    {
        wokeReceiver = false;
        ChannelHeader* header = Channel(channel);
        int classIndex = SharedSizeClasses.ClassOf((nuint)Math.Max(1, message.Length));
        Enter();
        try
        {
            if (!TryTakeBlock(classIndex, out unit)) return CopySent.HeapFull;
            TakeHold(unit, classIndex);
            message.CopyTo(new Span<byte>(Address(unit), message.Length));
            if (!TryClaimSend(channel, header, out long position, out ChannelCell* cell)) return CopySent.Full;
            // A plain store, as in TakeHold: no other process knows the block yet. A sender that dies before it leaves
            // a block held by a dead process; after it, an InChannel block that maintenance frees unless a cell names it.
            Volatile.Write(ref *OwnerOf(unit), OwnerWord.InChannel(channel));
            wokeReceiver = Publish(header, cell, position, (ulong)unit << 32 | (uint)message.Length, receivers: true);
            return CopySent.Sent;
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>Claims the next position to send into, if its cell is empty for this lap.</summary>
    /// <returns>False when the channel is full.</returns>
    private bool TryClaimSend(int channel, ChannelHeader* header, out long position, out ChannelCell* cell)
    {
        long capacity = CapacityOfChannel(channel);
        ChannelCell* cells = Cells(header);
        position = Volatile.Read(ref header->EnqueuePosition);
        while (true)
        {
            cell = cells + (position & (capacity - 1));
            long difference = Volatile.Read(ref cell->Sequence) - position;
            if (difference == 0)
            {
                // Loses to another sender that claimed this position first: move on to the new position.
                long seen = Interlocked.CompareExchange(ref header->EnqueuePosition, position + 1, position);
                if (seen == position) return true;
                position = seen;
            }
            else if (difference < 0)
            {
                if (difference < -capacity) throw Corrupt(Path, $"channel {channel}'s cell for position {position} is out of sequence");
                return false; // full: the cell still holds the message of one lap ago
            }
            else
            {
                // Another sender claimed this position since it was read: the enqueue position has moved on.
                // If it has not, the sequence was written by no sender (a garbage cell), and rereading would
                // spin for ever.
                long current = Volatile.Read(ref header->EnqueuePosition);
                if (current == position) throw Corrupt(Path, $"channel {channel}'s cell for position {position} is out of sequence");
                position = current;
            }
        }
    }

    /// <summary>Publishes a claimed cell (release), then wakes a receiver if one sleeps.</summary>
    /// <returns>True when a receiver was woken.</returns>
    private static bool Publish(ChannelHeader* header, ChannelCell* cell, long position, ulong message, bool receivers)
    {
        cell->Message = message;
        Volatile.Write(ref cell->Sequence, position + 1);
        if (!receivers) return false;
        // Dekker with a receiver going to sleep: the publication above must be visible before the count is read.
        // Still inside the operation: the mapping must outlive the wake (see Dispose).
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref header->ReceiversWaiting) <= 0) return false;
        Interlocked.Increment(ref header->NotEmptyEvents);
        Futex.Wake(&header->NotEmptyEvents, 1);
        return true;
    }

    private ArgumentException NotSendable(long offset, uint word) =>
        new($"the block at offset {offset} of the shared heap {Path} is {OwnerWord.Describe(word)}; only an allocated block can be sent.", nameof(offset));

    /// <summary>Receives a message: the block becomes this process's.</summary>
    /// <returns>False when the channel is empty.</returns>
    public bool TryReceive(int channel, out long offset, out int length, out bool wokeSender, out int dropped)
    {
        offset = 0;
        length = 0;
        wokeSender = false;
        dropped = 0;
        ChannelHeader* header = Channel(channel);
        Enter();
        try
        {
            if (TryClaimReceive(channel, header, int.MaxValue, ref dropped, out long position, out ChannelCell* cell, out uint unit, out length) != Claimed.Message)
            {
                // Cells emptied of dropped messages on the way are room all the same: a sender asleep on the full
                // channel must hear of them.
                if (dropped != 0) wokeSender = WakeSenders(header, dropped);
                return false;
            }
            bool taken = TryTakeFromChannel(unit, channel, OwnerWord.Held(Slot), out uint previous);
            Release(channel, cell, position); // even for a corrupt message, so that it does not wedge the ring
            if (!taken) throw Corrupt(Path, $"channel {channel} holds unit {unit}, which is {OwnerWord.Describe(previous)}");
            offset = (long)unit * SharedSizeClasses.UnitBytes;
            wokeSender = WakeSenders(header, dropped + 1);
            return true;
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>What <see cref="ReceiveCopy"/> found.</summary>
    public enum CopyReceived { Received, Empty, TooLong }

    /// <summary>Receives a message into <paramref name="destination"/> and frees its block, in one operation. A
    /// message longer than the destination is left in the channel (<see cref="CopyReceived.TooLong"/>, with its
    /// length).</summary>
    public CopyReceived ReceiveCopy(int channel, Span<byte> destination, out int length, out bool wokeSender, out int dropped)
    {
        wokeSender = false;
        dropped = 0;
        ChannelHeader* header = Channel(channel);
        Enter();
        try
        {
            Claimed claimed = TryClaimReceive(channel, header, destination.Length, ref dropped, out long position, out ChannelCell* cell, out uint unit, out length);
            if (claimed != Claimed.Message)
            {
                if (dropped != 0) wokeSender = WakeSenders(header, dropped);
                return claimed == Claimed.TooLong ? CopyReceived.TooLong : CopyReceived.Empty;
            }
            // The cell is emptied before the copy, so a sender can reuse it at once; the block stays InChannel,
            // named by no cell, until it is freed below (a receiver that dies in between leaves it to maintenance).
            Release(channel, cell, position);
            new ReadOnlySpan<byte>(Address(unit), length).CopyTo(destination);
            int classIndex = ClassOfBlock(unit);
            if (!TryTakeFromChannel(unit, channel, OwnerWord.Free, out uint previous))
                throw Corrupt(Path, $"channel {channel} holds unit {unit}, which is {OwnerWord.Describe(previous)}");
            CacheFreed(unit, classIndex);
            wokeSender = WakeSenders(header, dropped + 1);
            return CopyReceived.Received;
        }
        finally
        {
            Exit();
        }
    }

    private enum Claimed { Message, Empty, TooLong }

    /// <summary>Claims the next full cell whose message is a block (cells of dropped messages on the way are
    /// claimed and emptied, and counted in <paramref name="dropped"/>). The message is checked: its unit must be
    /// a block and its length fit the block; a bad message's cell is emptied before the error, so that a corrupt
    /// cell does not wedge the ring. A message longer than <paramref name="maxLength"/> is not claimed.</summary>
    private Claimed TryClaimReceive(int channel, ChannelHeader* header, int maxLength, ref int dropped,
        out long position, out ChannelCell* cell, out uint unit, out int length)
    {
        long capacity = CapacityOfChannel(channel);
        ChannelCell* cells = Cells(header);
        position = Volatile.Read(ref header->DequeuePosition);
        while (true)
        {
            cell = cells + (position & (capacity - 1));
            long difference = Volatile.Read(ref cell->Sequence) - (position + 1);
            if (difference < 0)
            {
                if (difference < -capacity) throw Corrupt(Path, $"channel {channel}'s cell for position {position} is out of sequence");
                unit = 0;
                length = 0;
                return Claimed.Empty; // (or the next message is still being written)
            }
            if (difference > 0)
            {
                // Another receiver took this position since it was read: the dequeue position has moved on.
                // If it has not, the sequence was written by no receiver (a garbage cell), and rereading would
                // spin for ever.
                long current = Volatile.Read(ref header->DequeuePosition);
                if (current == position) throw Corrupt(Path, $"channel {channel}'s cell for position {position} is out of sequence");
                position = current;
                continue;
            }
            // The message of a full cell is stable until its receiver empties it: a look before the claim decides
            // whether it fits, and the claim then reads it again.
            ulong peeked = Volatile.Read(ref cell->Message);
            if ((uint)(peeked >> 32) != 0 && (int)(uint)peeked > maxLength)
            {
                unit = (uint)(peeked >> 32);
                length = (int)(uint)peeked;
                return Claimed.TooLong;
            }
            // Loses to another receiver that claimed this position first: move on to the new position.
            long seen = Interlocked.CompareExchange(ref header->DequeuePosition, position + 1, position);
            if (seen != position)
            {
                position = seen;
                continue;
            }
            ulong message = cell->Message;
            unit = (uint)(message >> 32);
            length = (int)(uint)message;
            if (unit == 0)
            {
                Release(channel, cell, position);
                dropped++;
                position = Volatile.Read(ref header->DequeuePosition);
                continue;
            }
            int classIndex = ClassOfBlock(unit);
            string? problem =
                classIndex < 0 ? $"channel {channel} holds unit {unit}, which is not a block"
                : (uint)length > SharedSizeClasses.BlockBytes(classIndex) ? $"channel {channel} holds a message of {(uint)length} bytes in a block of {SharedSizeClasses.BlockBytes(classIndex)}"
                : length > maxLength ? $"channel {channel}'s message at position {position} changed while it was claimed"
                : null;
            if (problem == null) return Claimed.Message;
            Release(channel, cell, position);
            throw Corrupt(Path, problem);
        }
    }

    /// <summary>Empties a claimed cell for the sender one lap later (release).</summary>
    private void Release(int channel, ChannelCell* cell, long position) =>
        Volatile.Write(ref cell->Sequence, position + CapacityOfChannel(channel));

    /// <summary>Spins (without entering an operation) until a channel has a message to receive, or room to send,
    /// or the time runs out.</summary>
    /// <returns>True when the channel looked ready; the operation that follows may still lose it to another thread.</returns>
    public bool SpinUntilReady(int channel, bool receiving, long untilTimestamp, out long spins)
    {
        spins = 0;
        ChannelHeader* header = Channel(channel);
        long capacity = CapacityOfChannel(channel);
        ChannelCell* cells = Cells(header);
        Use();
        try
        {
            while (true)
            {
                // Plain reads of two lines that stay in this core's cache until the other side writes them.
                long position = Volatile.Read(ref receiving ? ref header->DequeuePosition : ref header->EnqueuePosition);
                long sequence = Volatile.Read(ref cells[position & (capacity - 1)].Sequence);
                if (sequence - position >= (receiving ? 1 : 0)) return true;
                if ((++spins & 15) == 0 && Stopwatch.GetTimestamp() >= untilTimestamp) return false;
                if ((spins & 7) == 0) Thread.SpinWait(1);
            }
        }
        finally
        {
            Unuse();
        }
    }

    /// <summary>After a receiver emptied <paramref name="cells"/> cells: wakes as many senders, if any sleep.</summary>
    private static bool WakeSenders(ChannelHeader* header, int cells)
    {
        Interlocked.MemoryBarrier(); // Dekker with a sender going to sleep, as in TrySend
        if (Volatile.Read(ref header->SendersWaiting) <= 0) return false;
        Interlocked.Increment(ref header->NotFullEvents);
        Futex.Wake(&header->NotFullEvents, cells);
        return true;
    }

    /// <summary>A channel's capacity as verified when the region was opened. The copy in the channel header is
    /// shared memory that any process may overwrite after that check; a capacity read from it would index cells
    /// beyond the channel, and beyond the mapping.</summary>
    private long CapacityOfChannel(int channel) => Layout.ChannelCapacities[channel];

    /// <summary>How many messages a channel holds at the moment of the reads.</summary>
    public long CountOf(int channel)
    {
        Use();
        try
        {
            ChannelHeader* header = Channel(channel);
            long count = Volatile.Read(ref header->EnqueuePosition) - Volatile.Read(ref header->DequeuePosition);
            return Math.Clamp(count, 0, CapacityOfChannel(channel));
        }
        finally
        {
            Unuse();
        }
    }

    /// <summary>Counts this thread as a sleeper on a channel (receiving: waiting for a message; else waiting for
    /// room) and returns the futex word's value to sleep on. The caller then checks the ring once more and
    /// either calls <see cref="Sleep"/> or not, and in every case <see cref="EndSleep"/>.</summary>
    public int BeginSleep(int channel, bool receiving)
    {
        Use();
        try
        {
            ChannelHeader* header = Channel(channel);
            int observed = Volatile.Read(ref receiving ? ref header->NotEmptyEvents : ref header->NotFullEvents);
            // The channel's count first, this process's share second (and the reverse in EndSleep): a process that
            // dies in between leaves the channel's count too high, which costs needless wakes, never a lost one.
            Interlocked.Increment(ref receiving ? ref header->ReceiversWaiting : ref header->SendersWaiting);
            Interlocked.Increment(ref WaitCounts(Slot, channel)[receiving ? 0 : 1]);
            return observed;
        }
        finally
        {
            Unuse();
        }
    }

    /// <summary>Sleeps in the kernel until the futex word moves from <paramref name="observed"/> or the time runs out.</summary>
    public void Sleep(int channel, bool receiving, int observed, int timeoutMilliseconds)
    {
        Use();
        try
        {
            ChannelHeader* header = Channel(channel);
            Futex.Wait(receiving ? &header->NotEmptyEvents : &header->NotFullEvents, observed, timeoutMilliseconds);
        }
        finally
        {
            Unuse();
        }
    }

    /// <summary>Undoes <see cref="BeginSleep"/>. After <see cref="Dispose"/> it throws and changes nothing: leaving
    /// maintenance has already taken this slot's sleepers off the channels' counts.</summary>
    public void EndSleep(int channel, bool receiving)
    {
        Use();
        try
        {
            ChannelHeader* header = Channel(channel);
            Interlocked.Decrement(ref WaitCounts(Slot, channel)[receiving ? 0 : 1]);
            Interlocked.Decrement(ref receiving ? ref header->ReceiversWaiting : ref header->SendersWaiting);
        }
        finally
        {
            Unuse();
        }
    }
}
