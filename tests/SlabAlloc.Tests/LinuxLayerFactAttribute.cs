using SlabAlloc.Platform;

namespace SlabAlloc.Tests;

/// <summary>
/// A fact about something only the Linux platform layer has (<see cref="PlatformLayer"/>): where the portable
/// layer runs (another system, or <c>SLABALLOC_PORTABLE_REGIONS=1</c>) the test is skipped through xunit's own
/// <see cref="FactAttribute.Skip"/>, with the reason given, so the run reports it skipped, never passed.
/// </summary>
/// <remarks>Only for behaviour the portable layer does not have at all; where it behaves differently, the test
/// asserts what it does instead.</remarks>
public sealed class LinuxLayerFactAttribute : FactAttribute
{
    /// <param name="portableReason">Why the behaviour does not exist in the portable layer.</param>
    public LinuxLayerFactAttribute(string portableReason)
    {
        if (!PlatformLayer.Linux) Skip = "portable platform layer: " + portableReason;
    }
}
