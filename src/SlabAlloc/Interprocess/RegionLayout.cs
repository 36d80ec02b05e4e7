using System.Runtime.CompilerServices;
using System.Text;

namespace SlabAlloc.Interprocess;

/// <summary>
/// Where everything of a shared region lies, computed from the creation parameters alone: the header page,
/// the process table, the global class stacks, the channels, the slab table, the owner table and the slabs.
/// </summary>
/// <remarks>
/// <code>
/// offset 0       RegionHeader (4 KiB)
///                per slot: ProcessRecord, a cache stack per class     (64 bytes each),
///                          its sleepers per channel                   (8 bytes each)
///                global stack per class                               (64 bytes each)
///                channels: ChannelHeader + Capacity cells of 16 bytes
///                SlabEntry per slab                                   (8 bytes each)
///                owner word per unit of the slab area                 (4 bytes per 64)
/// page-aligned   slabs, SlabBytes each
/// </code>
/// A block is named by its unit index: its offset from the region's start divided by 64. The header takes
/// unit 0, so 0 never names a block. The creator writes the parameters and the offsets; an opener computes
/// the layout again from the parameters and rejects a region whose stored offsets differ
/// (<see cref="Verify"/>).
/// </remarks>
internal sealed class RegionLayout
{
    public const int HeaderBytes = 4096;
    private const int LineBytes = 64;
    private const int PageBytes = 4096;
    public const int MaxProcessSlots = 1024;
    public const int MaxChannels = 64;
    public const int MinSlabBytes = 64 * 1024;
    public const int MaxSlabBytes = 64 * 1024 * 1024;
    /// <summary>Unit indices are 32-bit: 2^32 units of 64 bytes.</summary>
    public const long MaxRegionBytes = 1L << 38;

    public readonly ulong RegionBytes;
    public readonly ulong SlabBytes;
    public readonly int ProcessSlots;
    public readonly int ClassCount;
    public readonly int SlabCount;
    public readonly ulong ProcessTableOffset;
    public readonly ulong ProcessRecordBytes;
    /// <summary>Where in a process record its per-channel wait counts start (two ints per channel: receivers
    /// and senders of that process asleep on the channel).</summary>
    public readonly ulong WaitCountsInRecord;
    public readonly ulong ClassTableOffset;
    public readonly ulong ChannelTableOffset;
    public readonly ulong SlabTableOffset;
    public readonly ulong OwnerTableOffset;
    public readonly ulong SlabAreaOffset;
    public readonly string[] ChannelNames;
    public readonly uint[] ChannelCapacities;
    public readonly ulong[] ChannelOffsets;

    /// <summary>The unit index of the first slab's first block.</summary>
    public readonly uint SlabAreaUnit;
    /// <summary>Units per slab.</summary>
    public readonly uint SlabUnits;
    /// <summary>Per class: the block size in units, and how many blocks one slab holds.</summary>
    public readonly uint[] BlockUnits;
    public readonly uint[] BlocksPerSlab;

    public RegionLayout(ulong regionBytes, ulong slabBytes, int processSlots, string[] channelNames, uint[] channelCapacities)
    {
        RegionBytes = regionBytes;
        SlabBytes = slabBytes;
        ProcessSlots = processSlots;
        ChannelNames = channelNames;
        ChannelCapacities = channelCapacities;
        ClassCount = SharedSizeClasses.CountFor((nuint)slabBytes);
        BlockUnits = new uint[ClassCount];
        BlocksPerSlab = new uint[ClassCount];
        for (int c = 0; c < ClassCount; c++)
        {
            ulong bytes = SharedSizeClasses.BlockBytes(c);
            BlockUnits[c] = (uint)(bytes / SharedSizeClasses.UnitBytes);
            BlocksPerSlab[c] = (uint)(slabBytes / bytes);
        }

        ulong offset = HeaderBytes;
        ProcessTableOffset = offset;
        WaitCountsInRecord = (ulong)(1 + ClassCount) * LineBytes;
        ProcessRecordBytes = WaitCountsInRecord + AlignUp((ulong)channelNames.Length * 8, LineBytes);
        offset += (ulong)processSlots * ProcessRecordBytes;
        ClassTableOffset = offset;
        offset += (ulong)ClassCount * LineBytes;
        ChannelTableOffset = offset;
        ChannelOffsets = new ulong[channelNames.Length];
        for (int i = 0; i < channelNames.Length; i++)
        {
            ChannelOffsets[i] = offset;
            offset += (ulong)ChannelHeader.Bytes + channelCapacities[i] * (ulong)Unsafe.SizeOf<ChannelCell>();
        }
        offset = AlignUp(offset, LineBytes);
        ulong fixedBytes = offset;
        // Per slab: its entry, the owner words of its units, the slab itself; plus two pages of alignment slack.
        ulong perSlab = 8 + slabBytes / SharedSizeClasses.UnitBytes * 4 + slabBytes;
        ulong available = regionBytes > fixedBytes + 2 * PageBytes ? regionBytes - fixedBytes - 2 * PageBytes : 0;
        SlabCount = (int)Math.Min(available / perSlab, int.MaxValue);
        SlabTableOffset = offset;
        offset += (ulong)SlabCount * 8;
        OwnerTableOffset = AlignUp(offset, LineBytes);
        offset = OwnerTableOffset + (ulong)SlabCount * (slabBytes / SharedSizeClasses.UnitBytes) * 4;
        SlabAreaOffset = AlignUp(offset, PageBytes);
        SlabAreaUnit = (uint)(SlabAreaOffset / SharedSizeClasses.UnitBytes);
        SlabUnits = (uint)(slabBytes / SharedSizeClasses.UnitBytes);
    }

