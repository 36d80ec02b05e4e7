using SlabAlloc.Memory;
using SlabAlloc.Platform;

namespace SlabAlloc.Interprocess;

/// <summary>
/// Maintenance: the one procedure that recovers processes that died, gives back what a leaving process
/// holds, and returns empty slabs to the free-slab stack. It runs alone, and it can itself die at any point.
/// </summary>
/// <remarks>
/// <para><b>Running alone.</b> The maintainer claims <see cref="RegionHeader.MaintenanceOwner"/> with its
/// identity (compare-exchange from 0, or from the identity of a maintainer found dead), then waits until the
/// <see cref="ProcessRecord.ActiveOperations"/> of every live process is 0. A thread that enters an operation
/// after the claim sees it and waits (<see cref="Enter"/>), so from then on no live process changes shared
/// state; the only half-finished operations are those of dead processes.</para>
/// <para><b>Rebuilding from the owner words.</b> The maintainer first checks the free stacks and the channels
/// (each stack block must be Free and in no other stack, which also stops a corrupt cycle; each full cell's
/// block must be InChannel of that channel), finishes or undoes the dead processes' half-done channel
/// operations, and then detaches every free stack. Each block's owner word decides what it is: Free, or held
/// by a dead (or leaving) process, or InChannel without a cell that names it, means free; held by a live
/// process, or in a full cell, means in use. Free blocks are chained back onto the global stacks, and a slab
/// with no block in use goes back to the free-slab stack.</para>
/// <para><b>Dying mid-way.</b> Every step above is either read-only or leaves a state the next maintainer reads
/// the same way: a detached block is Free and in no stack, which is exactly what the rebuild collects; a slab
/// whose class was cleared but not yet pushed is a slab without a class, which the rebuild collects too; a
/// dead slot is given back last. The next maintainer takes over the claim from the dead one and starts again
/// from the beginning.</para>
/// <para>Cost: a walk of every owner word and free stack, O(slab area / 64 bytes), while every other process
/// waits. It runs when a process joins and finds a dead one, when a process leaves, when an allocation finds the
/// heap full, when a blocked channel operation suspects a dead peer, and when asked.</para>
/// </remarks>
internal sealed unsafe partial class HeapRegion
{
    /// <summary>How long a maintainer waits for a live process to leave an operation before giving up.</summary>
    private static readonly TimeSpan QuiescenceTimeout = TimeSpan.FromSeconds(10);

    /// <summary>What the last maintenance by this view found.</summary>
    public readonly record struct MaintenanceReport(int ProcessesRecovered, long BlocksReclaimed, long SlabsReturned, long MessagesDropped);

    /// <summary>True when a slot is held by a process that is no longer running.</summary>
    public bool AnyProcessDead()
    {
        Use();
        try
        {
            return AnySlotOfADeadProcess();
        }
        finally
        {
            Unuse();
        }
    }

    /// <summary>Runs maintenance for a caller of this view (see <see cref="RunMaintenance"/>).</summary>
    public MaintenanceReport Recover()
    {
        Use();
        try
        {
            return RunMaintenance(leaving: false);
        }
        finally
        {
            Unuse();
        }
    }

    private bool AnySlotOfADeadProcess()
    {
        for (int slot = 0; slot < Layout.ProcessSlots; slot++)
        {
            long identity = Volatile.Read(ref Record(slot)->Identity);
            if (identity != 0 && identity != Identity && !ProcessIdentity.IsAlive(identity)) return true;
        }
        return false;
    }

    /// <summary>Waits while another process runs maintenance; takes it over if that process died.</summary>
    private void AwaitMaintenance()
    {
        while (true)
        {
            int epoch = Volatile.Read(ref Header.MaintenanceEpoch);
            long owner = Volatile.Read(ref Header.MaintenanceOwner);
            if (owner == 0) return;
            if (owner != Identity && !ProcessIdentity.IsAlive(owner))
            {
                RunMaintenance(leaving: false);
                continue;
            }
            fixed (int* word = &Header.MaintenanceEpoch) Futex.Wait(word, epoch, 10);
        }
    }

