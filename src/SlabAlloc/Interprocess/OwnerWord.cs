namespace SlabAlloc.Interprocess;

/// <summary>
/// Who holds a block, one 32-bit word per unit in the owner table (only the word of a block's first unit is
/// used): free, held by the process in a slot, or in flight in a channel.
/// </summary>
/// <remarks>Every change of hands is a compare-exchange on this word, so of two processes racing on one block
/// (two frees, a free and a send) exactly one wins and the other gets a clear error. The word is also what
/// recovery trusts: a block held by a process found dead is free again, whatever that process was doing.</remarks>
internal static class OwnerWord
{
    public const uint Free = 0;
    private const uint ChannelFlag = 0x8000_0000;

    /// <summary>Held by the process in <paramref name="slot"/>.</summary>
    public static uint Held(int slot) => (uint)slot + 1;

    /// <summary>In flight in channel <paramref name="channel"/>.</summary>
    public static uint InChannel(int channel) => ChannelFlag | (uint)channel;

    public static bool IsHeld(uint word) => word != Free && (word & ChannelFlag) == 0;

    public static bool IsInChannel(uint word) => (word & ChannelFlag) != 0;

    /// <summary>The slot of a held word.</summary>
    public static int SlotOf(uint word) => (int)word - 1;

    /// <summary>The channel of an in-channel word.</summary>
    public static int ChannelOf(uint word) => (int)(word & ~ChannelFlag);

    public static string Describe(uint word) =>
        word == Free ? "free" : IsInChannel(word) ? $"in channel {ChannelOf(word)}" : $"held by process slot {SlotOf(word)}";
}
