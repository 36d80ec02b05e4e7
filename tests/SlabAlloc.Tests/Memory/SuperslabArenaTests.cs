using SlabAlloc.Runtime;
using static SlabAlloc.Memory.Geometry;
using static SlabAlloc.Tests.Api.BadPointerTests;
using static SlabAlloc.Tests.ProbeProcess;

namespace SlabAlloc.Tests.Memory;

/// <summary>
/// The superslab arena: a free inside it reads a superslab header without asking the registry, so every
/// address of the arena must be safe to validate (a header of zeroes names no slab) and be rejected with the
/// message the registry's answer would give, while other threads map and retire superslabs in it; once
/// the arena is used up, or the system refuses to open a range of it, or there is none (a limit on the
/// address space), superslabs mapped on their own must work as before, and the arena's state must be
/// logged once and shown by the statistics.
/// </summary>
[Collection("SlabAlloc global state")]
public sealed unsafe class SuperslabArenaTests
{
    [Fact]
    public void NewBlocksComeFromTheArena_WhereThereIsOne()
    {
        var p = SlabMemory.Alloc(64);
        try
        {
            // Read after the allocation, which may have opened a range.
            (nuint arenaBase, nuint arenaBytes, nuint open) = TestHooks.SuperslabArenaRange;
            if (arenaBytes == 0) return; // the portable platform layer: no arena, the registry validates every pointer
            Assert.True(arenaBase % SuperslabBytes == 0, $"arena base 0x{arenaBase:x} is not 4 MiB aligned");
            Assert.True(open > 0 && open <= arenaBytes && open % SuperslabBytes == 0, $"open {open} of {arenaBytes}");
            Assert.True((nuint)p - arenaBase < open, $"0x{(nuint)p:x} is outside the arena's open part");
        }
        finally { SlabMemory.Free(p); }
    }

    [Fact]
    public void TheStatistics_ShowTheArena()
    {
        SlabMemory.Free(SlabMemory.Alloc(64));
        (_, nuint arenaBytes, nuint openBefore) = TestHooks.SuperslabArenaRange;
        SlabStatistics stats = SlabMemory.GetStatistics();
        (_, _, nuint openAfter) = TestHooks.SuperslabArenaRange;
        Assert.Equal((long)arenaBytes, stats.SuperslabArenaBytes);
        // Other tests' threads may open a range between the reads: the figure lies between them.
        Assert.InRange(stats.SuperslabArenaOpenBytes, (long)openBefore, (long)openAfter);
        string line = stats.ToString().Split('\n').Single(l => l.StartsWith("superslab arena", StringComparison.Ordinal));
        if (arenaBytes == 0)
        {
            Assert.True(stats.SuperslabArenaUsedUp);
            Assert.EndsWith(" none", line);
        }
        else
        {
            Assert.True(stats.SuperslabArenaOpenBytes > 0, "a block was allocated, but no range of the arena is open");
            Assert.Contains($"{arenaBytes} bytes reserved, ", line);
        }
    }

