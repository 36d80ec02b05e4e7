using System.Runtime.InteropServices;

namespace SlabAlloc.Interprocess;

/// <summary>A page-aligned native buffer, its pages touched at creation so that no run pays their first-use
/// faults inside its measured interval.</summary>
internal sealed unsafe class NativeBuffer : IDisposable
{
    private byte* _start;

    public NativeBuffer(int lengthBytes)
    {
        Length = lengthBytes;
        _start = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(lengthBytes, 1), 4096);
        Span.Clear();
    }

    public int Length { get; }

    public Span<byte> Span => new(_start, Length);

    public void Dispose()
    {
        NativeMemory.AlignedFree(_start);
        _start = null;
    }
}
