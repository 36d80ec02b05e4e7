namespace SlabAlloc;

/// <summary>How <see cref="SharedHeap.Create"/> lays out a new shared heap. The layout is fixed for the heap's life.</summary>
public sealed class SharedHeapOptions
{
    /// <summary>The region's size in bytes, tables included (default 64 MiB). The file is sparse: pages cost
    /// memory once touched.</summary>
    public long RegionBytes { get; set; } = 64L << 20;

    /// <summary>The slab size: a power of two from 64 KiB to 64 MiB (default 1 MiB). It is also the largest block.</summary>
    public int SlabBytes { get; set; } = 1 << 20;

    /// <summary>How many processes (more exactly, open <see cref="SharedHeap"/> instances) may use the heap at once
    /// (default 16, at most 1024).</summary>
    public int MaxProcesses { get; set; } = 16;

    /// <summary>Allocate every page of the region when it is created (<c>MAP_POPULATE</c>), so that no block's first
    /// use takes a page fault (default false: pages are allocated as they are first touched). The memory is
    /// then in use from the start.</summary>
    public bool Prefault { get; set; }

    /// <summary>The directory of the region's file (default <c>/dev/shm</c>, which is memory).</summary>
    public string Directory { get; set; } = SharedHeap.DefaultDirectory;

    /// <summary>The channels, by name (1 to 48 bytes of UTF-8) and capacity in messages (a power of two from 2
    /// to 2^20); at most 64.</summary>
    public IList<SharedChannelOptions> Channels { get; } = new List<SharedChannelOptions>();
}

/// <summary>One channel of a new <see cref="SharedHeap"/>.</summary>
/// <param name="Name">The name processes find it by.</param>
/// <param name="Capacity">How many messages it holds before a sender has to wait (a power of two).</param>
public sealed record SharedChannelOptions(string Name, int Capacity = 1024);
