using System.Buffers.Binary;
using SlabAlloc.Interprocess;

namespace SlabAlloc.Tests.Interprocess;

/// <summary>Writes and reads a heap's region through its file, as another process (crashed or hostile) would leave it:
/// the file is the memory, so the heap's mapping sees every write at once.</summary>
internal sealed class RegionPoke(SharedHeap heap, int processes, params SharedChannelOptions[] channels)
{
    /// <summary>The region's layout, computed as the heap computes it.</summary>
    public readonly RegionLayout Layout = new((ulong)heap.RegionBytes, (ulong)heap.MaxBlockBytes, processes,
        channels.Select(c => c.Name).ToArray(), channels.Select(c => (uint)c.Capacity).ToArray());

    /// <summary>An identity no live process has: the largest pid Linux allows, with a made-up start time.</summary>
    public static readonly long DeadIdentity = 12345L << 22 | 4194303;

    public void Write64(ulong offset, long value)
    {
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(bytes, value);
        WriteBytes(offset, bytes);
    }

    public void Write32(ulong offset, int value)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, value);
        WriteBytes(offset, bytes);
    }

    public long Read64(ulong offset)
    {
        Span<byte> bytes = stackalloc byte[8];
        using var handle = File.OpenHandle(heap.Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        RandomAccess.Read(handle, bytes, (long)offset);
        return BinaryPrimitives.ReadInt64LittleEndian(bytes);
    }

    private void WriteBytes(ulong offset, ReadOnlySpan<byte> bytes)
    {
        using var handle = File.OpenHandle(heap.Path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        RandomAccess.Write(handle, bytes, (long)offset);
    }

    public ulong Record(int slot) => Layout.ProcessTableOffset + (ulong)slot * Layout.ProcessRecordBytes;
    public ulong Channel(int channel) => Layout.ChannelOffsets[channel];
    public ulong Cell(int channel, long position) =>
        Channel(channel) + ChannelHeader.Bytes + (ulong)(position & (Layout.ChannelCapacities[channel] - 1)) * 16;
    public ulong OwnerWordOf(long blockOffset) => Layout.OwnerTableOffset + (ulong)(blockOffset / 64 - Layout.SlabAreaUnit) * 4;
}
