using System.Numerics;
using System.Runtime.InteropServices;

namespace SlabAlloc.Interprocess;

/// <summary>
/// A checksum of a byte stream that depends on where each byte lies in the stream: the sum of every 8-byte
/// word XORed with its word index. A lost, repeated or reordered chunk (or ring slot) moves words to other
/// indices and changes the sum, which a plain sum would not notice. Vectorized, so that the receiver of the
/// bandwidth workload can fold each chunk into it as it arrives at a small cost next to the copy.
/// </summary>
internal struct StreamChecksum
{
    private ulong _sum;
    private ulong _wordIndex;

    public readonly ulong Value => _sum;

    public void Add(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length % 8 != 0) throw new ArgumentException($"checksum: {bytes.Length} bytes is not a whole number of 8-byte words");
        ReadOnlySpan<ulong> words = MemoryMarshal.Cast<byte, ulong>(bytes);
        int lanes = Vector<ulong>.Count;
        int i = 0;
        if (words.Length >= lanes)
        {
            Span<ulong> start = stackalloc ulong[lanes];
            for (int lane = 0; lane < lanes; lane++) start[lane] = _wordIndex + (ulong)lane;
            var index = new Vector<ulong>(start);
            var step = new Vector<ulong>((ulong)lanes);
            var sum = Vector<ulong>.Zero;
            for (; i + lanes <= words.Length; i += lanes)
            {
                sum += new Vector<ulong>(words[i..]) ^ index;
                index += step;
            }
            _sum += Vector.Sum(sum);
        }
        for (; i < words.Length; i++) _sum += words[i] ^ (_wordIndex + (ulong)i);
        _wordIndex += (ulong)words.Length;
    }
}
