using System.Numerics;

namespace SlabAlloc.Testing;

/// <summary>
/// A histogram of latencies in <see cref="System.Diagnostics.Stopwatch"/> ticks with a fixed set of
/// buckets, so that recording a value allocates nothing and costs an increment: values below 128 each
/// have a bucket of their own, and every power of two above is cut into 128 equal buckets, so a
/// percentile is an upper bound at most 1/128 (0.8%) above the true value.
/// </summary>
/// <remarks>Not thread-safe: each thread (or client) records into its own, and <see cref="Add"/> merges
/// them once they are done. A linked source file, compiled into the workloads (the Pipelines echo) and the
/// interprocess benchmark, like the other files of tools/Shared.</remarks>
internal sealed class LatencyHistogram
{
    private const int SubBucketBits = 7;
    private const int SubBuckets = 1 << SubBucketBits;

    /// <summary>Values 0..127, then 128 buckets for each top bit from 7 to 62.</summary>
    private readonly long[] _counts = new long[(63 - SubBucketBits + 1) * SubBuckets];

    /// <summary>Values recorded.</summary>
    public long Count { get; private set; }

    /// <summary>Records one value; a negative one counts as 0.</summary>
    public void Record(long ticks)
    {
        _counts[BucketOf(Math.Max(ticks, 0))]++;
        Count++;
    }

    /// <summary>Adds every value of <paramref name="other"/> to this histogram.</summary>
    public void Add(LatencyHistogram other)
    {
        for (int i = 0; i < _counts.Length; i++) _counts[i] += other._counts[i];
        Count += other.Count;
    }

    /// <summary>The smallest bucket bound at or above <paramref name="percentile"/> percent of the values
    /// (the largest value of that bucket), in ticks; 0 when nothing was recorded.</summary>
    public long ValueAtPercentile(double percentile)
    {
        if (Count == 0) return 0;
        long rank = Math.Max(1, (long)Math.Ceiling(percentile / 100 * Count));
        long seen = 0;
        for (int i = 0; i < _counts.Length; i++)
        {
            seen += _counts[i];
            if (seen >= rank) return i + 1 < _counts.Length ? LowestOf(i + 1) - 1 : long.MaxValue;
        }
        throw new InvalidOperationException("the buckets hold fewer values than Count");
    }

    /// <summary>Below 128 the value itself; above, 128 buckets per top bit: bucket (shift + 1) * 128 +
    /// the 7 bits under the top one, where shift is the top bit's position less 7.</summary>
    private static int BucketOf(long value)
    {
        if (value < SubBuckets) return (int)value;
        int shift = 63 - BitOperations.LeadingZeroCount((ulong)value) - SubBucketBits;
        return (shift + 1) * SubBuckets + (int)(value >> shift) - SubBuckets;
    }

    /// <summary>The smallest value of <paramref name="bucket"/>: the inverse of <see cref="BucketOf"/>.</summary>
    private static long LowestOf(int bucket)
    {
        if (bucket < SubBuckets) return bucket;
        int shift = bucket / SubBuckets - 1;
        return (long)(bucket % SubBuckets + SubBuckets) << shift;
    }
}
