namespace SlabAlloc.Tests.Interprocess;

/// <summary>Shared heaps for tests: a unique name per heap in /dev/shm, deleted when the test ends.</summary>
internal sealed class TestHeaps : IDisposable
{
    private readonly List<string> _names = [];

    /// <summary>Removes the heaps of test processes that ended without deleting theirs (a crashed run), so that
    /// /dev/shm does not fill up across runs.</summary>
    static TestHeaps()
    {
        foreach (string path in Directory.EnumerateFiles(SharedHeap.DefaultDirectory, "slaballoc-test-*"))
        {
            string[] parts = Path.GetFileName(path).Split('-');
            if (parts.Length > 2 && int.TryParse(parts[2], out int pid) && !Directory.Exists($"/proc/{pid}")) File.Delete(path);
        }
    }

    /// <summary>A fresh heap name (not yet created).</summary>
    public string NewName()
    {
        string name = $"slaballoc-test-{Environment.ProcessId}-{Guid.NewGuid():N}";
        _names.Add(name);
        return name;
    }

    /// <summary>Creates a heap with the given layout (small by default) under a fresh name.</summary>
    public SharedHeap Create(long regionBytes = 8L << 20, int slabBytes = 64 * 1024, int processes = 8, params SharedChannelOptions[] channels)
    {
        var options = new SharedHeapOptions { RegionBytes = regionBytes, SlabBytes = slabBytes, MaxProcesses = processes };
        foreach (SharedChannelOptions channel in channels) options.Channels.Add(channel);
        return SharedHeap.Create(NewName(), options);
    }

    public void Dispose()
    {
        foreach (string name in _names) SharedHeap.Delete(name);
    }
}
