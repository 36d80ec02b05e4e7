using SlabAlloc.Platform;
using SlabAlloc.Support;

namespace SlabAlloc.Tests.Platform;

/// <summary>
/// Which platform layer runs, and what <see cref="OsMemory"/> promises in each: <c>./build.sh test</c> runs the
/// suite once with <c>SLABALLOC_PORTABLE_REGIONS=1</c>, so on Linux both layers are checked.
/// </summary>
public sealed unsafe class PlatformLayerTests
{
    private const nuint RegionBytes = 64 * 1024;

    [Fact]
    public void TheOptionSelectsThePortableLayer_AndEveryCapabilityFollowsTheLayer()
    {
        Assert.Equal(OperatingSystem.IsLinux() && !SlabOptions.PortableRegions, PlatformLayer.Linux);
        Assert.Equal(PlatformLayer.Linux, OsMemory.UsesMmap);
        if (PlatformLayer.Linux) return;
        Assert.False(ThreadStacks.Supported);
        Assert.True(OsMemory.ReserveAddressSpace(RegionBytes) == null);
    }

    [Fact]
    public void DecommittedAndReleasedRanges_StayUsable_ZeroedByTheLinuxLayer_KeptAsTheyWereByThePortableOne()
    {
        var region = (byte*)OsMemory.Reserve(RegionBytes, RegionBytes);
        Assert.True(region != null);
        try
        {
            Assert.Equal(0u, (nuint)region & (RegionBytes - 1));
            Assert.True(new Span<byte>(region, (int)RegionBytes).IndexOfAnyExcept((byte)0) < 0, "a new region is zero-filled");

            new Span<byte>(region, (int)RegionBytes).Fill(0x5A);
            OsMemory.Decommit(region, RegionBytes / 2);
            Assert.Equal(OsMemory.UsesMmap ? (byte)0 : (byte)0x5A, region[0]);
            Assert.Equal((byte)0x5A, region[RegionBytes / 2]);

            new Span<byte>(region, (int)RegionBytes).Fill(0xA5);
            OsMemory.ReleaseKeepingRange(region, RegionBytes);
            Assert.Equal(OsMemory.UsesMmap ? (byte)0 : (byte)0xA5, region[RegionBytes - 1]);
            region[0] = 1; // still writable
            Assert.True(OsMemory.TryRecommit(RegionBytes));
        }
        finally
        {
            OsMemory.Release(region, RegionBytes);
        }
    }
}
