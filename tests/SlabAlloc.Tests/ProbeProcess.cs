using System.Diagnostics;
using System.Reflection;
using SlabAlloc.Tests.Runtime;

namespace SlabAlloc.Tests;

/// <summary>
/// Runs tests/SlabAlloc.CheckedProbe in a child process: for settings read once at start-up, and for
/// scenarios that would corrupt the test process's own allocator if SlabAlloc failed to stop them.
/// </summary>
internal static class ProbeProcess
{
    internal sealed record ProbeResult(int ExitCode, string Stdout, string Stderr, string CommandLine)
    {
        public string[] Lines(string prefix) =>
            Stdout.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.StartsWith(prefix, StringComparison.Ordinal)).ToArray();

        public override string ToString() =>
            $"{CommandLine}\nexit code {ExitCode}\n--- stdout ---\n{Stdout}\n--- stderr ---\n{Stderr}";
    }

    /// <summary>Runs tests/SlabAlloc.CheckedProbe, built with the same configuration as this assembly,
    /// with exactly the SlabAlloc settings in <paramref name="settings"/> (every other SLABALLOC_ variable
    /// removed, except the pool and the platform layer of the current test run, and with the warm-up off unless
    /// set there).</summary>
    public static ProbeResult Run(IReadOnlyDictionary<string, string> settings, params string[] args) =>
        Run(addressSpaceLimitKiB: 0, settings, args);

    /// <summary>As <see cref="Run(IReadOnlyDictionary{string, string}, string[])"/>, with the child's address
    /// space limited to <paramref name="addressSpaceLimitKiB"/> (<c>ulimit -v</c>, through <c>/bin/sh</c>;
    /// 0 for no limit).</summary>
    public static ProbeResult Run(long addressSpaceLimitKiB, IReadOnlyDictionary<string, string> settings, params string[] args)
    {
        string probe = ProgramPath("SlabAlloc.CheckedProbe");
        var start = new ProcessStartInfo(addressSpaceLimitKiB == 0 ? DotnetHost() : "/bin/sh")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (addressSpaceLimitKiB != 0)
        {
            start.ArgumentList.Add("-c");
            start.ArgumentList.Add($"ulimit -v {addressSpaceLimitKiB} && exec \"$0\" \"$@\"");
            start.ArgumentList.Add(DotnetHost());
        }
        start.ArgumentList.Add(probe);
        foreach (string arg in args) start.ArgumentList.Add(arg);
        foreach (string key in start.Environment.Keys.Where(k => k.StartsWith("SLABALLOC_", StringComparison.OrdinalIgnoreCase)).ToList())
            start.Environment.Remove(key);
        // The pool follows the test run's (./build.sh test runs the suite with each pool), unless a test sets it.
        if (Environment.GetEnvironmentVariable("SLABALLOC_POOL") is { Length: > 0 } pool) start.Environment["SLABALLOC_POOL"] = pool;
        // So does the platform layer: a probe of the portable pass tests the portable layer.
        if (Environment.GetEnvironmentVariable("SLABALLOC_PORTABLE_REGIONS") is { Length: > 0 } portable)
            start.Environment["SLABALLOC_PORTABLE_REGIONS"] = portable;
        // Probes count blocks exactly from their first line, which the start-up warm-up's blocks, allocated
        // on another thread at that moment, would disturb: off unless a test asks for it (WarmUpTests do).
        start.Environment["SLABALLOC_WARMUP"] = "0";
        foreach (var (key, value) in settings) start.Environment[key] = value;
        start.Environment["DOTNET_DbgEnableMiniDump"] = "0";
        string commandLine = $"{string.Join(' ', settings.Select(kv => $"{kv.Key}={kv.Value}"))} {start.FileName} {string.Join(' ', start.ArgumentList)}";

        using Process process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {commandLine}");
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        // A hang guard only (the probe takes well under a second), not a timing assertion.
        if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{commandLine} did not finish");
        }
        process.WaitForExit();
        return new ProbeResult(process.ExitCode, stdout.GetAwaiter().GetResult(), stderr.GetAwaiter().GetResult(), commandLine);
    }

    /// <summary>The dotnet host that runs this test process, for child processes.</summary>
    internal static string DotnetHost()
    {
        string? host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(host) && File.Exists(host)) return host;
        string? self = Environment.ProcessPath;
        if (self != null && Path.GetFileNameWithoutExtension(self) == "dotnet") return self;
        return "dotnet";
    }

    /// <summary>The built dll of a child program under tests/ (same configuration as this assembly).</summary>
    internal static string ProgramPath(string project)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "SlabAlloc.sln"))) dir = dir.Parent;
        Assert.True(dir != null, $"no SlabAlloc.sln above {AppContext.BaseDirectory}");
        string configuration = typeof(ProbeProcess).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration
#if DEBUG
            ?? "Debug";
#else
            ?? "Release";
#endif
        string[] candidates =
        [
            Path.Combine(dir.FullName, "tests", project, "bin", configuration, "net10.0", project + ".dll"),
            Path.Combine(dir.FullName, "artifacts", "bin", project, configuration.ToLowerInvariant(), project + ".dll"),
        ];
        string? found = candidates.FirstOrDefault(File.Exists);
        Assert.True(found != null, $"{project} is not built (looked for {string.Join(" and ", candidates)}); build SlabAlloc.sln with -c {configuration}");
        return found;
    }
}
