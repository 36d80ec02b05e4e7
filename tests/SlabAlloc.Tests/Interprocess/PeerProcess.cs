using System.Diagnostics;

namespace SlabAlloc.Tests.Interprocess;

/// <summary>A running tests/SlabAlloc.SharedPeer: started with a mode, waited on until it prints READY, and
/// then left to finish or killed with SIGKILL.</summary>
internal sealed class PeerProcess : IDisposable
{
    private readonly Process _process;
    private readonly List<string> _lines = [];
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public PeerProcess(params string[] args)
    {
        var start = new ProcessStartInfo(ProbeProcess.DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(ProbeProcess.ProgramPath("SlabAlloc.SharedPeer"));
        foreach (string arg in args) start.ArgumentList.Add(arg);
        start.Environment["DOTNET_DbgEnableMiniDump"] = "0";
        start.Environment["SLABALLOC_WARMUP"] = "0";
        CommandLine = string.Join(' ', args);
        _process = new Process { StartInfo = start };
        _process.OutputDataReceived += (_, e) =>
        {
            if (e.Data == null) return;
            lock (_lines) _lines.Add(e.Data);
            if (e.Data == "READY") _ready.TrySetResult();
        };
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data != null) lock (_lines) _lines.Add("stderr: " + e.Data);
        };
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string CommandLine { get; }

    public int Pid => _process.Id;

    /// <summary>Everything the peer printed so far.</summary>
    public string Output
    {
        get { lock (_lines) return string.Join('\n', _lines); }
    }

    /// <summary>Waits until the peer has opened the heap and printed READY (a hang guard, not a timing assertion).</summary>
    public void WaitUntilReady()
    {
        if (!_ready.Task.Wait(TimeSpan.FromMinutes(1)) )
            Assert.Fail($"peer `{CommandLine}` never became ready:\n{Output}");
    }

    /// <summary>SIGKILL, then waits for the process to be gone.</summary>
    public void Kill()
    {
        _process.Kill();
        _process.WaitForExit();
    }

    /// <summary>Waits for the peer to finish by itself and returns its exit code.</summary>
    public int WaitForExit()
    {
        if (!_process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            _process.Kill();
            Assert.Fail($"peer `{CommandLine}` did not finish:\n{Output}");
        }
        _process.WaitForExit();
        return _process.ExitCode;
    }

    public void Dispose()
    {
        if (!_process.HasExited) Kill();
        _process.Dispose();
    }
}
