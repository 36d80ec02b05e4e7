using System.Numerics;
using System.Runtime.CompilerServices;
using SlabAlloc.Frontend;
using SlabAlloc.Platform;
using SlabAlloc.Support;

namespace SlabAlloc.Memory;

/// <summary>
/// The superslab life cycle, as lock-free building blocks for the pools: map a new superslab
/// (stage 3), claim free slots in an existing one (stage 2), format a claimed span as a slab,
/// release a slab's slots, and return empty superslabs to the system.
/// </summary>
/// <remarks>
/// <para><b>Slot claiming.</b> A superslab's slots are claimed and released only by CAS on its
/// <see cref="SuperslabEntry.FreeMask"/>, so two threads can never claim the same slot: the CAS
/// that clears a bit has one winner. A medium slab claims an aligned group of
/// <see cref="Geometry.MediumSpanSlots"/> bits in one CAS.</para>
/// <para><b>Retiring.</b> A superslab may be unmapped only when every slot is free. Retiring is the
/// CAS of the mask from <see cref="Geometry.AllSlotsFree"/> to 0: it fails if any claim got in
/// first, and after it no claim can succeed (0 has no free bit). No slab of a retired superslab can
/// be in a pool list, because a slab in a list keeps its slots claimed.</para>
/// <para><see cref="EmptyCount"/> counts superslabs whose mask is <see cref="Geometry.AllSlotsFree"/>:
/// incremented by the release that makes a mask all-free, decremented by the claim or retire that
/// takes it away from all-free. Beyond <see cref="SlabOptions.SuperslabCache"/> of them, the
/// release that empties a superslab retires it.</para>
/// <para><b>A superslab's addresses are never unmapped.</b> Retiring gives its memory back to the system
/// (<see cref="OsMemory.ReleaseKeepingRange"/>) but keeps its 4 MiB of address space mapped, zero-filled,
/// with its directory entry, on a stack of kept ranges that the next new superslab takes from first. So a
/// thread that validates a stale or foreign pointer (reading the superslab header's slab table, the
/// checked-mode bitmap) or pushes a double-freed block onto a slab's remote-free list while the superslab
/// is returned reads and writes mapped memory: zeroes, or the header of the superslab that reuses the
/// range, never a fault. The cost is address space, not memory: the process keeps the peak number of
/// superslabs' worth of addresses, with no pages behind the kept ones.</para>
/// </remarks>
internal static unsafe partial class Superslabs
{
    private static int s_emptyCount;
    private static long s_mappedCount;
    private static long s_retiredCount;
    private static int s_keptCount;
    /// <summary>Directory indices of retired superslabs, each with its address range kept (see remarks).</summary>
    private static TaggedIndexStack s_keptRanges;

    /// <summary>Superslabs mapped but with every slot free.</summary>
    public static int EmptyCount => Volatile.Read(ref s_emptyCount);

    /// <summary>Superslabs mapped since start-up.</summary>
    public static long MappedCount => Volatile.Read(ref s_mappedCount);

    /// <summary>Superslabs returned to the system since start-up.</summary>
    public static long RetiredCount => Volatile.Read(ref s_retiredCount);

    /// <summary>Address ranges of returned superslabs kept, with no memory behind them, for new superslabs.</summary>
    public static int KeptRangeCount => Volatile.Read(ref s_keptCount);

    /// <summary>Bits of the <paramref name="span"/> slots starting at <paramref name="slot"/>.</summary>
    public static ulong SpanBits(int slot, int span) => (span == 64 ? ~0UL : ((1UL << span) - 1)) << slot;

    /// <summary>First slot of a free, span-aligned run of <paramref name="span"/> slots in <paramref name="freeMask"/>, or -1.</summary>
    public static int FindSpan(ulong freeMask, int span)
    {
        if (span == 1) return freeMask == 0 ? -1 : BitOperations.TrailingZeroCount(freeMask);
        ulong group = (1UL << span) - 1;
        for (int slot = span; slot < Geometry.SlotsPerSuperslab; slot += span)
            if (((freeMask >> slot) & group) == group) return slot;
        return -1;
    }

