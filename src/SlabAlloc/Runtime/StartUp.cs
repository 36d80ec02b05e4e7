using System.Runtime.CompilerServices;
using SlabAlloc.Support;
using SlabAlloc.Telemetry;

namespace SlabAlloc.Runtime;

/// <summary>
/// What SlabAlloc does once per process, off the thread that loads it: one short-lived background thread,
/// started when the assembly loads, runs the <see cref="WarmUp"/> (unless <c>SLABALLOC_WARMUP=0</c>),
/// then publishes the meter (<see cref="SlabMeter"/>), and ends.
/// </summary>
/// <remarks>
/// <para>One thread for both, because starting a thread is itself work for the loading thread (a
/// <c>clone</c> and the runtime's bookkeeping).</para>
/// <para>The meter comes second. Creating a process's first meter creates the runtime's metrics event
/// source; published beside a program's first allocation, on a thread of its own, it slowed that
/// allocation (both threads loading types and compiling methods at once, waiting for each other on the
/// runtime's locks and, on 2 cores, for a core). After the warm-up the allocator's paths are compiled,
/// and the meter costs the first allocation nothing measurable. The measurements:
/// docs/design-measurements.md, "Start-up thread and meter".</para>
/// </remarks>
internal static class StartUp
{
    private static Thread? s_thread;

    /// <summary>Waits until the start-up thread has finished (at once if it has, or never started): for
    /// code that counts blocks exactly from a quiet start, such as the tests of process-wide statistics.</summary>
    internal static void WaitUntilDone() => s_thread?.Join();

    /// <summary>Starts the start-up thread; without a thread to spare, publishes the meter and starts
    /// the upkeep on the loading thread and skips the warm-up.</summary>
    internal static void Begin()
    {
        try
        {
            var thread = new Thread(static () => Run()) { IsBackground = true, Name = "SlabAlloc start-up" };
            thread.UnsafeStart();
            s_thread = thread;
        }
        catch (Exception)
        {
            SlabMeter.TryCreate(); // no thread to spare: publish on the loading thread, and skip the warm-up
            Upkeep.Start();
        }
    }

    private static void Run()
    {
        if (ShouldWarmUp()) WarmUp.Run();
        SlabMeter.TryCreate();
        Upkeep.Start();
    }

    /// <summary>Whether to run the warm-up: the option (<c>SLABALLOC_WARMUP</c>), except where it has
    /// nothing to save or would take what the program did not ask for: without a JIT (Native AOT, where
    /// the code is compiled ahead of time and module initializers run before <c>Main</c>), and under a
    /// memory budget (<c>SLABALLOC_MAX_MAPPED_MB</c>), where its superslab would count against the
    /// program's allowance. Read without throwing: an invalid setting fails the assembly's load on the
    /// loading thread (<see cref="AssemblyLoad"/>); on this thread it would end the process.</summary>
    private static bool ShouldWarmUp()
    {
        try { return SlabOptions.WarmUp && RuntimeFeature.IsDynamicCodeCompiled && SlabOptions.MaxMappedMiB == 0; }
        catch (Exception) { return false; }
    }
}
