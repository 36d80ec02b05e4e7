using System.Runtime.InteropServices;

namespace SlabAlloc.Platform;

/// <summary>
/// The file behind a shared heap: created owner-only, mapped <c>MAP_SHARED</c> by every process that opens it.
/// </summary>
/// <remarks>
/// <para>Creation is exclusive (<c>O_CREAT | O_EXCL</c>, mode 0600 and <c>fchmod</c> so that no umask widens
/// it), and opening refuses to follow a symbolic link. Before mapping, an opener checks with <c>statx</c> on
/// the open descriptor (not the path, so nothing can be swapped in between) that the file is a regular file,
/// owned by the effective user, and has no permission bit for group or others.</para>
/// <para>The descriptor is closed once the region is mapped; the mapping keeps the file alive.</para>
/// </remarks>
internal static unsafe class SharedRegionFile
{
    private const uint OwnerReadWrite = 0x180; // 0600
    private const ushort FileTypeMask = 0xF000;
    private const ushort RegularFile = 0x8000;
    private const ushort GroupAndOtherBits = 0x3F; // 0077

    /// <summary>True where shared regions exist: the Linux layer.</summary>
    public static bool Supported => OperatingSystem.IsLinux();

    /// <summary>Creates <paramref name="path"/> exclusively with <paramref name="bytes"/> of zeros and maps it.</summary>
    /// <exception cref="IOException">The file exists, or the system refuses to create or size it.</exception>
    public static byte* Create(string path, nuint bytes, bool populate)
    {
        int fd = LibC.OpenWithMode(path, LibC.OpenReadWrite | LibC.OpenCreate | LibC.OpenExclusive | LibC.OpenCloseOnExec | LibC.OpenNoFollow, OwnerReadWrite);
        if (fd < 0)
        {
            int error = Marshal.GetLastPInvokeError();
            if (error == LibC.ErrorExists) throw new IOException($"the shared region {path} already exists.");
            throw new IOException($"could not create the shared region {path} (errno {error}).");
        }
        try
        {
            if (LibC.Fchmod(fd, OwnerReadWrite) != 0 || LibC.Ftruncate(fd, (long)bytes) != 0)
            {
                int error = Marshal.GetLastPInvokeError();
                LibC.Unlink(path);
                throw new IOException($"could not size the shared region {path} to {bytes} bytes (errno {error}).");
            }
            return Map(fd, bytes, path, populate);
        }
        finally
        {
            LibC.Close(fd);
        }
    }

    /// <summary>Opens and maps an existing region, checking who owns it and who may read it.</summary>
    /// <param name="path">The region's file.</param>
    /// <param name="bytes">The file's size, which is what is mapped.</param>
    /// <param name="populate">Fill this process's page tables for the whole file now (<c>MAP_POPULATE</c>).</param>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="UnauthorizedAccessException">Not a regular file of the effective user with mode 0600 or
    /// stricter, a symbolic link, or not readable.</exception>
    public static byte* Open(string path, out nuint bytes, bool populate)
    {
        int fd = LibC.Open(path, LibC.OpenReadWrite | LibC.OpenCloseOnExec | LibC.OpenNoFollow);
        if (fd < 0)
        {
            int error = Marshal.GetLastPInvokeError();
            if (error == LibC.ErrorNoEntry) throw new FileNotFoundException($"no shared region {path}.", path);
            if (error == LibC.ErrorLoop) throw new UnauthorizedAccessException($"the shared region {path} is a symbolic link; it is not followed.");
            if (error == LibC.ErrorAccess) throw new UnauthorizedAccessException($"the shared region {path} may not be opened by this user.");
            throw new IOException($"could not open the shared region {path} (errno {error}).");
        }
        try
        {
            LibC.Statx status;
            if (LibC.StatxOf(fd, "", LibC.AtEmptyPath, LibC.StatxBasicStats, &status) != 0)
                throw new IOException($"could not inspect the shared region {path} (errno {Marshal.GetLastPInvokeError()}).");
            if ((status.Mode & FileTypeMask) != RegularFile)
                throw new UnauthorizedAccessException($"the shared region {path} is not a regular file.");
            if (status.Uid != LibC.Geteuid())
                throw new UnauthorizedAccessException($"the shared region {path} belongs to user {status.Uid}, not to this process's user {LibC.Geteuid()}.");
            if ((status.Mode & GroupAndOtherBits) != 0)
                throw new UnauthorizedAccessException($"the shared region {path} has mode {Convert.ToString(status.Mode & 0x1FF, 8)}: group or others may use it; only 600 is accepted.");
            bytes = (nuint)status.Size;
            return bytes == 0 ? null : Map(fd, bytes, path, populate);
        }
        finally
        {
            LibC.Close(fd);
        }
    }

    /// <summary>Unmaps a region this process mapped.</summary>
    public static void Unmap(byte* address, nuint bytes) => LibC.Munmap(address, bytes);

    /// <summary>Removes the region's file; processes that have it mapped keep their mapping.</summary>
    /// <returns>False when there was no such file.</returns>
    public static bool Delete(string path) => LibC.Unlink(path) == 0;

    /// <summary>Maps the file; <paramref name="populate"/> (<c>MAP_POPULATE</c>) allocates every page of it and fills
    /// this process's page tables now, so that no page fault comes later.</summary>
    private static byte* Map(int fd, nuint bytes, string path, bool populate)
    {
        void* address = LibC.Mmap(null, bytes, LibC.ProtRead | LibC.ProtWrite, LibC.MapShared | (populate ? LibC.MapPopulate : 0), fd, 0);
        if (address == LibC.MapFailed)
            throw new IOException($"could not map the shared region {path} ({bytes} bytes, errno {Marshal.GetLastPInvokeError()}).");
        return (byte*)address;
    }
}
