namespace SlabAlloc.Tests.Interprocess;

/// <summary>Who may open a region, and what a region that lies about itself gets: a clear error, before anything
/// in it is followed.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class SharedRegionSecurityTests : IDisposable
{
    private readonly TestHeaps _heaps = new();

    public void Dispose() => _heaps.Dispose();

    [Fact]
    public void ARegionIsCreatedOwnerOnlyAndExclusively()
    {
        using SharedHeap heap = _heaps.Create();
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(heap.Path));
        Assert.Throws<IOException>(() => SharedHeap.Create(heap.Name));
        Assert.Throws<FileNotFoundException>(() => SharedHeap.Open(_heaps.NewName()));
        Assert.Throws<ArgumentException>(() => SharedHeap.Create("../etc/x"));
        Assert.Throws<ArgumentException>(() => SharedHeap.Create(""));
        Assert.Throws<ArgumentException>(() => SharedHeap.Create(_heaps.NewName(), new SharedHeapOptions { SlabBytes = 3000 }));
        Assert.Throws<ArgumentException>(() => SharedHeap.Create(_heaps.NewName(), new SharedHeapOptions { RegionBytes = 100_000 }));
    }

    [Fact]
    public void ARegionOthersMayReadIsRefused()
    {
        using SharedHeap heap = _heaps.Create();
        File.SetUnixFileMode(heap.Path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        Assert.Contains("mode 640", Assert.Throws<UnauthorizedAccessException>(() => SharedHeap.Open(heap.Name)).Message);
    }

    [Fact]
    public void ASymbolicLinkIsNotFollowed()
    {
        using SharedHeap heap = _heaps.Create();
        string link = _heaps.NewName();
        File.CreateSymbolicLink(Path.Combine(SharedHeap.DefaultDirectory, link), heap.Path);
        Assert.Throws<UnauthorizedAccessException>(() => SharedHeap.Open(link));
    }

    [Fact]
    public void ARegionOfAnotherUserIsRefused()
    {
        if (Environment.UserName != "root") return; // only root can hand a file to another user
        using SharedHeap heap = _heaps.Create();
        Assert.Equal(0, Chown(heap.Path, 4321, 4321));
        Assert.Contains("belongs to user 4321", Assert.Throws<UnauthorizedAccessException>(() => SharedHeap.Open(heap.Name)).Message);
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "chown", SetLastError = true)]
    private static extern int Chown(string path, int owner, int group);

    public static TheoryData<string, long, byte[]> Lies => new()
    {
        { "wrong magic", 0, [0x00] },
        { "layout version", 8, [99] },
        { "region size", 16, [0x00, 0x00, 0x10] },
        { "slab size", 24, [0x00, 0x00, 0x02] },
        { "slab count", 32, [0xFF, 0xFF] },
        { "class count", 36, [7] },
        { "process slots", 40, [0xFF, 0xFF, 0xFF] },
        { "channel count", 44, [2] },
        { "slab area offset", 88, [0x40] },
        { "checksum", 112, [0x5A] },
        { "channel capacity", -1, [3] },
    };

    [Theory]
    [MemberData(nameof(Lies))]
    public void AHeaderThatLiesIsRejectedOnOpen(string field, long offset, byte[] bytes)
    {
        using SharedHeap heap = _heaps.Create(channels: new SharedChannelOptions("c", 8));
        using (var file = new FileStream(heap.Path, FileMode.Open, FileAccess.ReadWrite))
        {
            if (offset < 0)
            {
                // The first channel's capacity: after the header, the process table and the class stacks.
                var reader = new BinaryReader(file);
                file.Position = 64;
                offset = (long)reader.ReadUInt64() + 48; // ChannelTableOffset + capacity field
            }
            file.Position = offset;
            file.Write(bytes);
        }
        var error = Assert.Throws<InvalidDataException>(() => SharedHeap.Open(heap.Name));
        Assert.Contains(heap.Path, error.Message);
        _ = field;
    }

    [Fact]
    public void ARegionLeftIncompleteByItsCreatorIsReportedAfterTheTimeout()
    {
        string name = _heaps.NewName();
        string path = Path.Combine(SharedHeap.DefaultDirectory, name);
        using (var file = new FileStream(path, FileMode.CreateNew))
        {
            file.SetLength(1 << 20);
        }
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Assert.Contains("incomplete", Assert.Throws<InvalidDataException>(() => SharedHeap.Open(name, timeout: TimeSpan.FromMilliseconds(50))).Message);
    }
}
