using System.Diagnostics;
using System.Text;
using SlabAlloc;

// Two processes and one shared heap. Run with no arguments: this process creates the heap, starts a second
// copy of itself as the worker, sends it 10,000 requests of various sizes through channel "requests", and
// checks each reply on channel "replies" (the worker upper-cases the text). Or run the two roles yourself:
//   SlabAlloc.SharedSample client NAME      (creates the heap NAME, waits for a worker)
//   SlabAlloc.SharedSample worker NAME      (opens it and answers until told to stop)
// Exit code 0 when every check holds.

string role = args.Length > 0 ? args[0] : "both";
string name = args.Length > 1 ? args[1] : $"slaballoc-sample-{Environment.ProcessId}";
return role switch
{
    "worker" => Worker(name),
    "client" => Client(name, startWorker: false),
    _ => Client(name, startWorker: true),
};

static int Client(string name, bool startWorker)
{
    var options = new SharedHeapOptions { RegionBytes = 32L << 20, SlabBytes = 1 << 20, MaxProcesses = 4 };
    options.Channels.Add(new SharedChannelOptions("requests", 256));
    options.Channels.Add(new SharedChannelOptions("replies", 256));
    using SharedHeap heap = SharedHeap.Create(name, options);
    Process? worker = null;
    try
    {
        if (startWorker)
        {
            var start = new ProcessStartInfo(Environment.ProcessPath!) { UseShellExecute = false };
            if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet") start.ArgumentList.Add(typeof(SharedHeap).Assembly.Location.Replace("SlabAlloc.dll", "SlabAlloc.SharedSample.dll"));
            start.ArgumentList.Add("worker");
            start.ArgumentList.Add(name);
            worker = Process.Start(start);
        }
        else
        {
            Console.WriteLine($"heap {heap.Path} created; start: SlabAlloc.SharedSample worker {name}");
        }
        SharedChannel requests = heap.GetChannel("requests"), replies = heap.GetChannel("replies");
        var random = new Random(7);
        var stopwatch = Stopwatch.StartNew();
        const int count = 10_000;
        for (int i = 0; i < count; i++)
        {
            // Compose the request in place: allocate a block and write into the shared memory directly.
            string text = $"request {i}: " + new string('x', random.Next(0, random.Next(10) == 0 ? 100_000 : 200));
            SharedBlock request = heap.Allocate(Encoding.UTF8.GetByteCount(text));
            Encoding.UTF8.GetBytes(text, heap.GetSpan(request));
            requests.Send(request, TimeSpan.FromSeconds(30));

            // The worker frees the request and allocates the reply; this process frees the reply.
            SharedBlock reply = replies.Receive(TimeSpan.FromSeconds(30));
            string answer = Encoding.UTF8.GetString(heap.GetSpan(reply));
            heap.Free(reply);
            if (answer != text.ToUpperInvariant()) return Fail($"reply {i} is wrong");
        }
        stopwatch.Stop();
        requests.Send("stop"u8, TimeSpan.FromSeconds(30));
        if (worker != null && (!worker.WaitForExit(30_000) || worker.ExitCode != 0)) return Fail("the worker failed");

        SharedHeapStatistics statistics = heap.GetStatistics();
        Console.WriteLine($"{count} round trips in {stopwatch.Elapsed.TotalMilliseconds:0} ms; {requests.GetStatistics()}");
        Console.WriteLine(statistics);
        if (statistics.BlocksHeld != 0 || statistics.BlocksInChannels != 0) return Fail("blocks left over");
        Console.WriteLine("SHARED_SAMPLE_OK");
        return 0;
    }
    finally
    {
        worker?.Dispose();
        SharedHeap.Delete(name);
    }
}

static int Worker(string name)
{
    using SharedHeap heap = SharedHeap.Open(name, timeout: TimeSpan.FromSeconds(30));
    SharedChannel requests = heap.GetChannel("requests"), replies = heap.GetChannel("replies");
    while (true)
    {
        SharedBlock request = requests.Receive(TimeSpan.FromSeconds(60));
        string text = Encoding.UTF8.GetString(heap.GetSpan(request));
        heap.Free(request);
        if (text == "stop") return 0;
        string upper = text.ToUpperInvariant();
        SharedBlock reply = heap.Allocate(Encoding.UTF8.GetByteCount(upper));
        Encoding.UTF8.GetBytes(upper, heap.GetSpan(reply));
        replies.Send(reply, TimeSpan.FromSeconds(30));
    }
}

static int Fail(string what)
{
    Console.Error.WriteLine($"FAILED: {what}");
    return 1;
}
