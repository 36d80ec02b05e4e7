namespace SlabAlloc.Tests.Interprocess;

/// <summary>Shared heaps for tests: a unique name per heap in /dev/shm, deleted when the test ends.</summary>
internal sealed class TestHeaps : IDisposable
{
    private readonly List<string> _names = [];

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
