using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace SlabAlloc.Interprocess;

/// <summary>
/// <c>perf stat</c> attached to one process, counting every system call it makes (the
/// <c>raw_syscalls:sys_enter</c> tracepoint) and its futex calls (<c>syscalls:sys_enter_futex</c>) during the
/// measured interval only: perf starts with its counters off (<c>-D -1</c>) and the harness switches them on
/// and off through perf's control FIFO, waiting for each acknowledgement.
/// </summary>
/// <remarks>
/// Attached with <c>-p</c>, perf counts the threads the process has when it attaches: the main thread, which
/// does all the measured work, and the runtime's; threads started later are not counted. The tracepoints send
/// every system call of the process through the kernel's slower traced path, a cost the results state
/// (<c>--syscalls io</c> runs without perf).
/// </remarks>
internal sealed class SyscallCounter : IDisposable
{
    private const string Events = "raw_syscalls:sys_enter,syscalls:sys_enter_futex";
    private static readonly Lazy<bool> UsableOnce = new(Probe);

    private readonly Process _perf;
    private readonly string _directory;
    private readonly int _controlFd, _ackFd;

    /// <summary>Whether perf is installed and allowed to count the tracepoints (tried once).</summary>
    public static bool Usable => UsableOnce.Value;

    private SyscallCounter(int pid)
    {
        _directory = Directory.CreateTempSubdirectory("slaballoc-perf-").FullName;
        string control = Path.Combine(_directory, "control"), ack = Path.Combine(_directory, "ack");
        if (LibC.Mkfifo(control, Convert.ToInt32("600", 8)) != 0 || LibC.Mkfifo(ack, Convert.ToInt32("600", 8)) != 0) throw LibC.Failure("mkfifo");
        // Read-write opens of a FIFO do not wait for the other end, so perf may start after them.
        _controlFd = LibC.Open(control, LibC.ORdWr | LibC.OCloseOnExec, 0);
        _ackFd = LibC.Open(ack, LibC.ORdWr | LibC.OCloseOnExec, 0);
        if (_controlFd < 0 || _ackFd < 0) throw LibC.Failure("open(perf control FIFO)");
        var start = new ProcessStartInfo("perf") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (string argument in (string[])["stat", "-e", Events, "-x", ",", "-D", "-1", "--control", $"fifo:{control},{ack}",
                     "-p", pid.ToString(CultureInfo.InvariantCulture)])
            start.ArgumentList.Add(argument);
        _perf = Process.Start(start) ?? throw new InvalidOperationException("perf did not start");
    }

    /// <summary>Starts perf on <paramref name="pid"/>, its counters off; the child's supervisor kills it on failure.</summary>
    public static SyscallCounter Attach(int pid, ChildProcess supervisor)
    {
        var counter = new SyscallCounter(pid);
        supervisor.KillOnFailure(counter._perf);
        return counter;
    }

    public void Enable() => Command("enable");

    public void Disable() => Command("disable");

    private void Command(string command)
    {
        FileDescriptorIo.WriteAll(_controlFd, Encoding.ASCII.GetBytes(command + "\n"));
        // perf writes "ack\n" with its C string's terminating NUL: read up to the newline, skipping NULs
        // (the one left from the previous answer comes first).
        var answer = new StringBuilder();
        Span<byte> one = stackalloc byte[1];
        do
        {
            AwaitAck();
            FileDescriptorIo.ReadExactly(_ackFd, one);
            if (one[0] != 0) answer.Append((char)one[0]);
        } while (one[0] != (byte)'\n');
        if (answer.ToString() != "ack\n") throw new InvalidDataException($"perf answered '{answer.ToString().Trim()}' to '{command}'");
    }

    /// <summary>Waits until perf's answer can be read. perf sometimes fails to attach (a thread of the target ends
    /// while it attaches) and exits; the FIFO, open read-write here, would then never reach end-of-file.</summary>
    /// <exception cref="PerfFailedException">perf has exited, or did not answer within 30 s.</exception>
    private unsafe void AwaitAck()
    {
        var poll = new LibC.PollFd { Fd = _ackFd, Events = LibC.PollIn };
        for (int waited = 0; LibC.Poll(&poll, 1, 100) == 0; waited += 100)
        {
            if (_perf.HasExited) throw new PerfFailedException($"perf exited without answering: {_perf.StandardError.ReadToEnd().Trim()}");
            if (waited > 30_000) throw new PerfFailedException("perf did not answer within 30 s");
        }
    }

    /// <summary>perf failed to count a run; the run can be tried again.</summary>
    public sealed class PerfFailedException(string message) : Exception(message);

    /// <summary>Stops perf and returns its counts: (all system calls, futex calls).</summary>
    public (long Syscalls, long Futex) Finish()
    {
        LibC.Kill(_perf.Id, LibC.SigInt);
        string output = _perf.StandardError.ReadToEnd();
        _perf.WaitForExit();
        return (Count(output, "raw_syscalls:sys_enter"), Count(output, "syscalls:sys_enter_futex"));
    }

    /// <summary>The count of <paramref name="eventName"/> in perf's CSV output (value,unit,event,...); 0 when
    /// perf reports it "not counted" (no such call happened while counting).</summary>
    private static long Count(string output, string eventName)
    {
        foreach (string line in output.Split('\n'))
        {
            string[] fields = line.Split(',');
            if (fields.Length < 3 || fields[2] != eventName) continue;
            return long.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out long value) ? value : 0;
        }
        throw new InvalidDataException($"perf printed no count of {eventName}: {output.Trim()}");
    }

    private static bool Probe()
    {
        try
        {
            var start = new ProcessStartInfo("perf") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
            foreach (string argument in (string[])["stat", "-e", Events, "-x", ",", "--", "true"]) start.ArgumentList.Add(argument);
            using Process perf = Process.Start(start)!;
            string output = perf.StandardError.ReadToEnd();
            perf.WaitForExit();
            return perf.ExitCode == 0 && Count(output, "raw_syscalls:sys_enter") > 0;
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidDataException)
        {
            return false;
        }
    }

    public void Dispose()
    {
        if (!_perf.HasExited) _perf.Kill();
        _perf.Dispose();
        LibC.Close(_controlFd);
        LibC.Close(_ackFd);
        Directory.Delete(_directory, recursive: true);
    }
}
