using SlabAlloc.Pool;

namespace SlabAlloc.Telemetry;

/// <summary>The lock-statistics report written to standard error when the process exits, when
/// <c>SLABALLOC_LOCK_STATS=1</c> asked for it.</summary>
internal static class LockExitReport
{
    /// <summary>Hooks process exit once, and only when the report was asked for: a library does not
    /// otherwise write to a program's standard error.</summary>
    internal static void RegisterIfEnabled()
    {
        if (!LockCounters.Enabled) return;
        AppDomain.CurrentDomain.ProcessExit += static (_, _) => Console.Error.Write(SlabMemory.GetLockStatistics().ToReport());
    }
}
