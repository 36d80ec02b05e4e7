using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;

namespace SlabAlloc.Interprocess;

/// <summary>
/// The child of one run (this same program, started as <c>dotnet SlabAlloc.Interprocess.dll child ...</c>) and
/// its supervision: its standard input and output carry the control lines (<c>ready</c>, <c>go</c>, the report),
/// never the measured bytes; its standard error passes through to ours.
/// </summary>
/// <remarks>
/// A run must end loudly rather than hang: a deadline timer, and the child's exit with a non-zero status (a
/// crash, a failed check), each kill the child and every helper registered with <see cref="KillOnFailure"/>
/// (the perf processes), print why and exit with status 3. Both fire on threads of their own, because the
/// main thread may be spinning on a ring that the dead child will never fill again.
/// </remarks>
internal sealed class ChildProcess : IDisposable
{
    public const int FailureExitCode = 3;

    private readonly Process _process;
    private readonly Timer _deadline;
    private readonly List<Process> _helpers = [];
    private readonly string _what;

    private ChildProcess(Process process, TimeSpan timeout, string what)
    {
        _process = process;
        _what = what;
        _process.EnableRaisingEvents = true;
        _process.Exited += OnExited;
        _deadline = new Timer(_ => Fail($"{_what}: no result after {timeout.TotalSeconds:F0} s (--timeout); the child was killed"),
            null, timeout, Timeout.InfiniteTimeSpan);
    }

    public int Id => _process.Id;

    /// <summary>Starts the child with <paramref name="arguments"/> after the role argument.</summary>
    public static ChildProcess Start(IEnumerable<string> arguments, TimeSpan timeout, string what)
    {
        var start = new ProcessStartInfo
        {
            FileName = DotnetHost(),
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(typeof(ChildProcess).Assembly.Location);
        start.ArgumentList.Add("child");
        foreach (string argument in arguments) start.ArgumentList.Add(argument);
        Process process = Process.Start(start) ?? throw new InvalidOperationException("the child process did not start");
        return new ChildProcess(process, timeout, what);
    }

    /// <summary>The <c>dotnet</c> running this program when started as <c>dotnet app.dll</c>, else the one on PATH.</summary>
    private static string DotnetHost()
    {
        string? self = Environment.ProcessPath;
        return self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self : "dotnet";
    }

    public void KillOnFailure(Process helper)
    {
        lock (_helpers) _helpers.Add(helper);
    }

    public void Send(string line)
    {
        _process.StandardInput.WriteLine(line);
        _process.StandardInput.Flush();
    }

    /// <summary>The child's next control line; throws when the child closed its output instead.</summary>
    public string ReadLine() =>
        _process.StandardOutput.ReadLine() ?? throw new InvalidDataException($"{_what}: the child ended without reporting ({Status()})");

    public void Expect(string line)
    {
        string got = ReadLine();
        if (got != line) throw new InvalidDataException($"{_what}: the child said '{got}' where '{line}' was due");
    }

    /// <summary>Waits for the child to exit (the deadline still runs) and checks its status.</summary>
    public void WaitForSuccess()
    {
        _process.WaitForExit();
        if (_process.ExitCode != 0) throw new InvalidDataException($"{_what}: the child failed ({Status()})");
    }

    /// <summary>How the child ended, for a failure message.</summary>
    public string Status()
    {
        if (!_process.WaitForExit(TimeSpan.FromSeconds(2))) return "still running";
        int code = _process.ExitCode;
        return code > 128 ? $"killed by signal {code - 128}" : $"exit status {code}";
    }

    private void OnExited(object? sender, EventArgs e)
    {
        if (_process.ExitCode != 0) Fail($"{_what}: the child failed ({Status()})");
    }

    [DoesNotReturn]
    private void Fail(string message)
    {
        Console.Error.WriteLine($"SlabAlloc.Interprocess: {message}");
        KillAll();
        Environment.Exit(FailureExitCode);
        throw new UnreachableException();
    }

    private void KillAll()
    {
        try { _process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
        lock (_helpers)
            foreach (Process helper in _helpers)
                try { helper.Kill(); } catch (InvalidOperationException) { }
    }

    public void Dispose()
    {
        _deadline.Dispose();
        _process.Exited -= OnExited;
        if (!_process.HasExited) KillAll();
        _process.Dispose();
    }
}
