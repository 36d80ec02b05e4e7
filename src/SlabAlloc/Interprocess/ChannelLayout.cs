using System.Runtime.InteropServices;

namespace SlabAlloc.Interprocess;

/// <summary>
/// The shared part of a channel: its name and capacity (written once by the creator), the two positions of a
/// bounded multi-producer, multi-consumer ring, and the futex words that blocked receivers and senders sleep on.
/// The cells follow it.
/// </summary>
/// <remarks>
/// <para>Each position is on a cache line of its own, as are the two directions' wait words, so senders and
/// receivers do not falsely share.</para>
/// <para><see cref="EnqueuePosition"/> and <see cref="DequeuePosition"/> only grow, by compare-exchange; they are
/// 64-bit, so they do not wrap in practice and a stale position can never be taken for a current one.</para>
/// <para><see cref="NotEmptyEvents"/> / <see cref="NotFullEvents"/> are bumped by a sender / receiver that sees a
/// waiter (<see cref="ReceiversWaiting"/> / <see cref="SendersWaiting"/> nonzero) before it wakes one.</para>
/// </remarks>
[StructLayout(LayoutKind.Explicit, Size = Bytes)]
internal unsafe struct ChannelHeader
{
    public const int Bytes = 320;
    public const int NameBytes = 48;

    [FieldOffset(0)] public fixed byte Name[NameBytes];
    [FieldOffset(48)] public uint Capacity;
    [FieldOffset(52)] public uint Index;

    [FieldOffset(64)] public long EnqueuePosition;
    [FieldOffset(128)] public long DequeuePosition;

    [FieldOffset(192)] public int NotEmptyEvents;
    [FieldOffset(196)] public int ReceiversWaiting;

    [FieldOffset(256)] public int NotFullEvents;
    [FieldOffset(260)] public int SendersWaiting;
}

/// <summary>A cell of a channel's ring: the position it is ready for, and the message (a block's unit index in
/// the high 32 bits, the message's length in the low 32; unit 0 marks a message dropped by recovery).</summary>
/// <remarks>For position p in cell p mod capacity: <see cref="Sequence"/> == p means empty and ready for the
/// sender of p; == p + 1 means full, ready for the receiver of p; the receiver sets it to p + capacity,
/// which empties it for the sender one lap later.</remarks>
[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct ChannelCell
{
    [FieldOffset(0)] public long Sequence;
    [FieldOffset(8)] public ulong Message;
}
