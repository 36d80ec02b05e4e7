using System.Globalization;

namespace SlabAlloc.Testing;

/// <summary>
/// The payload sizes of the echo's messages: log-uniform between <see cref="MinBytes"/> and
/// <see cref="MaxBytes"/> (each power of two between them as likely as any other, so that small and
/// large messages are both common), or one fixed size when the two are equal.
/// </summary>
/// <remarks>A uniform draw over 1 B to 1 MiB would make nine messages in ten larger than 100 KiB; the
/// log-uniform one gives as many of 1-2 KiB as of 512 KiB-1 MiB.</remarks>
internal readonly record struct EchoSizes
{
    public EchoSizes(int minBytes, int maxBytes)
    {
        if (minBytes < 0 || maxBytes < minBytes || maxBytes > EchoFrame.MaxPayloadBytes || (minBytes == 0 && maxBytes > 0))
            throw new ArgumentException($"message sizes: {minBytes}-{maxBytes} is not a range within 1-{EchoFrame.MaxPayloadBytes} (or one size from 0)");
        MinBytes = minBytes;
        MaxBytes = maxBytes;
    }

    public int MinBytes { get; }
    public int MaxBytes { get; }

    /// <summary>Parses <c>N</c> (every message N bytes) or <c>MIN-MAX</c> (log-uniform).</summary>
    public static EchoSizes Parse(string text)
    {
        string[] parts = text.Split('-');
        if (parts.Length is < 1 or > 2 || !parts.All(p => int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out _)))
            throw new ArgumentException($"message sizes: '{text}' is neither N nor MIN-MAX");
        int min = int.Parse(parts[0], CultureInfo.InvariantCulture);
        return new EchoSizes(min, parts.Length == 2 ? int.Parse(parts[1], CultureInfo.InvariantCulture) : min);
    }

    /// <summary>The next size, drawn from <paramref name="random"/>.</summary>
    public int Next(Random random)
    {
        if (MinBytes == MaxBytes) return MinBytes;
        double logMin = Math.Log(MinBytes), logEnd = Math.Log(MaxBytes + 1.0);
        return Math.Min(MaxBytes, (int)Math.Exp(logMin + random.NextDouble() * (logEnd - logMin)));
    }

    public override string ToString() =>
        MinBytes == MaxBytes ? MinBytes.ToString(CultureInfo.InvariantCulture) : string.Create(CultureInfo.InvariantCulture, $"{MinBytes}-{MaxBytes}");
}