    /// <summary>Runs maintenance, or waits for the one another thread or process is running.</summary>
    /// <param name="leaving">Treat this view's own slot as ended: free all it holds and give the slot back.</param>
    /// <returns>What this run did; all zeros when another maintainer ran instead.</returns>
    public MaintenanceReport RunMaintenance(bool leaving)
    {
        while (true)
        {
            long owner = Volatile.Read(ref Header.MaintenanceOwner);
            if (owner == 0)
            {
                // Loses to another maintainer claiming first: look again at who holds it.
                if (Interlocked.CompareExchange(ref Header.MaintenanceOwner, Identity, 0) == 0) break;
                continue;
            }
            if (owner == Identity || ProcessIdentity.IsAlive(owner))
            {
                AwaitMaintenance();
                if (!leaving) return default;
                continue; // a leaving view needs a run of its own
            }
            // The maintainer died: take over (loses to another process taking over first).
            if (Interlocked.CompareExchange(ref Header.MaintenanceOwner, Identity, owner) == owner) break;
        }
        try
        {
            return Maintain(leaving);
        }
        finally
        {
            Interlocked.Exchange(ref Header.MaintenanceOwner, 0);
            Interlocked.Increment(ref Header.MaintenanceEpoch);
            fixed (int* word = &Header.MaintenanceEpoch) Futex.Wake(word, int.MaxValue);
        }
    }

    private MaintenanceReport Maintain(bool leaving)
    {
        bool[] ended = WaitForQuiescence(leaving);
        Interlocked.Increment(ref Header.MaintenanceRuns);
        var inStack = new ulong[(Layout.TotalSlabUnits + 63) / 64];
        var inFlight = new ulong[inStack.Length];
        CheckFreeStacks(inStack);
        long dropped = SettleChannels(inFlight);
        DetachFreeStacks();
        (long reclaimed, long returned) = RebuildFromOwnerWords(ended, inFlight);
        int recovered = ReleaseEndedSlots(ended, leaving);
        Interlocked.Add(ref Header.BlocksReclaimed, reclaimed);
        Interlocked.Add(ref Header.SlabsReturned, returned);
        Interlocked.Add(ref Header.MessagesDropped, dropped);
        Interlocked.Add(ref Header.ProcessesRecovered, recovered);
        if (Slot >= 0) Array.Clear(_cachedCount);
        return new MaintenanceReport(recovered, reclaimed, returned, dropped);
    }

    /// <summary>Finds the slots of ended processes and waits until no live process is inside an operation.</summary>
    private bool[] WaitForQuiescence(bool leaving)
    {
        var ended = new bool[Layout.ProcessSlots];
        long deadline = Environment.TickCount64 + (long)QuiescenceTimeout.TotalMilliseconds;
        for (int slot = 0; slot < Layout.ProcessSlots; slot++)
        {
            ProcessRecord* record = Record(slot);
            long identity = Volatile.Read(ref record->Identity);
            if (identity == 0) continue;
            if ((leaving && slot == Slot) || !ProcessIdentity.IsAlive(identity))
            {
                ended[slot] = true;
                continue;
            }
            long nextLivenessCheck = Environment.TickCount64 + 10;
            var spinner = new SpinWait();
            while (Volatile.Read(ref record->ActiveOperations) != 0)
            {
                spinner.SpinOnce(sleep1Threshold: -1);
                long now = Environment.TickCount64;
                if (now < nextLivenessCheck) continue;
                if (!ProcessIdentity.IsAlive(identity))
                {
                    ended[slot] = true;
                    break;
                }
                if (now > deadline)
                    throw new TimeoutException($"process {ProcessIdentity.PidOf(identity)} stayed inside an operation on the shared heap {Path} for {QuiescenceTimeout.TotalSeconds:0} s; maintenance gave up (is it stopped?).");
                nextLivenessCheck = now + 10;
            }
        }
        return ended;
    }

    private static bool Mark(ulong[] bits, ulong index)
    {
        ulong mask = 1UL << (int)(index & 63);
        if ((bits[index >> 6] & mask) != 0) return false;
        bits[index >> 6] |= mask;
        return true;
    }

    private static bool IsMarked(ulong[] bits, ulong index) => (bits[index >> 6] & (1UL << (int)(index & 63))) != 0;

    /// <summary>Walks every free stack: each block must be a block of the stack's class, Free, and in no other stack.</summary>
    private void CheckFreeStacks(ulong[] inStack)
    {
        for (int c = 0; c < Layout.ClassCount; c++)
        {
            CheckStack(GlobalStack(c).PeekTopPlusOne(), c, inStack);
            for (int slot = 0; slot < Layout.ProcessSlots; slot++) CheckStack(CacheStack(slot, c).PeekTopPlusOne(), c, inStack);
        }
    }

