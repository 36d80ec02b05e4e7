using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace SlabAlloc.Memory;

/// <summary>The link cells of the 64 slots of a superslab, for the pool's per-class lists.</summary>
[InlineArray(Geometry.SlotsPerSuperslab)]
internal struct SlotLinks { private int _first; }

/// <summary>The slab metadata of the 64 slots of a superslab.</summary>
[InlineArray(Geometry.SlotsPerSuperslab)]
internal struct SlotMetas { private SlabMeta _first; }

/// <summary>
/// The directory's record of one superslab: where it is, which slots are free, and the metadata
/// of its slabs. Entries live in directory segments that are never unmapped, so any thread may
/// read any entry at any time, even one whose superslab was just returned to the system.
/// </summary>
/// <remarks>
/// <para><see cref="FreeMask"/>: bit i set ⇔ slot i can be claimed. Written only by CAS:
/// claiming clears bits, releasing sets them, retiring swaps <see cref="Geometry.AllSlotsFree"/>
/// for 0. A zero mask means "full or not mapped": nothing to claim, so a fresh (zeroed) or
/// retired entry is never claimed from.</para>
/// <para><see cref="ResidentMask"/> and <see cref="AgedMask"/> are hints beside it: which free slots still
/// have their pages (a claim prefers them, so a released slab's memory is reused without page faults), and
/// which have waited a whole purge interval. Only a thread that has claimed a slot through
/// <see cref="FreeMask"/> decommits it, so a purge never touches a slot another thread holds.</para>
/// <para>Publication order: <see cref="Base"/> is written (once, when the entry is first used) before the mask is made non-zero
/// (Volatile/Interlocked release), and a claimer reads Base after its CAS (acquire), so a claim
/// always sees the base of the superslab it claimed from, even if the entry was retired and reused
/// between the claimer's read of the mask and its CAS (a benign ABA: the claimed slots are free in
/// the superslab that is there now).</para>
/// </remarks>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct SuperslabEntry
{
    /// <summary>The superslab's address range. Set when the entry is first used and kept for good: a
    /// returned superslab's range stays with its entry, empty, for the next superslab.</summary>
    public nint Base;
    public long FreeMask;
    /// <summary>1 while a superslab is mapped at <see cref="Base"/>, for statistics.</summary>
    public int Live;
    private int _pad;
    /// <summary>Bit i set: slot i was released with its pages left resident and has not been claimed or
    /// decommitted since. Set (atomic OR) before the release makes the slot claimable; cleared (atomic AND) by
    /// the claim that takes it and by the purge that decommits it, and zeroed when the superslab retires. A set
    /// bit on a slot that is not free means nothing (a claim clears its bits just after its CAS).</summary>
    public long ResidentMask;
    /// <summary>The resident free slots at the last purge pass (<see cref="Superslabs.PurgeResident"/>): a slot
    /// still resident and free at the next pass has waited a whole interval and is decommitted. Cleared by a
    /// claim with <see cref="ResidentMask"/>.</summary>
    public long AgedMask;
    private long _pad2, _pad3, _pad4;
    public SlotLinks SlotLinks;
    public SlotMetas Slabs;

    /// <summary>The metadata of slot <paramref name="slot"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static SlabMeta* Slab(SuperslabEntry* e, int slot) => (SlabMeta*)Unsafe.AsPointer(ref e->Slabs[slot]);
}
