using static SlabAlloc.CheckedProbe.Probe;

namespace SlabAlloc.CheckedProbe.Scenarios;

/// <summary>
/// <c>meter &lt;instruments&gt;</c>: the SlabAlloc meter is published without anything asking for it.
/// Starts a <see cref="System.Diagnostics.Metrics.MeterListener"/>, allocates, and waits for the SlabAlloc
/// meter's instruments to be published: the meter is created on a background thread after the assembly
/// loads, and nothing in this process asks for it. Prints <c>METER_PUBLISHED &lt;instruments&gt;</c> once
/// all of them are. There is no time limit here: a meter that never appears leaves the probe waiting, and
/// the test's guard on the child process fails it.
/// </summary>
internal static unsafe class MeterPublished
{
    public static int Run(string[] args, long baseline)
    {
        WaitForInstruments(args.Length > 0 ? int.Parse(args[0]) : 0);
        return Finish(baseline);
    }

    private static void WaitForInstruments(int expectedInstruments)
    {
        var names = new System.Collections.Concurrent.ConcurrentDictionary<string, bool>();
        using var all = new ManualResetEventSlim();
        using var listener = new System.Diagnostics.Metrics.MeterListener
        {
            InstrumentPublished = (instrument, _) =>
            {
                if (instrument.Meter.Name != SlabAllocMetrics.MeterName) return;
                names[instrument.Name] = true;
                if (names.Count == expectedInstruments) all.Set();
            },
        };
        listener.Start();
        SlabMemory.Free(SlabMemory.Alloc(64));
        all.Wait(); // no timeout here: a meter that never appears hangs the probe, and the test's process guard fails it
        Console.WriteLine($"METER_PUBLISHED {names.Count}");
    }
}
