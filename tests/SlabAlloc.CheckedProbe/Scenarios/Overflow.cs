using static SlabAlloc.CheckedProbe.Probe;

namespace SlabAlloc.CheckedProbe.Scenarios;

/// <summary>
/// <c>overflow</c> (default, hardened mode): a heap overflow overwrites a free block's link. Frees a
/// 96-byte block, overwrites its free-list link with the address of foreign memory (what an overflow from
/// the block before it would do), then allocates from the class until the allocator reaches that block.
/// Prints <c>CORRUPTION_DETECTED: message</c> and exits 0 when it is reported (and the rest of the
/// allocator still works), or <c>FOREIGN_HANDED_OUT</c> and exits 3 when the foreign address comes back
/// as a block. No <c>PROBE_OK</c>: the allocator is left corrupted on purpose.
/// </summary>
internal static unsafe class Overflow
{
    public static int Run(string[] args, long baseline)
    {
        byte* foreign = (byte*)System.Runtime.InteropServices.NativeMemory.Alloc(4096);
        var held = new List<nint>();
        byte* victim = (byte*)SlabMemory.Alloc(96);
        SlabMemory.Free(victim);
        *(byte**)victim = foreign; // the overflow
        try
        {
            for (int i = 0; i < 100_000; i++)
            {
                byte* p = (byte*)SlabMemory.Alloc(96);
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
            return Failed ? 1 : 0;
        }
    }
}
