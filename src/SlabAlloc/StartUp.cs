using System.Runtime.CompilerServices;
using SlabAlloc.Diagnostics;

namespace SlabAlloc;

/// <summary>
/// What SlabAlloc does once per process, off the thread that loads it: one short-lived background thread,
/// started when the assembly loads, runs the <see cref="WarmUp"/> (unless <c>SLABALLOC_WARMUP=0</c>),
/// then publishes the meter (<see cref="SlabMeter"/>), and ends.
/// </summary>
/// <remarks>
/// <para>One thread for both, because starting a thread is itself work for the loading thread (a
/// <c>clone</c> and the runtime's bookkeeping, a few tenths of a millisecond).</para>
/// <para>The meter comes second. Creating a process's first meter takes 6-8 ms (it creates the runtime's
/// metrics event source); started at the same moment as a program's first allocation, on its own
/// thread, it cost that allocation about 2 ms: both threads loaded types and compiled methods at once,
/// waiting for each other on the runtime's locks and, on 2 cores, for a core (<c>firstuse</c>, 15
/// interleaved runs: median 18.1 ms with it, 16.1 ms with the meter published later). After the
/// warm-up, the allocator's paths are compiled and the meter costs the first allocation nothing
/// measurable (11 runs each: 10.9 ms published at once after the warm-up, 11.0 ms a quarter of a
/// second after the load).</para>
/// </remarks>
internal static class StartUp
{
    private static Thread? s_thread;

    /// <summary>Waits until the start-up thread has finished (at once if it has, or never started): for
    /// code that counts blocks exactly from a quiet start, such as the tests of process-wide statistics.</summary>
    internal static void WaitUntilDone() => s_thread?.Join();

#pragma warning disable CA2255 // start-up work must begin when the assembly loads, without anyone asking for it
    [ModuleInitializer]
    internal static void Initialize()
#pragma warning restore CA2255
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
            Housekeeping.Start();
        }
    }

    private static void Run()
    {
        if (ShouldWarmUp()) WarmUp.Run();
        SlabMeter.TryCreate();
        Housekeeping.Start();
    }

    /// <summary>Whether to run the warm-up: the option (<c>SLABALLOC_WARMUP</c>), except where it has
    /// nothing to save or would take what the program did not ask for: without a JIT (Native AOT, where
    /// the code is compiled ahead of time and module initializers run before <c>Main</c>), and under a
    /// memory budget (<c>SLABALLOC_MAX_MAPPED_MB</c>), where its superslab would count against the
    /// program's allowance. Read without throwing: an invalid setting fails the assembly's load on the
    /// loading thread (<see cref="SlabOptions.ReadAtLoad"/>); on this thread it would end the process.</summary>
    private static bool ShouldWarmUp()
    {
        try { return SlabOptions.WarmUp && RuntimeFeature.IsDynamicCodeCompiled && SlabOptions.MaxMappedMiB == 0; }
        catch (Exception) { return false; }
    }
}
