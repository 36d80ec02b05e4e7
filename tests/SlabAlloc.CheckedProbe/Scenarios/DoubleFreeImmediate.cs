using static SlabAlloc.CheckedProbe.Probe;

namespace SlabAlloc.CheckedProbe.Scenarios;

/// <summary>
/// <c>double-free-immediate [size]</c> (default, hardened mode): the same block of <c>size</c> bytes (64 when
/// not given) freed twice in a row, while another block of its slab is out, so that only the in-a-row check
/// can catch it. Prints <c>DOUBLE_FREE_DETECTED: &lt;message&gt;</c> when the second free throws
/// <see cref="ArgumentException"/>, or fails with <c>DOUBLE_FREE_NOT_DETECTED</c>; then checks that the next
/// two allocations of the size are two different blocks.
/// </summary>
internal static unsafe class DoubleFreeImmediate
{
    public static int Run(string[] args, long baseline)
    {
        if (args.Length > 1 || (args.Length == 1 && !nuint.TryParse(args[0], out _))) return BadArguments;
        nuint size = args.Length == 1 ? nuint.Parse(args[0]) : 64;
        void* p = SlabMemory.Alloc(size);
        void* neighbour = SlabMemory.Alloc(size); // keeps the slab from having no block out
        SlabMemory.Free(p);
        try
        {
            SlabMemory.Free(p);
            Fail("DOUBLE_FREE_NOT_DETECTED");
        }
        catch (ArgumentException e) { Console.WriteLine($"DOUBLE_FREE_DETECTED: {OneLine(e.Message)}"); }
        void* x = SlabMemory.Alloc(size), y = SlabMemory.Alloc(size);
        if (x == y) Fail($"HANDED_OUT_TWICE: 0x{(nuint)x:x}");
        SlabMemory.Free(x);
        SlabMemory.Free(y);
        SlabMemory.Free(neighbour);
        return Finish(baseline);
    }
}