    /// <summary>Stage 2: claims a free run of <paramref name="span"/> slots in the superslab of
    /// <paramref name="e"/>, one whose pages are resident if there is one (only such a run when
    /// <paramref name="residentOnly"/>). Returns its first slot, or -1 when there is none.</summary>
    public static int TryClaim(SuperslabEntry* e, int span, bool residentOnly, ref int casFailures)
    {
        int slot = TryClaimSlots(e, span, residentOnly, ref casFailures, out bool wasEmpty);
        if (wasEmpty) Interlocked.Decrement(ref s_emptyCount);
        return slot;
    }

    /// <summary>The claim itself, on <paramref name="e"/>'s mask alone: <paramref name="wasEmpty"/> says
    /// whether the claim took the superslab's last all-free state, which <see cref="TryClaim"/> counts.
    /// Tests call this on entries that are not in the directory, so that the count stays true.</summary>
    internal static int TryClaimSlots(SuperslabEntry* e, int span, bool residentOnly, ref int casFailures, out bool wasEmpty)
    {
        wasEmpty = false;
        for (bool retry = false; ; retry = true)
        {
            ulong mask = (ulong)Volatile.Read(ref e->FreeMask);
            // A span whose pages are still resident first: reusing it costs no page faults.
            int slot = FindSpan(mask & (ulong)Volatile.Read(ref e->ResidentMask), span);
            if (slot < 0 && !residentOnly) slot = FindSpan(mask, span);
            if (slot < 0) return -1;
            if (retry) casFailures++;
            ulong bits = SpanBits(slot, span);
            // Loses to another claim or release on this superslab (or its retirement); retry on the new mask.
            if ((ulong)Interlocked.CompareExchange(ref e->FreeMask, (long)(mask & ~bits), (long)mask) == mask)
            {
                Invariant.Holds(slot > 0 && slot % span == 0 && (mask & bits) == bits,
                    "a claimed span was free, aligned to its length, and not the header's slot");
                ForgetResident(e, bits);
                wasEmpty = mask == Geometry.AllSlotsFree;
                return slot;
            }
        }
    }

    /// <summary>Stage 3: maps a new superslab (in a kept range if there is one) and publishes it with a span
    /// of <paramref name="span"/> slots already claimed for the caller. Returns null when the system refuses memory.</summary>
    public static SuperslabEntry* MapNew(int span, out uint index, out int slot, ref int casFailures)
    {
        slot = span; // slot 0 is the header, so the first aligned run starts at the span
        SuperslabEntry* e;
        byte* region;
        if (s_keptRanges.TryPop(out index, default(MetadataTable<SuperslabEntry>.Links), ref casFailures))
        {
            // Popped: the range and its entry are ours alone.
            Interlocked.Decrement(ref s_keptCount);
            e = SuperslabDirectory.Entry(index);
            region = (byte*)e->Base;
            if (!OsMemory.TryRecommit(Geometry.SuperslabBytes))
            {
                Keep(index);
                return null;
            }
            if (SlabOptions.Prefault) OsMemory.Prefault(region, Geometry.SuperslabBytes);
        }
        else
        {
            region = MapRange();
            if (region == null) return null;
            if (!SuperslabDirectory.TryAddIndex(out index, ref casFailures))
            {
                // No entry can hold it: nothing ever saw it. A range of the arena stays mapped, with nothing behind it.
                if (SuperslabArena.Contains(region)) OsMemory.ReleaseInPlace(region, Geometry.SuperslabBytes);
                else OsMemory.Release(region, Geometry.SuperslabBytes);
                return null;
            }
            e = SuperslabDirectory.Entry(index);
            e->Base = (nint)region;
        }
        if (!Registry.TrySet((nuint)region, Registry.SuperslabValue))
        {
            OsMemory.ReleaseKeepingRange(region, Geometry.SuperslabBytes);
            Keep(index);
            return null;
        }
        var header = (SuperslabHeader*)region;
        header->Magic = SuperslabHeader.MagicValue;
        header->DirectoryIndex = index;

        e->Live = 1;
        // Publish: the mask becomes non-zero only after Base is written (release semantics).
        Interlocked.Exchange(ref e->FreeMask, (long)(Geometry.AllSlotsFree & ~SpanBits(slot, span)));
        Interlocked.Increment(ref s_mappedCount);
        SlabLog.SuperslabMapped((nuint)region, index);
        SlabLog.DirectoryCapacity(SuperslabDirectory.Count, SuperslabDirectory.MappedBytes);
        SlabLog.RegistryCapacity(Registry.MappedBytes);
        return e;
    }