    /// <summary>Units of the slab area.</summary>
    public ulong TotalSlabUnits => (ulong)SlabCount * SlabUnits;

    /// <summary>The bytes a region with these parameters needs at the least (one slab).</summary>
    public static string? Problem(ulong regionBytes, ulong slabBytes, int processSlots, string[] names, uint[] capacities)
    {
        if (slabBytes < MinSlabBytes || slabBytes > MaxSlabBytes || (slabBytes & (slabBytes - 1)) != 0)
            return $"the slab size must be a power of two from {MinSlabBytes} to {MaxSlabBytes} bytes, not {slabBytes}";
        if (processSlots < 1 || processSlots > MaxProcessSlots)
            return $"the number of processes must be from 1 to {MaxProcessSlots}, not {processSlots}";
        if (names.Length > MaxChannels) return $"a region holds at most {MaxChannels} channels";
        if (regionBytes > MaxRegionBytes) return $"a region is at most {MaxRegionBytes} bytes";
        for (int i = 0; i < names.Length; i++)
        {
            int bytes = Encoding.UTF8.GetByteCount(names[i]);
            if (bytes == 0 || bytes > ChannelHeader.NameBytes) return $"a channel name is 1 to {ChannelHeader.NameBytes} bytes of UTF-8, not '{names[i]}'";
            if (Array.IndexOf(names, names[i]) != i) return $"the channel name '{names[i]}' appears twice";
            if (capacities[i] < 2 || capacities[i] > 1u << 20 || (capacities[i] & (capacities[i] - 1)) != 0)
                return $"a channel's capacity must be a power of two from 2 to {1 << 20}, not {capacities[i]}";
        }
        var layout = new RegionLayout(regionBytes, slabBytes, processSlots, names, capacities);
        if (layout.SlabCount < 1) return $"{regionBytes} bytes do not hold the tables and one slab of {slabBytes} bytes";
        return null;
    }

    /// <summary>Writes the parameters and offsets into a fresh header (the checksum and magic come later).</summary>
    public void WriteInto(ref RegionHeader header)
    {
        header.LayoutVersion = RegionHeader.CurrentVersion;
        header.UnitBytes = SharedSizeClasses.UnitBytes;
        header.RegionBytes = RegionBytes;
        header.SlabBytes = SlabBytes;
        header.SlabCount = (uint)SlabCount;
        header.ClassCount = (uint)ClassCount;
        header.ProcessSlots = (uint)ProcessSlots;
        header.ChannelCount = (uint)ChannelNames.Length;
        header.ProcessTableOffset = ProcessTableOffset;
        header.ClassTableOffset = ClassTableOffset;
        header.ChannelTableOffset = ChannelTableOffset;
        header.SlabTableOffset = SlabTableOffset;
        header.OwnerTableOffset = OwnerTableOffset;
        header.SlabAreaOffset = SlabAreaOffset;
    }

    /// <summary>The first field of a stored header that differs from this layout, or null when all agree.</summary>
    public string? Verify(in RegionHeader header)
    {
        if (header.UnitBytes != SharedSizeClasses.UnitBytes) return $"unit size {header.UnitBytes}";
        if (header.SlabCount != (uint)SlabCount) return $"slab count {header.SlabCount}, expected {SlabCount}";
        if (header.ClassCount != (uint)ClassCount) return $"class count {header.ClassCount}, expected {ClassCount}";
        if (header.ProcessTableOffset != ProcessTableOffset) return "process table offset";
        if (header.ClassTableOffset != ClassTableOffset) return "class table offset";
        if (header.ChannelTableOffset != ChannelTableOffset) return "channel table offset";
        if (header.SlabTableOffset != SlabTableOffset) return "slab table offset";
        if (header.OwnerTableOffset != OwnerTableOffset) return "owner table offset";
        if (header.SlabAreaOffset != SlabAreaOffset) return "slab area offset";
        if (SlabAreaOffset + (ulong)SlabCount * SlabBytes > RegionBytes) return "slabs beyond the region's end";
        return null;
    }

    private static ulong AlignUp(ulong value, ulong alignment) => (value + alignment - 1) & ~(alignment - 1);
}
