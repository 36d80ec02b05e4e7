using SlabAlloc.Memory;

namespace SlabAlloc.Tests.Memory;

public class SizeClassesTests
{
    [Fact]
    public void EverySizeMapsToTheSmallestClassThatHoldsIt()
    {
        for (nuint size = 0; size <= SizeClasses.MaxBlockBytes; size++)
        {
            int c = SizeClasses.ClassOf(size);
            Assert.InRange(c, 0, SizeClasses.Count - 1);
            Assert.True((nuint)SizeClasses.BlockBytes(c) >= size, $"size {size} -> class {c} of {SizeClasses.BlockBytes(c)} bytes");
            if (c > 0) Assert.True((nuint)SizeClasses.BlockBytes(c - 1) < Math.Max(size, 1), $"size {size} should fit class {c - 1}");
        }
    }

    [Fact]
    public void BlockSizesRoundTripAndIncrease()
    {
        int previous = 0;
        for (int c = 0; c < SizeClasses.Count; c++)
        {
            int block = SizeClasses.BlockBytes(c);
            Assert.True(block > previous);
            Assert.Equal(0, block % 16);
            Assert.Equal(c, SizeClasses.ClassOf((nuint)block));
            previous = block;
        }
        Assert.Equal((int)SizeClasses.MaxBlockBytes, previous);
    }

    [Fact]
    public void ExactClassesAreSixteenByteStepsAndTheRestFourPerPowerOfTwo()
    {
        for (int c = 0; c < SizeClasses.ExactCount; c++) Assert.Equal((c + 1) * 16, SizeClasses.BlockBytes(c));
        for (int p = 7; p < 16; p++)
        {
            var inOctave = Enumerable.Range(SizeClasses.ExactCount, SizeClasses.Count - SizeClasses.ExactCount)
                .Where(c => SizeClasses.BlockBytes(c) > 1 << p && SizeClasses.BlockBytes(c) <= 1 << (p + 1)).ToArray();
            Assert.Equal(4, inOctave.Length);
        }
    }

    [Fact]
    public void FastPathMappingAgreesWithTheGeneralOne()
    {
        for (nuint size = 1; size <= SizeClasses.SmallLimitBytes; size++)
            Assert.Equal(SizeClasses.ClassOf(size), SizeClasses.SmallClassOfSizeMinusOne(size - 1));
    }

    [Fact]
    public void MidSizeSlabsHoldSeveralBlocks()
    {
        for (int c = 0; c < SizeClasses.Count; c++)
        {
            Assert.True(SizeClasses.Capacity(c) >= 8, $"class {c} ({SizeClasses.BlockBytes(c)} B) holds {SizeClasses.Capacity(c)} blocks");
            Assert.Equal(0, SizeClasses.BlockBytes(c) % 16); // checked mode keeps one bit per 16 bytes: every block start has its own
        }
        // The 8-34 KiB range of hakmem's mid-large benchmark.
        Assert.True(SizeClasses.Capacity(SizeClasses.ClassOf(34 * 1024)) >= 10);
    }

    [Theory]
    [InlineData(100, 32)]
    [InlineData(100, 64)]
    [InlineData(1000, 4096)]
    [InlineData(5000, 1024)]
    [InlineData(65536, 65536)]
    [InlineData(1, 65536)]
    public void AlignedClassesGiveAlignedBlocks(int size, int alignment)
    {
        int c = SizeClasses.ClassForAligned((nuint)size, (nuint)alignment);
        Assert.True(c >= 0);
        Assert.True(SizeClasses.BlockBytes(c) >= size);
        Assert.Equal(0, SizeClasses.BlockBytes(c) % alignment);
    }

    [Fact]
    public void AlignmentsAboveASlotOrSizesAboveTheLargestClassGoLarge()
    {
        Assert.Equal(-1, SizeClasses.ClassForAligned(16, 128 * 1024));
        Assert.Equal(-1, SizeClasses.ClassForAligned(SizeClasses.MaxBlockBytes + 1, 16 * 1024));
    }
}