    /// <summary>Puts directory index <paramref name="index"/>, whose range holds no memory, on the kept ranges.</summary>
    private static void Keep(uint index)
    {
        Interlocked.Increment(ref s_keptCount);
        s_keptRanges.Push(index, default(MetadataTable<SuperslabEntry>.Links));
    }

    /// <summary>Formats a span the caller has just claimed as a slab of <paramref name="sizeClass"/>.</summary>
    public static SlabMeta* Format(SuperslabEntry* e, uint index, int slot, int sizeClass)
    {
        byte* region = (byte*)Volatile.Read(ref e->Base);
        var header = (SuperslabHeader*)region;
        SlabMeta* s = SuperslabEntry.Slab(e, slot);
        SlabMeta.Format(s, region + ((nuint)slot << Geometry.SlotShift), sizeClass, Geometry.GlobalIndex(index, slot));
        int span = s->SpanSlots;
        if (SlabOptions.Checked) SuperslabHeader.ClearCheckedBits(s->Start, (nuint)span << Geometry.SlotShift);
        for (int i = slot; i < slot + span; i++) header->SlabOfSlot[i] = (nint)s;
        // Released after the geometry: a racing free that reads Owned here then validates against the new
        // geometry (see SmallBlocks.FreeRemote).
        Volatile.Write(ref Unsafe.As<SlabLifecycle, byte>(ref s->Lifecycle), (byte)SlabLifecycle.Owned);
        return s;
    }

    /// <summary>Formats an empty one-slot slab the caller holds exclusively (popped from a pool list) for
    /// <paramref name="sizeClass"/>, a one-slot class; its slot stays claimed and its pages resident.</summary>
    public static SlabMeta* Reformat(uint globalIndex, int sizeClass)
    {
        uint index = Geometry.SuperslabIndexOf(globalIndex);
        int slot = Geometry.SlotOf(globalIndex);
        // Checked first: formatting a multi-slot class here would overwrite the slab table of the slots after it.
        if (SizeClasses.SpanSlots(sizeClass) != 1) ThrowHelper.ThrowCorruption("a multi-slot class was given a one-slot slab");
        return Format(SuperslabDirectory.Entry(index), index, slot, sizeClass);
    }

    /// <summary>The metadata of the slab named <paramref name="globalIndex"/>.</summary>
    public static SlabMeta* SlabByIndex(uint globalIndex) =>
        SuperslabEntry.Slab(SuperslabDirectory.Entry(Geometry.SuperslabIndexOf(globalIndex)), Geometry.SlotOf(globalIndex));

    /// <summary>Returns the slots of an empty slab the caller holds exclusively to the superslab, either
    /// giving their pages back to the system (<paramref name="decommit"/>) or leaving them resident for the
    /// next claim, until a purge (<see cref="PurgeResident"/>) gives them back; and retires the superslab if
    /// that empties it and more than the configured number of empty superslabs are mapped.</summary>
    /// <returns>How many CAS attempts on the free-slot mask failed, for statistics.</returns>
    public static int ReleaseSlab(SlabMeta* s, bool decommit)
    {
        uint index = Geometry.SuperslabIndexOf(s->GlobalIndex);
        int slot = Geometry.SlotOf(s->GlobalIndex);
        int span = s->SpanSlots;
        SuperslabEntry* e = SuperslabDirectory.Entry(index);
        var header = (SuperslabHeader*)e->Base;
        for (int i = slot; i < slot + span; i++) header->SlabOfSlot[i] = 0;
        ulong bits = SpanBits(slot, span);
        if (decommit) Decommit(e, slot, span);
        else NoteResident(e, bits); // before the slots can be claimed, so that no claim misses the mark
        s->Lifecycle = SlabLifecycle.Unused;
        s->Owner = null;
        return ReleaseSlots(e, index, bits);
    }

