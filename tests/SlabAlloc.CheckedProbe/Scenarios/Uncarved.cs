using static SlabAlloc.CheckedProbe.Probe;

namespace SlabAlloc.CheckedProbe.Scenarios;

/// <summary>
/// <c>uncarved &lt;Free|AlignedFree|Realloc|AlignedRealloc|UsableSize&gt; &lt;owner|remote&gt;</c>: passes the
/// start of a block that the slab never handed out (not yet carved) to one API call, on the thread that
/// owns the slab or on another one, for a 64-byte and a 20,480-byte block, and prints
/// <c>UNCARVED_REJECTED: &lt;message&gt;</c> or <c>UNCARVED_ACCEPTED: ...</c>. Exit code 1 when the pointer
/// is accepted or anything is corrupted.
/// </summary>
internal static unsafe class Uncarved
{
    private enum Op { Free, AlignedFree, Realloc, AlignedRealloc, UsableSize }

    public static int Run(string[] args, long baseline)
    {
        if (!(args.Length == 2 && Enum.TryParse(args[0], out Op op) && args[1] is "owner" or "remote")) return BadArguments;
        foreach (nuint size in new nuint[] { 64, 20480 }) Check(size, op, remote: args[1] == "remote");
        return Finish(baseline);
    }

    private static void Check(nuint size, Op op, bool remote)
    {
        // In a fresh process the first block of a class comes from a freshly formatted slab, which
        // carves about a page of blocks from its start: the first block is the slab's start
        // (64 KiB aligned) and the slab's last block is not carved yet.
        int capacity = size <= 8192 ? (int)(65536 / size) : (int)(8 * 65536 / size);
        int carvedFirst = Math.Max(1, Environment.SystemPageSize / (int)size);
        if (carvedFirst >= capacity - 1)
        {
            Console.WriteLine($"UNCARVED_NOT_APPLICABLE: size {size}: a {Environment.SystemPageSize}-byte page carves the whole slab");
            return;
        }
        long baseline = SlabMemory.GetStatistics().BlocksInUse;
        byte* first = (byte*)SlabMemory.Alloc(size);
        if (((nuint)first & 0xFFFF) != 0)
        {
            Fail($"PROBE_ERROR: the first {size}-byte block 0x{(nuint)first:x} is not the start of a fresh slab");
            return;
        }
        Stamp(first, size, 0x5A);
        nuint uncarved = (nuint)(first + (nuint)(capacity - 1) * size);

        long before = SlabMemory.GetStatistics().BlocksInUse;
        string outcome = RunOn(remote, () =>
        {
            void* p = (void*)uncarved;
            try
            {
                switch (op)
                {
                    case Op.Free: SlabMemory.Free(p); return $"Free returned";
                    case Op.AlignedFree: SlabMemory.AlignedFree(p); return $"AlignedFree returned";
                    case Op.Realloc: return $"Realloc returned 0x{(nuint)SlabMemory.Realloc(p, size * 3):x}";
                    case Op.AlignedRealloc: return $"AlignedRealloc returned 0x{(nuint)SlabMemory.AlignedRealloc(p, size * 3, 16):x}";
                    default: return $"UsableSize returned {SlabMemory.UsableSize(p)}";
                }
            }
            catch (ArgumentException e)
            {
                return "UNCARVED_REJECTED: " + OneLine(e.Message);
            }
        });
        if (outcome.StartsWith("UNCARVED_REJECTED: ", StringComparison.Ordinal)) Console.WriteLine(outcome);
        else Fail($"UNCARVED_ACCEPTED: size {size}, {op} on the {(remote ? "remote" : "owner")} thread of 0x{uncarved:x} (block {capacity - 1}, never handed out): {outcome}");
        long after = SlabMemory.GetStatistics().BlocksInUse;
        if (after != before) Fail($"ACCOUNTING_CHANGED: size {size}: BlocksInUse {before} -> {after} after {op} of a block never handed out");

        // Hand out every block of the slab and more: no block may be handed out twice.
        var blocks = new List<nuint>();
        for (int i = 0; i < 2 * capacity; i++)
        {
            var b = (byte*)SlabMemory.Alloc(size);
            Stamp(b, size, (byte)i);
            blocks.Add((nuint)b);
        }
        if (blocks.Distinct().Count() != blocks.Count || blocks.Contains((nuint)first))
            Fail($"DUPLICATE_BLOCK: size {size}: a block was handed out twice after {op} of a block never handed out");
        for (int i = 0; i < blocks.Count; i++)
            if (!Verify((byte*)blocks[i], size, (byte)i)) Fail($"OVERLAP: size {size}: block {i} was overwritten by another block");
        if (!Verify(first, size, 0x5A)) Fail($"OVERLAP: size {size}: the slab's first block was overwritten");
        foreach (nuint b in blocks) SlabMemory.Free((void*)b);
        SlabMemory.Free(first);
        long end = SlabMemory.GetStatistics().BlocksInUse;
        if (end != baseline) Fail($"ACCOUNTING_CHANGED: size {size}: BlocksInUse {baseline} at the start, {end} after freeing everything");
    }

    private static string RunOn(bool remote, Func<string> action)
    {
        if (!remote) return action();
        string result = "";
        var thread = new Thread(() => result = action());
        thread.Start();
        thread.Join();
        return result;
    }
}
