using SlabAlloc.Shared;

namespace SlabAlloc.SharedPeer;

/// <summary>
/// A peer process for the shared heap's tests. Modes:
/// <list type="bullet">
/// <item><c>echo HEAP IN OUT COUNT</c>: receives COUNT messages on channel IN, checks each, sends a copy back on
/// OUT, frees what it received; prints <c>PEER_OK</c> and leaves.</item>
/// <item><c>churn HEAP SEED</c>: prints <c>READY</c>, then allocates, checks, frees, sends on channel <c>a</c> and
/// receives on channels <c>a</c> and <c>b</c> at random, forever: it is there to be killed.</item>
/// <item><c>hold HEAP COUNT</c>: allocates COUNT blocks, sends none, prints <c>READY</c> and waits to be killed.</item>
/// </list>
/// A message that fails its check prints <c>MISMATCH</c> and ends the process with exit code 3; a churning or
/// holding peer whose parent has gone ends with exit code 4.
/// </summary>
internal static class Program
{
    private static int Main(string[] args)
    {
        try
        {
            return args switch
            {
                ["echo", string heap, string input, string output, string count] => Echo(heap, input, output, int.Parse(count)),
                ["churn", string heap, string seed] => Churn(heap, int.Parse(seed)),
                ["hold", string heap, string count] => Hold(heap, int.Parse(count)),
                _ => Usage(),
            };
        }
        catch (Exception e)
        {
            Console.WriteLine($"PEER_FAILED {e.GetType().Name}: {e.Message}");
            return 1;
        }
    }

    private static int Usage()
    {
        Console.Error.WriteLine("usage: SlabAlloc.SharedPeer echo HEAP IN OUT COUNT | churn HEAP SEED | hold HEAP COUNT");
        return 2;
    }

    private static int Echo(string name, string input, string output, int count)
    {
        using SharedHeap heap = SharedHeap.Open(name);
        SharedChannel requests = heap.GetChannel(input), replies = heap.GetChannel(output);
        Console.WriteLine("READY");
        for (int i = 0; i < count; i++)
        {
            SharedBlock request = requests.Receive(TimeSpan.FromSeconds(60));
            SharedMessage.Read(heap.GetSpan(request), out string? problem);
            if (problem != null) return Mismatch(problem);
            SharedBlock reply = heap.Allocate(Math.Max(1, request.Length)) with { Length = request.Length };
            heap.GetSpan(request).CopyTo(heap.GetSpan(reply));
            heap.Free(request);
            replies.Send(reply, TimeSpan.FromSeconds(60));
        }
        Console.WriteLine("PEER_OK");
        return 0;
    }

    private static int Churn(string name, int seed)
    {
        using SharedHeap heap = SharedHeap.Open(name);
        SharedChannel a = heap.GetChannel("a"), b = heap.GetChannel("b");
        var random = new Random(seed);
        var held = new List<SharedBlock>();
        long nextId = (long)seed << 32;
        Console.WriteLine("READY");
        int parent = getppid();
        for (long iteration = 0; ; iteration++)
        {
            // Killed by the test as a rule; a test process that itself crashed must not leave this one spinning.
            if ((iteration & 4095) == 0 && getppid() != parent) return 4;
            switch (random.Next(5))
            {
                case 0 when held.Count < 64:
                    SharedBlock block = heap.Allocate(random.Next(SharedMessage.MinBytes, random.Next(4) == 0 ? heap.MaxBlockBytes : 512));
                    SharedMessage.Write(heap.GetSpan(block), nextId++);
                    held.Add(block);
                    break;
                case 1 when held.Count > 0:
                    heap.Free(Take(held, random));
                    break;
                case 2 when held.Count > 0:
                    SharedBlock message = Take(held, random);
                    if (!a.TrySend(message)) heap.Free(message);
                    break;
                default:
                    if ((random.Next(2) == 0 ? a : b).TryReceive(out SharedBlock received))
                    {
                        SharedMessage.Read(heap.GetSpan(received), out string? problem);
                        if (problem != null) return Mismatch(problem);
                        if (held.Count < 64) held.Add(received);
                        else heap.Free(received);
                    }
                    break;
            }
        }
    }

    private static int Hold(string name, int count)
    {
        using SharedHeap heap = SharedHeap.Open(name);
        for (int i = 0; i < count; i++) SharedMessage.Write(heap.GetSpan(heap.Allocate(64 + i % 1000)), i);
        Console.WriteLine("READY");
        int parent = getppid();
        while (getppid() == parent) Thread.Sleep(100);
        return 4;
    }

    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern int getppid();

    private static SharedBlock Take(List<SharedBlock> held, Random random)
    {
        int index = random.Next(held.Count);
        SharedBlock block = held[index];
        held[index] = held[^1];
        held.RemoveAt(held.Count - 1);
        return block;
    }

    private static int Mismatch(string problem)
    {
        Console.WriteLine($"MISMATCH {problem}");
        return 3;
    }
}
