using System.Runtime.InteropServices;
using SlabAlloc.Memory;

namespace SlabAlloc.Interprocess;

/// <summary>
/// The first page of a shared region: what the creator laid out (written once, before <see cref="Magic"/>),
/// then the few words every process changes, each on a cache line of its own.
/// </summary>
/// <remarks>
/// <para><b>Written once.</b> Everything up to <see cref="Checksum"/> is written by the creator before it
/// publishes <see cref="Magic"/> with a release store; an opener that reads the magic with an acquire load
/// sees all of it. An opener never trusts these fields: it recomputes the layout from the creation
/// parameters and compares every offset (<see cref="RegionLayout.Verify"/>).</para>
/// <para><b>Changed by any process.</b> <see cref="MaintenanceOwner"/> by compare-exchange (the identity of
/// the process that runs maintenance, 0 when none); <see cref="MaintenanceEpoch"/> by increment, as a futex
/// word that waiters sleep on; <see cref="SlabsCarved"/> by compare-exchange (slabs never used below it);
/// <see cref="FreeSlabs"/>, a tagged stack of slab indices; the counters by increment, or by the maintainer
/// alone.</para>
/// </remarks>
[StructLayout(LayoutKind.Explicit, Size = 4096)]
internal struct RegionHeader
{
    /// <summary>"SLABSHM1" in little-endian bytes.</summary>
    public const ulong ExpectedMagic = 0x314D_4853_4241_4C53;
    public const uint CurrentVersion = 1;

    [FieldOffset(0)] public ulong Magic;
    [FieldOffset(8)] public uint LayoutVersion;
    [FieldOffset(12)] public uint UnitBytes;
    [FieldOffset(16)] public ulong RegionBytes;
    [FieldOffset(24)] public ulong SlabBytes;
    [FieldOffset(32)] public uint SlabCount;
    [FieldOffset(36)] public uint ClassCount;
    [FieldOffset(40)] public uint ProcessSlots;
    [FieldOffset(44)] public uint ChannelCount;
    [FieldOffset(48)] public ulong ProcessTableOffset;
    [FieldOffset(56)] public ulong ClassTableOffset;
    [FieldOffset(64)] public ulong ChannelTableOffset;
    [FieldOffset(72)] public ulong SlabTableOffset;
    [FieldOffset(80)] public ulong OwnerTableOffset;
    [FieldOffset(88)] public ulong SlabAreaOffset;
    [FieldOffset(96)] public long CreatorIdentity;
    [FieldOffset(104)] public long CreatedUnixMilliseconds;
    /// <summary>FNV-1a over bytes 8 to 111 and the channel descriptors.</summary>
    [FieldOffset(112)] public ulong Checksum;

    [FieldOffset(192)] public long MaintenanceOwner;
    [FieldOffset(200)] public int MaintenanceEpoch;

    [FieldOffset(256)] public long SlabsCarved;

    [FieldOffset(320)] public TaggedIndexStack FreeSlabs;

    [FieldOffset(384)] public long MaintenanceRuns;
    [FieldOffset(392)] public long ProcessesRecovered;
    [FieldOffset(400)] public long BlocksReclaimed;
    [FieldOffset(408)] public long SlabsReturned;
    [FieldOffset(416)] public long MessagesDropped;
    [FieldOffset(424)] public long ProcessesJoined;

    /// <summary>The bytes the checksum covers in the header: from <see cref="LayoutVersion"/> to <see cref="Checksum"/>.</summary>
    public const int ChecksummedStart = 8;
    public const int ChecksummedEnd = 112;
}

/// <summary>One slot of the process table: the identity of the process in it (0 when free) and how many of its
/// threads are inside a heap operation. The slot's per-class cache stacks follow it.</summary>
/// <remarks><see cref="Identity"/> is claimed by compare-exchange from 0 and given back by the process itself
/// on dispose or by maintenance once the process is dead. <see cref="ActiveOperations"/> is incremented and
/// decremented by the process's own threads (interlocked: they race with each other), and read by a
/// maintainer waiting for quiescence.</remarks>
[StructLayout(LayoutKind.Explicit, Size = 64)]
internal struct ProcessRecord
{
    [FieldOffset(0)] public long Identity;
    [FieldOffset(8)] public long ActiveOperations;
}

/// <summary>One entry of the slab table: the slab's class plus one (0 while the slab is free) and its link in
/// <see cref="RegionHeader.FreeSlabs"/>.</summary>
/// <remarks>The class is written by the process that took the slab, before any of its blocks is pushed
/// anywhere, and cleared by maintenance alone.</remarks>
[StructLayout(LayoutKind.Explicit, Size = 8)]
internal struct SlabEntry
{
    [FieldOffset(0)] public uint ClassPlusOne;
    [FieldOffset(4)] public int FreeLink;
}
