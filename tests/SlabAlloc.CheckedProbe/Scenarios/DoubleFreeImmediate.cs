using static SlabAlloc.CheckedProbe.Probe;

namespace SlabAlloc.CheckedProbe.Scenarios;

/// <summary>
/// <c>double-free-immediate</c> (default, hardened mode): the same 64-byte block freed twice in a row. Prints
/// <c>DOUBLE_FREE_DETECTED: &lt;message&gt;</c> when the second free throws <see cref="ArgumentException"/>,
/// or fails with <c>DOUBLE_FREE_NOT_DETECTED</c>.
/// </summary>
internal static unsafe class DoubleFreeImmediate
{
    public static int Run(string[] args, long baseline)
    {
        void* p = SlabMemory.Alloc(64);
        SlabMemory.Free(p);
        try
        {
            SlabMemory.Free(p);
            Fail("DOUBLE_FREE_NOT_DETECTED");
        }
        catch (ArgumentException e) { Console.WriteLine($"DOUBLE_FREE_DETECTED: {OneLine(e.Message)}"); }
        return Finish(baseline);
    }
}