    private void CheckStack(uint topPlusOne, int classIndex, ulong[] inStack)
    {
        BlockLinks links = Links;
        for (uint next = topPlusOne; next != 0;)
        {
            uint unit = next - 1;
            if (ClassOfBlock(unit) != classIndex) throw Corrupt(Path, $"the free list of class {classIndex} holds unit {unit}, which is not a block of that class");
            if (!Mark(inStack, unit - Layout.SlabAreaUnit)) throw Corrupt(Path, $"unit {unit} is twice in the free lists (a cycle, or two lists sharing a block)");
            uint word = Volatile.Read(ref *OwnerOf(unit));
            if (word != OwnerWord.Free) throw Corrupt(Path, $"unit {unit} is in a free list but is {OwnerWord.Describe(word)}");
            next = (uint)*links.LinkOf(unit);
        }
    }

    /// <summary>Finishes the dead processes' half-done channel operations and marks every block in a full cell.</summary>
    /// <returns>Messages dropped: published as dropped because their sender died before publishing, or claimed by
    /// a receiver that died before taking them.</returns>
    private long SettleChannels(ulong[] inFlight)
    {
        long dropped = 0;
        for (int channel = 0; channel < Layout.ChannelNames.Length; channel++)
        {
            ChannelHeader* header = Channel(channel);
            long capacity = CapacityOfChannel(channel);
            ChannelCell* cells = Cells(header);
            long dequeue = Volatile.Read(ref header->DequeuePosition);
            long enqueue = Volatile.Read(ref header->EnqueuePosition);
            if (enqueue < dequeue || enqueue - dequeue > capacity) throw Corrupt(Path, $"channel {channel}'s positions are {dequeue} and {enqueue}");
            for (long position = dequeue; position < enqueue; position++)
            {
                ChannelCell* cell = cells + (position & (capacity - 1));
                long sequence = Volatile.Read(ref cell->Sequence);
                if (sequence == position)
                {
                    // Claimed by a sender that died before publishing: publish it as dropped.
                    cell->Message = 0;
                    Volatile.Write(ref cell->Sequence, position + 1);
                    dropped++;
                    continue;
                }
                if (sequence != position + 1) throw Corrupt(Path, $"channel {channel}'s cell for position {position} has sequence {sequence}");
                uint unit = (uint)(cell->Message >> 32);
                if (unit == 0) continue;
                if (ClassOfBlock(unit) < 0) throw Corrupt(Path, $"channel {channel} holds unit {unit}, which is not a block");
                uint word = Volatile.Read(ref *OwnerOf(unit));
                if (word != OwnerWord.InChannel(channel)) throw Corrupt(Path, $"channel {channel} holds unit {unit}, which is {OwnerWord.Describe(word)}");
                if (!Mark(inFlight, unit - Layout.SlabAreaUnit)) throw Corrupt(Path, $"unit {unit} is in two channel cells");
            }
            for (long position = enqueue; position < dequeue + capacity; position++)
            {
                ChannelCell* cell = cells + (position & (capacity - 1));
                long sequence = Volatile.Read(ref cell->Sequence);
                if (sequence == position) continue;
                if (sequence != position - capacity + 1) throw Corrupt(Path, $"channel {channel}'s cell for position {position} has sequence {sequence}");
                // Claimed by a receiver that died before emptying it: empty it. Its block is settled by its owner word.
                Volatile.Write(ref cell->Sequence, position);
                uint unit = (uint)(cell->Message >> 32);
                if (unit != 0 && ClassOfBlock(unit) >= 0 && OwnerWord.IsInChannel(Volatile.Read(ref *OwnerOf(unit)))) dropped++;
            }
        }
        return dropped;
    }

    private void DetachFreeStacks()
    {
        for (int c = 0; c < Layout.ClassCount; c++)
        {
            GlobalStack(c).TakeAll();
            for (int slot = 0; slot < Layout.ProcessSlots; slot++) CacheStack(slot, c).TakeAll();
        }
        Header.FreeSlabs.TakeAll();
    }

