using System.Runtime.CompilerServices;
using SlabAlloc.Support;
using SlabAlloc.Telemetry;

namespace SlabAlloc.Runtime;

/// <summary>Everything SlabAlloc does when its assembly loads, in order: the one module initializer.</summary>
internal static class AssemblyLoad
{
#pragma warning disable CA2255 // a library's load-time work, in one place: see the summary of each step
    /// <summary>
    /// <list type="number">
    /// <item>Reads the options (<see cref="SlabOptions.ReadAll"/>). The slow paths are compiled fully
    /// optimized on their first call (<c>AggressiveOptimization</c>, so that a short-lived program does not
    /// run them as unoptimized code), and the JIT folds the <c>static readonly</c> options into constants
    /// only if they were read before it compiles; an invalid setting fails the load on the loading thread,
    /// naming the variable (tested: <c>InvalidCheckedSetting_FailsAtStartUp_NamingTheVariable</c>).</item>
    /// <item>Hooks the lock-statistics report to process exit when <c>SLABALLOC_LOCK_STATS=1</c>.</item>
    /// <item>Starts the start-up thread: warm-up, meter, upkeep (<see cref="StartUp"/>).</item>
    /// </list>
    /// </summary>
    [ModuleInitializer]
    internal static void Initialize()
    {
        SlabOptions.ReadAll();
        LockExitReport.RegisterIfEnabled();
        StartUp.Begin();
    }
#pragma warning restore CA2255
}
