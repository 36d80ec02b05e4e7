using System.Runtime.InteropServices;

namespace SlabAlloc.Interprocess;

/// <summary>The platforms the benchmark's bindings are written for.</summary>
/// <remarks>The ring's layout reserves 64 bytes for a glibc <c>pthread_mutex_t</c> (40 bytes on x64, 48 on
/// arm64), and <see cref="LibC"/>'s structures and constants are those of 64-bit Linux; elsewhere they would
/// silently be wrong, so the benchmark refuses to start.</remarks>
internal static class Platform
{
    public static void Check()
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture is not (Architecture.X64 or Architecture.Arm64))
            throw new PlatformNotSupportedException(
                $"the interprocess benchmark runs on linux-x64 and linux-arm64 only, not {RuntimeInformation.RuntimeIdentifier}");
    }
}
