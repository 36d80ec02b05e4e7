using ScottPlot;

namespace SlabAlloc.Interprocess;

/// <summary>The two charts: round-trip p50 against message size (both axes logarithmic) and bandwidth against
/// chunk size (size axis logarithmic), one line per transport, each point the median of the kept runs.</summary>
/// <remarks>ScottPlot draws linear axes; a logarithmic one is drawn by plotting the logarithm and labelling
/// ticks with the values.</remarks>
internal static class ResultCharts
{
    public static void PingPong(IReadOnlyList<RunResult> kept, Options options, string path)
    {
        var plot = new Plot();
        foreach (string transport in options.Transports)
        {
            (double X, double Y)[] points = Points(kept, transport, r => r.P50Us);
            if (points.Length == 0) continue;
            var line = plot.Add.Scatter(points.Select(p => Math.Log2(p.X)).ToArray(), points.Select(p => Math.Log10(p.Y)).ToArray());
            line.LegendText = transport;
            line.MarkerSize = 7;
        }
        plot.Title($"Round-trip latency p50 between two processes (median of runs), {Environment.ProcessorCount} cores");
        plot.XLabel("message size");
        plot.YLabel("round trip p50, µs (log)");
        SizeTicks(plot, options.PingPongSizes);
        double low = Math.Floor(Math.Log10(kept.Min(r => r.P50Us))), high = Math.Ceiling(Math.Log10(kept.Max(r => r.P50Us)));
        var ticks = new List<Tick>();
        for (double decade = low; decade <= high; decade++)
            foreach (int m in (int[])[1, 2, 5])
                if (decade + Math.Log10(m) <= high) ticks.Add(new Tick(decade + Math.Log10(m), TickLabel(Math.Pow(10, decade) * m)));
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks.ToArray());
        plot.Axes.SetLimitsY(low, high);
        plot.ShowLegend(Alignment.UpperLeft);
        plot.SavePng(path, 900, 560);
    }

    public static void Bandwidth(IReadOnlyList<RunResult> kept, Options options, string path)
    {
        var plot = new Plot();
        foreach (string transport in options.Transports)
        {
            (double X, double Y)[] points = Points(kept, transport, r => r.MegabytesPerSecond);
            if (points.Length == 0) continue;
            var line = plot.Add.Scatter(points.Select(p => Math.Log2(p.X)).ToArray(), points.Select(p => p.Y).ToArray());
            line.LegendText = transport;
            line.MarkerSize = 7;
        }
        plot.Title($"Bandwidth between two processes, {Sizes.Format(options.TotalBytes)} per run (median of runs), {Environment.ProcessorCount} cores");
        plot.XLabel("chunk size");
        plot.YLabel("MB/s (10^6 bytes)");
        SizeTicks(plot, options.ChunkSizes);
        plot.Axes.SetLimitsY(0, kept.Max(r => r.MegabytesPerSecond) * 1.1);
        plot.ShowLegend(Alignment.UpperLeft);
        plot.SavePng(path, 900, 560);
    }

    private static string TickLabel(double microseconds) =>
        microseconds.ToString(microseconds < 1 ? "0.###" : "N0", System.Globalization.CultureInfo.InvariantCulture);

    private static (double X, double Y)[] Points(IReadOnlyList<RunResult> kept, string transport, Func<RunResult, double> value) =>
        kept.Where(r => r.Plan.Transport == transport).GroupBy(r => r.Plan.SizeBytes).OrderBy(g => g.Key)
            .Select(g => ((double)g.Key, Spread.Of(g.Select(value)).Median)).ToArray();

    private static void SizeTicks(Plot plot, IEnumerable<int> sizes) =>
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            sizes.Select(s => new Tick(Math.Log2(s), Sizes.Format(s))).ToArray());
}
