using static SlabAlloc.CheckedProbe.Probe;

namespace SlabAlloc.CheckedProbe.Scenarios;

/// <summary>
/// <c>overflow [size]</c> (default, hardened mode): a heap overflow overwrites a free block's link. Frees a
/// block of <c>size</c> bytes (96 when not given; above 1 KiB the block goes to the thread's free cache),
/// overwrites its link with the address of foreign memory (what an overflow from the block before it would
/// do), then allocates from the class until the allocator reaches that block. Prints
/// <c>CORRUPTION_DETECTED: message</c> and exits 0 when it is reported (and the rest of the allocator still
/// works; then <c>SIZE_ALLOCATES_AGAIN</c> or <c>SIZE_STILL_REPORTS: message</c>, and <c>TRIM_RETURNS</c> or
/// <c>TRIM_REPORTS: message</c>, say what the size and <c>Trim</c> do next), or
/// <c>FOREIGN_HANDED_OUT</c> and exits 3 when the foreign address comes back as a block. No
/// <c>PROBE_OK</c>: the allocator is left corrupted on purpose.
/// </summary>
internal static unsafe class Overflow
{
    public static int Run(string[] args, long baseline)
    {
        if (args.Length > 1 || (args.Length == 1 && !nuint.TryParse(args[0], out _))) return BadArguments;
        nuint size = args.Length == 1 ? nuint.Parse(args[0]) : 96;
        byte* foreign = (byte*)System.Runtime.InteropServices.NativeMemory.Alloc(4096);
        var held = new List<nint>();
        byte* victim = (byte*)SlabMemory.Alloc(size);
        SlabMemory.Free(victim);
        *(byte**)victim = foreign; // the overflow
        try
        {
            for (int i = 0; i < 100_000; i++)
            {
                byte* p = (byte*)SlabMemory.Alloc(size);
                if (p == foreign)
                {
                    Console.WriteLine("FOREIGN_HANDED_OUT");
                    return 3;
                }
                held.Add((nint)p);
            }
            Console.WriteLine("NOT_REACHED");
            return 1;
        }
        catch (InvalidOperationException e)
        {
            Console.WriteLine($"CORRUPTION_DETECTED: {OneLine(e.Message)}");
            // The rest of the allocator still works: other classes, other threads.
            CheckAllocatorWorks(SlabMemory.GetStatistics().BlocksInUse);
            try
            {
                SlabMemory.Free(SlabMemory.Alloc(size));
                Console.WriteLine("SIZE_ALLOCATES_AGAIN");
            }
            catch (InvalidOperationException again)
            {
                Console.WriteLine($"SIZE_STILL_REPORTS: {OneLine(again.Message)}");
            }
            try
            {
                SlabMemory.Trim();
                Console.WriteLine("TRIM_RETURNS");
            }
            catch (InvalidOperationException trimmed)
            {
                Console.WriteLine($"TRIM_REPORTS: {OneLine(trimmed.Message)}");
            }
            return Failed ? 1 : 0;
        }
    }
}