    [Fact]
    public void AddressesOfTheArenaThatHoldNoBlock_AreRejected_WhileThreadsMapAndRetireSuperslabs()
    {
        (nuint arenaBase, nuint arenaBytes, nuint open) = TestHooks.SuperslabArenaRange;
        if (arenaBytes == 0) return;
        long baseline = SlabMemory.GetStatistics().BlocksInUse;
        // Superslab headers (slot 0 holds no block) of every granule open so far and of the next few, which
        // the workers below may open while the free looks: rejected as interior pointers or as foreign,
        // depending on the moment. The arena's last granule is never opened: always foreign.
        var hostile = new List<(nuint Address, bool AlwaysForeign)>();
        for (nuint g = 0; g < open + 8 * SuperslabBytes && g < arenaBytes - SuperslabBytes; g += SuperslabBytes)
            foreach (nuint offset in new nuint[] { 0, 16, 4096, SlotBytes - 16 }) hostile.Add((arenaBase + g + offset, false));
        hostile.Add((arenaBase + arenaBytes - SuperslabBytes, true));
        hostile.Add((arenaBase + arenaBytes - SuperslabBytes + SlotBytes, true));
        hostile.Add((arenaBase + arenaBytes - 16, true));

        using var stop = new CancellationTokenSource();
        Exception? failure = null;
        long rejectedForeign = 0, rejectedInterior = 0, workerRounds = 0;
        var workers = Enumerable.Range(0, 2).Select(id => new Thread(() =>
        {
            try
            {
                var random = new Random(1000 + id);
                while (!stop.IsCancellationRequested)
                {
                    // Enough 8 KiB blocks to take new superslabs, then all freed and trimmed, so that
                    // superslabs retire and their ranges are taken again.
                    var blocks = new nint[1200 + random.Next(400)];
                    for (int i = 0; i < blocks.Length; i++)
                    {
                        var b = (byte*)SlabMemory.Alloc(8192);
                        b[0] = (byte)i; b[8191] = (byte)(i >> 8);
                        blocks[i] = (nint)b;
                    }
                    for (int i = 0; i < blocks.Length; i++)
                    {
                        var b = (byte*)blocks[i];
                        if (b[0] != (byte)i || b[8191] != (byte)(i >> 8)) throw new InvalidOperationException($"block {i} was written by someone else");
                        SlabMemory.Free(b);
                    }
                    SlabMemory.Trim();
                    Interlocked.Increment(ref workerRounds);
                }
            }
            catch (Exception e) { failure ??= e; stop.Cancel(); }
        })).ToArray();
        var attacker = new Thread(() =>
        {
            try
            {
                var random = new Random(7);
                while (!stop.IsCancellationRequested)
                {
                    (nuint p, bool alwaysForeign) = hostile[random.Next(hostile.Count)];
                    try
                    {
                        SlabMemory.Free((void*)p);
                        throw new InvalidOperationException($"Free accepted 0x{p:x}, which holds no block");
                    }
                    catch (ArgumentException e) when (e.Message.Contains(ForeignMessage)) { rejectedForeign++; }
                    catch (ArgumentException e) when (e.Message.Contains(InteriorMessage) && !alwaysForeign) { rejectedInterior++; }
                }
            }
            catch (Exception e) { failure ??= e; stop.Cancel(); }
        });
        foreach (Thread t in workers) t.Start();
        attacker.Start();
        Thread.Sleep(1500);
        stop.Cancel();
        foreach (Thread t in workers) t.Join();
        attacker.Join();

        Assert.Null(failure);
        Assert.True(workerRounds >= 2, $"the workers made {workerRounds} rounds");
        Assert.True(rejectedForeign > 0, "no address was rejected as foreign (the arena's part not cut)");
        Assert.True(rejectedInterior > 0, "no address was rejected as holding no block start (a live superslab's header)");
        Assert.Equal(baseline, SlabMemory.GetStatistics().BlocksInUse);
    }

    [Theory]
    [InlineData("lockfree")]
    [InlineData("mutex")]
    public void TheArenaUsedUpWarning_ReachesALoggerThatWaitsForAnotherThreadsTrim(string pool)
    {
        // Met at stage 3, where the mutex pool holds its lock: logged once the pool has let go of it.
        ProbeResult result = Run(new Dictionary<string, string> { ["SLABALLOC_POOL"] = pool }, "arena-used-up", "waiting-logger");
        Assert.True(result.ExitCode == 0, result.ToString());
        if (TestHooks.SuperslabArenaRange.Bytes == 0) return; // no arena here: nothing to use up
        Assert.Single(result.Lines("LOGGED_WARNING: "));
        Assert.Single(result.Lines("LOGGER_TRIM_RETURNED"));
        Assert.Single(result.Lines("PROBE_OK"));
    }

