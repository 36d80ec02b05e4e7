using System.Buffers;
using System.Diagnostics.Metrics;
using System.IO.Pipelines;
using System.Reflection.PortableExecutable;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using SlabAlloc;

// The README's examples, compiled against the SlabAlloc package. Exit code 0 when every check holds.
unsafe
{
    // --- API (README "API") ---
    byte* buffer = (byte*)SlabMemory.Alloc(4096);
    buffer[0] = 42;
    buffer = (byte*)SlabMemory.Realloc(buffer, 16384);    // contents kept
    Check(buffer[0] == 42, "Realloc keeps contents");
    void* page = SlabMemory.AlignedAlloc(8192, 4096);      // 4 KiB aligned
    Check(((nuint)page & 4095) == 0, "AlignedAlloc aligns");
    SlabMemory.Free(buffer);
    SlabMemory.AlignedFree(page);
    Console.WriteLine(SlabMemory.GetStatistics());

    // --- Errors (README "Errors") ---
    void* foreign = System.Runtime.InteropServices.NativeMemory.Alloc(64);
    try { SlabMemory.Free(foreign); Check(false, "a foreign pointer is rejected"); }
    catch (ArgumentException e) { Console.WriteLine($"rejected: {e.Message}"); }
    System.Runtime.InteropServices.NativeMemory.Free(foreign);
}

// --- Logging (README "Logging") ---
using (var factory = LoggerFactory.Create(b => b.AddConsole().SetMinimumLevel(LogLevel.Debug)))
{
    SlabAllocLogging.Configure(factory);
    unsafe { void* p = SlabMemory.Alloc(100); SlabMemory.Free(p); }
    SlabAllocLogging.Configure(null);   // before disposing the factory
}

// --- MemoryPool<byte> (README "MemoryPool<byte>") ---
var pipe = new Pipe(new PipeOptions(pool: SlabMemoryPool.Shared));
using (IMemoryOwner<byte> owner = SlabMemoryPool.Shared.Rent(16 * 1024))
{
    Span<byte> span = owner.Memory.Span;   // exactly 16 KiB
    Check(span.Length == 16 * 1024, "Rent gives the size asked for");
}
byte[] message = "hello through SlabAlloc memory"u8.ToArray();
await pipe.Writer.WriteAsync(message);
await pipe.Writer.CompleteAsync();
ReadResult read = await pipe.Reader.ReadAsync();
Check(read.Buffer.ToArray().AsSpan().SequenceEqual(message), "a Pipe over SlabMemoryPool round-trips");
pipe.Reader.AdvanceTo(read.Buffer.End);
await pipe.Reader.CompleteAsync();

// --- SharedHeap (README "SharedHeap") ---
string heapName = $"slaballoc-readme-{Environment.ProcessId}";
try
{
    var options = new SharedHeapOptions { Channels = { new SharedChannelOptions("requests") } };
    using SharedHeap heap = SharedHeap.Create(heapName, options);  // elsewhere: SharedHeap.Open(heapName)
    SharedBlock block = heap.Allocate(256);
    "hello"u8.CopyTo(heap.GetSpan(block));
    heap.GetChannel("requests").Send(block);                   // the receiver frees it
    SharedBlock received = heap.GetChannel("requests").Receive();
    Check(heap.GetSpan(received)[..5].SequenceEqual("hello"u8), "a block crosses a SharedChannel");
    heap.Free(received);
    Check(heap.GetStatistics().BlocksHeld == 0, "the shared heap's accounting is exact");
}
finally
{
    SharedHeap.Delete(heapName);
}

// --- Metrics (README "Metrics") ---
// The meter is published by a background thread shortly after SlabAlloc loads: wait for the instrument
// before collecting (a listener started earlier would simply see it appear).
long inUse = -1;
using (var published = new ManualResetEventSlim())
using (var listener = new MeterListener())
{
    listener.InstrumentPublished = (instrument, l) =>
    {
        if (instrument.Meter.Name != SlabAllocMetrics.MeterName) return;
        l.EnableMeasurementEvents(instrument);
        if (instrument.Name == "slaballoc.memory.in_use") published.Set();
    };
    listener.SetMeasurementEventCallback<long>((instrument, value, _, _) => { if (instrument.Name == "slaballoc.memory.in_use") inUse = value; });
    listener.Start();
    if (published.Wait(TimeSpan.FromSeconds(30))) listener.RecordObservableInstruments();
}
Check(inUse >= 0, "the SlabAlloc meter publishes bytes in use");

// --- Lock statistics (README "Lock statistics") ---
SlabLockStatistics locks = SlabMemory.GetLockStatistics();
Console.WriteLine($"pool {locks.Pool}, lock acquisitions {locks.LockAcquisitions}, hit rate {locks.ThreadCacheHitRate:P1}");

// --- The package's SlabAlloc.dll is precompiled (ReadyToRun) for linux-x64 (README "Use it") ---
if (OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture == Architecture.X64)
{
    using var pe = new PEReader(File.OpenRead(typeof(SlabMemory).Assembly.Location));
    Check(pe.PEHeaders.CorHeader?.ManagedNativeHeaderDirectory.Size > 0, "the package's SlabAlloc.dll is compiled ReadyToRun");
}

SlabMemory.Trim();
Console.WriteLine("sample ok");
return 0;

static void Check(bool condition, string what)
{
    if (condition) return;
    Console.Error.WriteLine($"sample FAILED: {what}");
    Environment.Exit(1);
}