    /// <summary>Decides every block from its owner word, frees what ended processes held, and rebuilds the global
    /// stacks and the free-slab stack.</summary>
    private (long Reclaimed, long SlabsReturned) RebuildFromOwnerWords(bool[] ended, ulong[] inFlight)
    {
        long reclaimed = 0, returned = 0;
        BlockLinks links = Links;
        uint freeSlabFirst = uint.MaxValue, freeSlabLast = 0;
        long carved = CarvedSlabs();
        for (uint slab = 0; slab < carved; slab++)
        {
            uint classPlusOne = Volatile.Read(ref Slab(slab)->ClassPlusOne);
            if (classPlusOne > (uint)Layout.ClassCount) throw Corrupt(Path, $"slab {slab} has class {classPlusOne - 1}");
            if (classPlusOne != 0)
            {
                int classIndex = (int)classPlusOne - 1;
                uint step = Layout.BlockUnits[classIndex];
                uint first = Layout.SlabAreaUnit + slab * Layout.SlabUnits;
                uint end = first + Layout.BlocksPerSlab[classIndex] * step;
                uint chainFirst = 0, chainLast = 0;
                bool anyInUse = false;
                for (uint unit = first; unit < end; unit += step)
                {
                    uint* word = OwnerOf(unit);
                    uint holder = Volatile.Read(ref *word);
                    bool free;
                    if (holder == OwnerWord.Free) free = true;
                    else if (OwnerWord.IsInChannel(holder))
                    {
                        if (OwnerWord.ChannelOf(holder) >= Layout.ChannelNames.Length) throw Corrupt(Path, $"unit {unit} is in channel {OwnerWord.ChannelOf(holder)}, which does not exist");
                        free = !IsMarked(inFlight, unit - Layout.SlabAreaUnit);
                    }
                    else
                    {
                        int holderSlot = OwnerWord.SlotOf(holder);
                        if (holderSlot >= Layout.ProcessSlots) throw Corrupt(Path, $"unit {unit} is held by slot {holderSlot}, which does not exist");
                        free = ended[holderSlot];
                    }
                    if (!free)
                    {
                        anyInUse = true;
                        continue;
                    }
                    if (holder != OwnerWord.Free)
                    {
                        Volatile.Write(ref *word, OwnerWord.Free);
                        reclaimed++;
                    }
                    if (chainFirst == 0) chainFirst = unit;
                    else *links.LinkOf(chainLast) = (int)(unit + 1);
                    chainLast = unit;
                }
                if (anyInUse)
                {
                    if (chainFirst != 0) GlobalStack(classIndex).PushChain(chainFirst, chainLast, links);
                    continue;
                }
                // Every block is free: the slab loses its class and joins the free slabs below.
                Volatile.Write(ref Slab(slab)->ClassPlusOne, 0);
                returned++;
            }
            if (freeSlabFirst == uint.MaxValue) freeSlabFirst = slab;
            else Slab(freeSlabLast)->FreeLink = (int)(slab + 1);
            freeSlabLast = slab;
        }
        if (freeSlabFirst != uint.MaxValue) Header.FreeSlabs.PushChain(freeSlabFirst, freeSlabLast, SlabStackLinks);
        return (reclaimed, returned);
    }

    /// <summary>Gives back the slots of ended processes: their sleepers leave the channels' counts, then the slot is freed.</summary>
    private int ReleaseEndedSlots(bool[] ended, bool leaving)
    {
        int recovered = 0;
        for (int slot = 0; slot < ended.Length; slot++)
        {
            if (!ended[slot]) continue;
            ProcessRecord* record = Record(slot);
            for (int channel = 0; channel < Layout.ChannelNames.Length; channel++)
            {
                ChannelHeader* header = Channel(channel);
                int* counts = WaitCounts(slot, channel);
                // This slot's share is zeroed before the channel's count drops, so a maintainer that dies in between
                // leaves the channel's count too high (needless wakes), never too low (a missed one).
                int receivers = Interlocked.Exchange(ref counts[0], 0);
                int senders = Interlocked.Exchange(ref counts[1], 0);
                if (receivers > 0) Interlocked.Add(ref header->ReceiversWaiting, -receivers);
                if (senders > 0) Interlocked.Add(ref header->SendersWaiting, -senders);
            }
            Volatile.Write(ref record->ActiveOperations, 0);
            long identity = Volatile.Read(ref record->Identity);
            // From the ended identity only: fails if the slot was given back already (a leaving view racing with this).
            if (identity != 0 && Interlocked.CompareExchange(ref record->Identity, 0, identity) == identity && !(leaving && slot == Slot))
                recovered++;
        }
        return recovered;
    }
}
