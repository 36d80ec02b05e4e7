using static SlabAlloc.CheckedProbe.Probe;

namespace SlabAlloc.CheckedProbe.Races;

/// <summary>
/// <c>race &lt;name&gt; &lt;milliseconds&gt;</c>: the error guarantees of the README attacked with threads
/// racing on one pointer, one class per race. Each race runs real threads with fixed seeds for about the
/// time given (a race that repeats a fixed scenario repeats it at least a few times), prints
/// <c>RACE_ROUNDS &lt;name&gt; &lt;count&gt;</c>, and reports every broken promise through
/// <see cref="Probe.Fail"/> as a <c>RACE_VIOLATION</c> line; a race that crashes the process leaves no
/// <c>PROBE_OK</c> behind. The caller (<c>RacingGuaranteeTests</c>) chooses the settings each race needs.
/// An unknown race name is reported on the error output, with exit code 2.
/// </summary>
internal static class RaceRunner
{
    /// <summary>Every race: its name on the command line, and its entry, which returns how many times it
    /// went through its scenario (or how many operations it made).</summary>
    private static readonly (string Name, Func<TimeSpan, long> Run)[] Races =
    [
        ("never-handed-out", NeverHandedOut.Run),
        ("idle-double-free", time => IdleDoubleFree.Run(time, size: 112, maxCount: 16)),
        ("idle-double-free-cached", time => IdleDoubleFree.Run(time, size: 3000, maxCount: 48)),
        ("large-double-free", LargeDoubleFree.Run),
        ("large-tail", LargeTail.Run),
        ("stale-trim", time => StaleTrim.Run(time, readOnly: false)),
        ("stale-usable", time => StaleTrim.Run(time, readOnly: true)),
        ("interrupt-free", InterruptedFree.Run),
        ("interrupt-attach", InterruptedAttach.Run),
        ("lifecycle", Lifecycle.Run),
        ("resident-purge", ResidentPurge.Run),
        ("take-back", TakeBack.Run),
        ("managed-oom", ManagedOutOfMemory.Run),
        ("first-large-refused", _ => FirstLargeRefused.Run()),
    ];

    /// <summary>The races' names, in the order the usage lists them.</summary>
    public static IEnumerable<string> Names => Races.Select(r => r.Name);

    public static int Run(string[] args, long baseline)
    {
        if (!(args.Length == 2 && int.TryParse(args[1], out int milliseconds))) return BadArguments;
        string name = args[0];
        Func<TimeSpan, long>? race = Array.Find(Races, r => r.Name == name).Run;
        if (race == null)
        {
            Console.Error.WriteLine($"unknown race '{name}'");
            return 2;
        }
        long rounds = race(TimeSpan.FromMilliseconds(milliseconds));
        Console.WriteLine($"RACE_ROUNDS {name} {rounds}");
        return Finish(baseline);
    }
}