    [Fact]
    public void OnceTheArenaIsUsedUp_SuperslabsMappedOnTheirOwn_WorkAndRejectBadPointers()
    {
        // In a process of its own: using up the arena is for good.
        ProbeResult result = Run(new Dictionary<string, string>(), "arena-used-up");
        Assert.True(result.ExitCode == 0, result.ToString());
        string arena = Assert.Single(result.Lines("ARENA: "));
        if (TestHooks.SuperslabArenaRange.Bytes != 0)
        {
            // Where this process has an arena the child has one too, and it was in use before it ran out.
            Assert.DoesNotContain("none", arena);
            Assert.DoesNotContain("ARENA: 0 ", arena);
            // Two threads met the used-up arena at once; it is logged once, and the statistics say so.
            string warning = Assert.Single(result.Lines("LOGGED_WARNING: "));
            Assert.Contains("SuperslabArenaUsedUp: The superslab arena is used up (every range of it has been cut", warning);
            Assert.EndsWith("; used up", Assert.Single(result.Lines("STATISTICS: superslab arena ")).TrimEnd());
        }
        else
        {
            Assert.Empty(result.Lines("LOGGED_WARNING: "));
            Assert.EndsWith(" none", Assert.Single(result.Lines("STATISTICS: superslab arena")).TrimEnd());
        }
        string outside = Assert.Single(result.Lines("OUTSIDE_ARENA: "));
        Assert.DoesNotContain("OUTSIDE_ARENA: 0 ", outside);
        string[] rejected = result.Lines("REJECTED: ");
        Assert.Equal(5, rejected.Length);
        Assert.Contains(rejected, l => l.Contains("an interior pointer") && l.Contains(InteriorMessage));
        Assert.Contains(rejected, l => l.Contains("a superslab header") && l.Contains(InteriorMessage));
        Assert.Contains(rejected, l => l.Contains("the same block twice in a row") && l.Contains(DoubleFreeMessage));
        Assert.Contains(rejected, l => l.Contains("a block of a slab with none out") && l.Contains(DoubleFreeMessage));
        Assert.Contains(rejected, l => l.Contains("an address no one mapped") && l.Contains(ForeignMessage));
        Assert.Single(result.Lines("PROBE_OK"));
    }

    [Fact]
    public void WhenTheSystemRefusesARangeOfTheArena_TheAllocationFailsCleanly_AndSuperslabsAreMappedOnTheirOwn()
    {
        ProbeResult result = Run(new Dictionary<string, string>(), "arena-refused");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Single(result.Lines("REFUSED: after "));
        if (TestHooks.SuperslabArenaRange.Bytes != 0)
        {
            // The refusal closes the arena for good: logged once, said by the statistics, and every later
            // superslab (the blocks after the refusal need several) mapped outside it.
            string warning = Assert.Single(result.Lines("LOGGED_WARNING: "));
            Assert.Contains("SuperslabArenaUsedUp: The superslab arena is used up (the system refused to open a range of it", warning);
            Assert.EndsWith("; used up", Assert.Single(result.Lines("STATISTICS: superslab arena ")).TrimEnd());
            string outside = Assert.Single(result.Lines("OUTSIDE_ARENA: "));
            Assert.Matches(@"^OUTSIDE_ARENA: [1-9]\d* of ", outside);
        }
        else Assert.Empty(result.Lines("LOGGED_WARNING: "));
        Assert.Single(result.Lines("PROBE_OK"));
    }

    [Fact]
    public void UnderALimitOnTheAddressSpace_NoArenaIsReserved_AndSuperslabsWorkAsBefore()
    {
        // 128 GiB of address space: room for the runtime and for the 64 GiB reservation, which would eat half of
        // what the user allowed; it is not made (without the check, the child reports an arena here).
        ProbeResult result = Run(addressSpaceLimitKiB: 128L << 20, new Dictionary<string, string>(), "arena-used-up");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal("ARENA: none", Assert.Single(result.Lines("ARENA: ")));
        Assert.EndsWith(" none", Assert.Single(result.Lines("STATISTICS: superslab arena")).TrimEnd());
        Assert.Empty(result.Lines("LOGGED_WARNING: "));
        string[] rejected = result.Lines("REJECTED: ");
        Assert.Equal(5, rejected.Length);
        Assert.Contains(rejected, l => l.Contains("an interior pointer") && l.Contains(InteriorMessage));
        Assert.Contains(rejected, l => l.Contains("an address no one mapped") && l.Contains(ForeignMessage));
        Assert.Single(result.Lines("PROBE_OK"));
    }
}
