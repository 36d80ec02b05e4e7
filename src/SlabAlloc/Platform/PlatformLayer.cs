using SlabAlloc.Support;

namespace SlabAlloc.Platform;

/// <summary>
/// Which platform layer the process runs: the Linux one, or the portable one that every other system gets.
/// </summary>
/// <remarks>
/// <para>The Linux layer maps regions with <c>mmap</c>, decommits and releases them with <c>madvise</c> and
/// <c>MAP_FIXED</c>, reserves address space for sparse tables, and finds a thread's cache from its stack
/// (<see cref="ThreadStacks"/>). The portable layer takes regions from <c>NativeMemory.AlignedAlloc</c> and
/// has none of the rest. Each capability the layers differ in is a flag derived from
/// <see cref="Linux"/> (<see cref="OsMemory.UsesMmap"/>, <see cref="ThreadStacks.Supported"/>), so that
/// <see cref="SlabOptions.PortableRegions"/> gives a Linux process exactly what another system gets.</para>
/// <para>Not part of either layer: the process counters, which read <c>/proc</c> wherever it exists.</para>
/// </remarks>
internal static class PlatformLayer
{
    /// <summary>True when the Linux layer runs: on Linux, unless <see cref="SlabOptions.PortableRegions"/> asks
    /// for the portable one.</summary>
    public static readonly bool Linux = OperatingSystem.IsLinux() && !SlabOptions.PortableRegions;
}
