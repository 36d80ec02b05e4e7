using System.Runtime.CompilerServices;
using SlabAlloc.Platform;
using SlabAlloc.Support;

namespace SlabAlloc.Memory;

/// <summary>
/// One range of address space, reserved at start-up, that new superslabs are cut from in order, so that
/// "could a superslab start at this pointer's 4 MiB granule?" is a subtraction and a comparison with a
/// value that does not depend on the pointer, instead of a load from the registry that does.
/// </summary>
/// <remarks>
/// <para><b>Open part.</b> The range is reserved inaccessible (no memory, nothing charged, nothing for
/// <c>mlock</c> to fill in) and opened, read-write, one superslab at a time and in order, when it is cut.
/// <see cref="s_open"/> is the length of the open prefix: every byte below it is mapped readable and
/// stays so (nothing in the arena is ever unmapped or closed again: a retired superslab gives its memory
/// back in place, <see cref="OsMemory.ReleaseInPlace"/>). So a pointer below it may have its superslab
/// header read whatever is there: a header of zeroes names no slab, and validation rejects the pointer.
/// A pointer above it, or outside the arena, is validated through the registry.</para>
/// <para><b>Cutting</b> claims the next range with a CAS on <see cref="s_cut"/>; then the claimer opens
/// ranges from <see cref="s_open"/> on, one <c>mprotect</c> and one CAS of <see cref="s_open"/> each,
/// until its own range is open. It opens other claimers' ranges on the way when they are slower, so no
/// claimer waits for another (opening a range twice changes nothing: it is already read-write and nobody
/// has written it yet, or it is written and stays as it is). <see cref="s_open"/> only grows, one range at
/// a time, and only over a range that was made read-write first: it never covers an inaccessible byte.
/// If the system refuses to open a range, the arena is closed for good (<see cref="s_refused"/>): ranges
/// not open by then are never used, and new superslabs are mapped one by one as before.</para>
/// <para><b>Used up.</b> The first caller to find no range left to cut, or the one the system refused,
/// notes it, and the pool logs it once when it has let go of its guard (<see cref="ReportUsedUp"/>,
/// <see cref="SlabLog.SuperslabArenaUsedUp"/>, a warning in every build): from then on every
/// free of a new superslab's block pays the registry's load again.</para>
/// </remarks>
internal static unsafe class SuperslabArena
{
    /// <summary>Address space reserved for superslabs: 16,384 of them.</summary>
    private const ulong ReservedBytes = 64UL << 30;

    /// <summary>The first superslab's address (4 MiB aligned); 0 when there is no arena.</summary>
    private static readonly nuint s_base = ReserveBase();

    /// <summary>Bytes of the arena; 0 when there is none.</summary>
    private static readonly nuint s_bytes = s_base == 0 ? 0 : unchecked((nuint)ReservedBytes);

    /// <summary>Bytes claimed by cuts so far.</summary>
    private static long s_cut;

    /// <summary>Bytes at the arena's start that are open (mapped read-write); see remarks.</summary>
    private static long s_open;

    /// <summary>1 once the system refused to open a range.</summary>
    private static int s_refused;

    /// <summary>0, then 1 once a cut found the arena used up (to be logged), then 2 once that was logged.</summary>
    private static int s_usedUpState;

    private static nuint ReserveBase()
    {
        // Over-reserved by one superslab so that a 4 MiB aligned range of the full size fits; the slack is never opened.
        var raw = (nuint)OsMemory.ReserveInaccessible(unchecked((nuint)ReservedBytes) + Geometry.SuperslabBytes);
        return raw == 0 ? 0 : (raw + Geometry.SuperslabMask) & ~Geometry.SuperslabMask;
    }

    /// <summary>True if <paramref name="p"/> lies in the open part of the arena, whose every superslab header is readable.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Contains(void* p) => (nuint)p - s_base < (nuint)Volatile.Read(ref s_open);

    /// <summary>The arena's first address, its size and the bytes open so far (all 0 when there is none).</summary>
    public static (nuint Base, nuint Bytes, nuint Open) Range => (s_base, s_bytes, (nuint)Volatile.Read(ref s_open));

    /// <summary>True when no range is left to cut (or there is no arena, or the system refused to open one).</summary>
    public static bool IsUsedUp => (nuint)Volatile.Read(ref s_cut) + Geometry.SuperslabBytes > s_bytes || Volatile.Read(ref s_refused) != 0;

    /// <summary>True when a range is left to cut; when it is not, notes so for <see cref="ReportUsedUp"/>.</summary>
    public static bool HasRoom()
    {
        if (!IsUsedUp) return true;
        NoteUsedUp();
        return false;
    }

    /// <summary>Marks the whole arena as cut, so that every new superslab is mapped on its own from now on.
    /// For tests of that path; nothing else calls it.</summary>
    public static void UseUp() => Volatile.Write(ref s_cut, (long)s_bytes);

    /// <summary>The next superslab-sized range of the arena, open (read-write, zero-filled), not counted as
    /// mapped (the caller counts it); null when the arena is used up, there is none, or the system refused
    /// to open a range.</summary>
    public static byte* TryCut()
    {
        long mine;
        while (true)
        {
            mine = Volatile.Read(ref s_cut);
            if ((nuint)mine + Geometry.SuperslabBytes > s_bytes || Volatile.Read(ref s_refused) != 0)
            {
                NoteUsedUp();
                return null;
            }
            // Loses only to another cut; the offset only grows, so there is no ABA.
            if (Interlocked.CompareExchange(ref s_cut, mine + (long)Geometry.SuperslabBytes, mine) == mine) break;
        }
        while (true)
        {
            long open = Volatile.Read(ref s_open);
            if (open > mine) return (byte*)(s_base + (nuint)mine);
            if (Volatile.Read(ref s_refused) != 0) return null;
            if (!OsMemory.TryMakeWritable((void*)(s_base + (nuint)open), Geometry.SuperslabBytes))
            {
                Volatile.Write(ref s_refused, 1);
                NoteUsedUp();
                return null;
            }
            // Loses to another claimer that opened the same range first (both made it read-write). The open
            // length only grows, one range per CAS, so a stale value never matches again: no ABA.
            Interlocked.CompareExchange(ref s_open, open + (long)Geometry.SuperslabBytes, open);
        }
    }

    /// <summary>Notes that the arena has no range left to cut, for <see cref="ReportUsedUp"/> to log (nothing when
    /// there is no arena). Found at stage 3, where the mutex pool holds its lock: a logger must not run there.</summary>
    private static void NoteUsedUp()
    {
        // Loses to another cut that noted it first, or to a report already made: both leave the state where it
        // should be. The state only grows (0, 1, 2), so a value once passed never comes back: no ABA.
        if (s_bytes != 0) Interlocked.CompareExchange(ref s_usedUpState, 1, 0);
    }

    /// <summary>Logs, once per process, that the arena has no range left to cut, and why, if a cut has found so.
    /// Called by the pool with nothing held.</summary>
    public static void ReportUsedUp()
    {
        // Loses to another thread logging it: once per process (the state only grows, so no ABA).
        if (Volatile.Read(ref s_usedUpState) == 1 && Interlocked.CompareExchange(ref s_usedUpState, 2, 1) == 1)
            SlabLog.SuperslabArenaUsedUp((long)s_bytes, Volatile.Read(ref s_open), Volatile.Read(ref s_refused) != 0);
    }
}
