using System.Runtime.InteropServices;

namespace SlabAlloc.Testing;

/// <summary>The one line that names the machine at the top of every results file: CPU model, core count,
/// memory, kernel and .NET version.</summary>
/// <remarks>A linked source file, compiled into the workloads and the interprocess benchmark, so that their
/// results files describe the machine alike.</remarks>
internal static class MachineDescription
{
    public static string Text()
    {
        string cpu = "unknown CPU";
        if (File.Exists("/proc/cpuinfo"))
            cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? cpu;
        long memGiB = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes >> 30;
        return $"{cpu}, {Environment.ProcessorCount} cores, {memGiB} GiB, {RuntimeInformation.OSDescription}, .NET {Environment.Version}";
    }
}