    /// <summary>Makes <paramref name="bits"/> of <paramref name="e"/>, claimed by the caller, claimable again,
    /// and retires the superslab if that empties it and more than the configured number of empty superslabs
    /// are mapped. Returns how many CAS attempts on the mask failed.</summary>
    private static int ReleaseSlots(SuperslabEntry* e, uint index, ulong bits)
    {
        for (int failures = 0; ; failures++)
        {
            ulong mask = (ulong)Volatile.Read(ref e->FreeMask);
            Invariant.Holds((mask & bits) == 0 && (mask & 1) == 0, "a released slab's slots were claimed, and slot 0 never is free");
            ulong next = mask | bits;
            // Loses to a concurrent claim or release of other slots; retry on the new mask.
            if ((ulong)Interlocked.CompareExchange(ref e->FreeMask, (long)next, (long)mask) != mask) continue;
            if (next == Geometry.AllSlotsFree && Interlocked.Increment(ref s_emptyCount) > SlabOptions.SuperslabCache)
                TryRetire(e, index);
            return failures;
        }
    }

    /// <summary>Returns every empty superslab beyond <paramref name="keep"/> to the system.</summary>
    public static void RetireEmpty(int keep)
    {
        int count = SuperslabDirectory.Count;
        for (uint i = 0; i < count && EmptyCount > keep; i++)
        {
            SuperslabEntry* e = SuperslabDirectory.Entry(i);
            if ((ulong)Volatile.Read(ref e->FreeMask) == Geometry.AllSlotsFree) TryRetire(e, i);
        }
    }

    /// <summary>A new superslab's range, counted as mapped: the arena's next one, or else a mapping of its own.
    /// Null when the system or the mapping limit refuses.</summary>
    private static byte* MapRange()
    {
        if (SuperslabArena.HasRoom())
        {
            // Counted (within the mapping limit) before a range is cut, so that a refusal costs the arena nothing.
            if (!OsMemory.TryRecommit(Geometry.SuperslabBytes)) return null;
            byte* region = SuperslabArena.TryCut();
            if (region != null)
            {
                if (SlabOptions.Prefault) OsMemory.Prefault(region, Geometry.SuperslabBytes);
                return region;
            }
            OsMemory.Uncount(Geometry.SuperslabBytes);
        }
        return (byte*)OsMemory.Reserve(Geometry.SuperslabBytes, Geometry.SuperslabBytes, SlabOptions.Prefault);
    }

    private static bool TryRetire(SuperslabEntry* e, uint index)
    {
        // Only an all-free superslab retires, and after this CAS nothing can be claimed from it.
        if ((ulong)Interlocked.CompareExchange(ref e->FreeMask, 0, unchecked((long)Geometry.AllSlotsFree)) != Geometry.AllSlotsFree)
            return false;
        Interlocked.Decrement(ref s_emptyCount);
        ForgetAllResident(e);
        void* region = (void*)e->Base;
        // Forgotten first, so that from here on validation calls the range foreign; what a validator that
        // looked before reads next is the range's memory, still mapped (see remarks).
        Registry.Clear((nuint)region);
        e->Live = 0;
        // Every free into the arena reads the header without asking the registry, so the arena's ranges
        // must never be unmapped, not even for the instant a remap could leave: given back in place.
        if (SuperslabArena.Contains(region)) OsMemory.ReleaseInPlace(region, Geometry.SuperslabBytes);
        else OsMemory.ReleaseKeepingRange(region, Geometry.SuperslabBytes);
        Interlocked.Increment(ref s_retiredCount);
        SlabLog.SuperslabRetired((nuint)region, index);
        Keep(index);
        return true;
    }
}
