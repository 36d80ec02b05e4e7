using System.Globalization;

namespace SlabAlloc.Interprocess;

/// <summary>Byte counts as the command line takes them (<c>4096</c>, <c>4K</c>, <c>1M</c>: binary units) and as
/// the results print them (<c>4 KiB</c>).</summary>
internal static class Sizes
{
    public static readonly int[] PingPongDefaults = [64, 256, 4096, 65536, 1 << 20];

    /// <summary>1 KiB to 16 MiB by powers of 4.</summary>
    public static readonly int[] ChunkDefaults = [1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20, 1 << 22, 1 << 24];

    public static long Parse(string text)
    {
        string t = text.Trim();
        long unit = 1;
        if (t.EndsWith('K') || t.EndsWith('k')) unit = 1 << 10;
        else if (t.EndsWith('M') || t.EndsWith('m')) unit = 1 << 20;
        else if (t.EndsWith('G') || t.EndsWith('g')) unit = 1 << 30;
        if (unit != 1) t = t[..^1];
        if (!long.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out long value) || value <= 0)
            throw new ArgumentException($"'{text}' is not a byte count (N, NK, NM or NG)");
        return checked(value * unit);
    }

    public static int[] ParseList(string text) => text.Split(',').Select(s => checked((int)Parse(s))).ToArray();

    public static string Format(long bytes) =>
        bytes >= 1 << 20 && bytes % (1 << 20) == 0 ? $"{bytes >> 20} MiB"
        : bytes >= 1 << 10 && bytes % (1 << 10) == 0 ? $"{bytes >> 10} KiB"
        : $"{bytes} B";
}
