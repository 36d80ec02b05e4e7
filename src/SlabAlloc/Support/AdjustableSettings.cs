namespace SlabAlloc.Support;

/// <summary>
/// The two settings that can change while the process runs, next to <see cref="SlabOptions"/>, which
/// are read once and never change. Each starts from its option; only tests change them, to run the
/// paths behind them without a process of their own. Every reader goes through here, with a volatile
/// read, so a change is seen by the next operation that reads it.
/// </summary>
internal static class AdjustableSettings
{
    /// <summary>Milliseconds between the pool's decays, and the upkeep's period; 0 for none
    /// (<see cref="SlabOptions.DecayMs"/>).</summary>
    internal static int DecayMs = SlabOptions.DecayMs;

    /// <summary>The most bytes mapped from the system, 0 for no limit (<see cref="SlabOptions.MaxMappedMiB"/>).</summary>
    internal static long MappingLimitBytes = (long)SlabOptions.MaxMappedMiB << 20;
}
