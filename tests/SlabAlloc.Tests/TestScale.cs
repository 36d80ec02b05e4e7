namespace SlabAlloc.Tests;

/// <summary>
/// How much longer than in CI the randomized and fault tests run: <c>SLABALLOC_TEST_SCALE=N</c>
/// multiplies their sample counts and failure points (default 1), for the long versions on demand,
/// e.g. <c>SLABALLOC_TEST_SCALE=50 ./build.sh test --filter "FullyQualifiedName~Model|FullyQualifiedName~Reliability"</c>.
/// </summary>
internal static class TestScale
{
    public static readonly int Factor =
        int.TryParse(Environment.GetEnvironmentVariable("SLABALLOC_TEST_SCALE"), out int n) && n > 0 ? n : 1;
}
