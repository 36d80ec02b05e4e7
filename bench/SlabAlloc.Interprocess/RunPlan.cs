using System.Globalization;

namespace SlabAlloc.Interprocess;

/// <summary>
/// One run: a workload over a transport with one message size. For <see cref="PingPong"/>, <see cref="Count"/>
/// and <see cref="WarmupCount"/> are round trips of <see cref="SizeBytes"/>; for <see cref="Bandwidth"/> they are
/// chunks of <see cref="SizeBytes"/> streamed to the child.
/// </summary>
internal sealed record RunPlan(string Workload, string Transport, int SizeBytes, long Count, long WarmupCount)
{
    public const string PingPong = "pingpong";
    public const string Bandwidth = "bandwidth";

    /// <summary>The child's arguments after <c>child</c>; <see cref="Parse"/> reads them back.</summary>
    public IEnumerable<string> ChildArguments(string endpoint, TimeSpan timeout) =>
    [
        Workload, Transport, endpoint, Inv(SizeBytes), Inv(Count), Inv(WarmupCount),
        Inv((long)timeout.TotalSeconds), Inv(Environment.ProcessId),
    ];

    public static (RunPlan Plan, string Endpoint, TimeSpan Timeout, int ParentId) Parse(IReadOnlyList<string> a)
    {
        if (a.Count != 8) throw new ArgumentException($"child: 8 arguments expected, {a.Count} given");
        var plan = new RunPlan(a[0], a[1], int.Parse(a[3], CultureInfo.InvariantCulture),
            long.Parse(a[4], CultureInfo.InvariantCulture), long.Parse(a[5], CultureInfo.InvariantCulture));
        return (plan, a[2], TimeSpan.FromSeconds(long.Parse(a[6], CultureInfo.InvariantCulture)), int.Parse(a[7], CultureInfo.InvariantCulture));
    }

    private static string Inv(long value) => value.ToString(CultureInfo.InvariantCulture);
}
