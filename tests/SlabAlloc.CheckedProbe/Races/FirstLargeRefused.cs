using SlabAlloc.Runtime;

using static SlabAlloc.CheckedProbe.Probe;

namespace SlabAlloc.CheckedProbe.Races;

/// <summary>
/// <c>race first-large-refused</c>: the process's first large block refused by the system. That block
/// maps the large records' table; the fault hook refuses that mapping (and every one after it): an
/// <see cref="OutOfMemoryException"/>, nothing else. Once mappings are allowed again, large blocks must be
/// had. Only the first large block of the process can meet this, so it runs once, whatever the time given.
/// </summary>
internal static unsafe class FirstLargeRefused
{
    public static long Run()
    {
        TestHooks.FailReservationsFrom(1);
        try
        {
            SlabMemory.Free(SlabMemory.Alloc(1 << 20));
            Fail("PROBE_ERROR: a large block was had while every mapping was refused");
        }
        catch (OutOfMemoryException) { }
        catch (Exception e) { Fail($"RACE_VIOLATION: the first large allocation, refused, threw {e.GetType().Name}, not OutOfMemoryException"); }
        finally { TestHooks.StopFailingReservations(); }
        try { SlabMemory.Free(SlabMemory.Alloc(1 << 20)); }
        catch (Exception e) { Fail($"RACE_VIOLATION: once mappings were allowed again, a large allocation threw {e.GetType().Name}"); }
        return 1;
    }
}
