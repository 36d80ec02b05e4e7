using System.Numerics;
using System.Runtime.CompilerServices;
using SlabAlloc.Platform;
using SlabAlloc.Support;

namespace SlabAlloc.Memory;

/// <summary>Released slots whose pages stay resident: reused first by the next claim, decommitted by a purge
/// once they have waited a whole interval.</summary>
/// <remarks>
/// <para>A slab released from the pool's release path (beyond its class's empty-list bound) keeps its pages:
/// a program whose threads come and go hands the same memory from the old threads to the new ones without a
/// page fault or a decommit. The pool's decay (every <see cref="Support.AdjustableSettings.DecayMs"/>) runs
/// <see cref="PurgeResident"/>, which decommits the slots that were resident and free at the previous pass
/// and still are: a released slot is given back to the system one to two intervals after it was last used.
/// <c>Trim</c> purges every resident slot at once.</para>
/// <para><b>Why a purge never decommits memory in use.</b> The masks are hints; ownership is
/// <see cref="SuperslabEntry.FreeMask"/>. A purge first claims the run of slots it will decommit by CAS on
/// the free mask, exactly as a stage-2 claim does, so a slot some thread has claimed (and may be formatting
/// or using) cannot be claimed by the purge, and a slot the purge holds cannot be claimed by anyone until
/// it has been decommitted and released again. A stale resident bit only makes a claim prefer a slot whose
/// pages are gone (a page fault later) or a purge claim a slot that is then decommitted early; neither
/// changes what any thread owns.</para>
/// </remarks>
internal static unsafe partial class Superslabs
{
    /// <summary>Marks <paramref name="bits"/> of <paramref name="e"/>, held by the caller and about to be
    /// released, as resident. Atomic OR: other threads set and clear other slots' bits of the same word.</summary>
    private static void NoteResident(SuperslabEntry* e, ulong bits) => Interlocked.Or(ref e->ResidentMask, (long)bits);

    /// <summary>Clears the resident marks of <paramref name="bits"/>, which the caller has just claimed (atomic AND, as
    /// other slots' bits change meanwhile; read first, so a claim of a slot with no mark costs no atomic).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ForgetResident(SuperslabEntry* e, ulong bits)
    {
        if (((ulong)Volatile.Read(ref e->ResidentMask) & bits) != 0) Interlocked.And(ref e->ResidentMask, ~(long)bits);
        if (((ulong)Volatile.Read(ref e->AgedMask) & bits) != 0) Interlocked.And(ref e->AgedMask, ~(long)bits);
    }

    /// <summary>Clears every mark of <paramref name="e"/>, whose superslab the caller has just retired (its mask
    /// is 0, so nothing can be claimed from it), before the entry can be reused.</summary>
    private static void ForgetAllResident(SuperslabEntry* e)
    {
        Volatile.Write(ref e->ResidentMask, 0);
        Volatile.Write(ref e->AgedMask, 0);
    }

    /// <summary>Gives the pages of the <paramref name="span"/> slots from <paramref name="slot"/> back to the system.</summary>
    private static void Decommit(SuperslabEntry* e, int slot, int span) =>
        OsMemory.Decommit((byte*)e->Base + ((nuint)slot << Geometry.SlotShift), (nuint)span << Geometry.SlotShift);

    /// <summary>Free slots of <paramref name="e"/> whose pages are resident (a moment-old answer).</summary>
    public static int ResidentFreeSlots(SuperslabEntry* e) =>
        BitOperations.PopCount((ulong)Volatile.Read(ref e->FreeMask) & (ulong)Volatile.Read(ref e->ResidentMask));

    /// <summary>Decommits resident free slots: those that were resident and free at the previous pass and still
    /// are, or all of them when <paramref name="all"/>; then notes the resident free slots left for the next
    /// pass. At most <paramref name="budget"/> runs of slots are decommitted (each one call to the system), so
    /// the pause stays bounded; the rest waits for the next pass. Returns how many runs were.</summary>
    public static int PurgeResident(bool all, int budget)
    {
        int runs = 0;
        int count = SuperslabDirectory.Count;
        for (uint i = 0; i < count; i++)
        {
            SuperslabEntry* e = SuperslabDirectory.Entry(i);
            if (Volatile.Read(ref e->Live) == 0) continue;
            ulong resident = (ulong)Volatile.Read(ref e->FreeMask) & (ulong)Volatile.Read(ref e->ResidentMask);
            ulong due = all ? resident : resident & (ulong)Volatile.Read(ref e->AgedMask);
            while (due != 0 && runs < budget)
            {
                int first = BitOperations.TrailingZeroCount(due);
                int length = BitOperations.TrailingZeroCount(~(due >> first));
                ulong bits = SpanBits(first, Math.Min(length, Geometry.SlotsPerSuperslab - first));
                due &= ~bits;
                if (!TryClaimExact(e, bits)) continue; // claimed meanwhile: in use again, nothing to give back
                Invariant.Holds(BelongToNoSlab(e, first, BitOperations.PopCount(bits)), "a purged slot belongs to no slab");
                Decommit(e, first, BitOperations.PopCount(bits));
                Interlocked.And(ref e->ResidentMask, ~(long)bits);
                Interlocked.And(ref e->AgedMask, ~(long)bits);
                ReleaseSlots(e, i, bits);
                runs++;
            }
            // The next pass decommits what is still resident and free then (and was not claimed in between). A plain
            // write, which may race with a claim clearing its bits: a lost clear only leaves an aged mark on a slot
            // now claimed. The next pass ignores it unless the slot is free and resident again by then, and then
            // decommits it up to one interval early; the purge still claims it first.
            Volatile.Write(ref e->AgedMask, (long)((ulong)Volatile.Read(ref e->FreeMask) & (ulong)Volatile.Read(ref e->ResidentMask)));
        }
        return runs;
    }

    /// <summary>True when none of the <paramref name="span"/> slots from <paramref name="slot"/> is covered by a slab.</summary>
    private static bool BelongToNoSlab(SuperslabEntry* e, int slot, int span)
    {
        var header = (SuperslabHeader*)e->Base;
        for (int i = slot; i < slot + span; i++)
            if (header->SlabOfSlot[i] != 0) return false;
        return true;
    }

    /// <summary>Claims exactly <paramref name="bits"/> of <paramref name="e"/>'s free mask, all or none; false when
    /// any of them is claimed already (or the superslab retired).</summary>
    private static bool TryClaimExact(SuperslabEntry* e, ulong bits)
    {
        while (true)
        {
            ulong mask = (ulong)Volatile.Read(ref e->FreeMask);
            if ((mask & bits) != bits) return false;
            // Loses to a claim or release of other slots; retry on the new mask. An ABA (these slots claimed and
            // released again between the read and the CAS) is harmless: the CAS then takes slots free at that moment.
            if ((ulong)Interlocked.CompareExchange(ref e->FreeMask, (long)(mask & ~bits), (long)mask) != mask) continue;
            if (mask == Geometry.AllSlotsFree) Interlocked.Decrement(ref s_emptyCount);
            return true;
        }
    }
}
