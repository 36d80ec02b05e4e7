using SlabAlloc.Interprocess;
using SlabAlloc.Platform;

namespace SlabAlloc;

/// <summary>
/// A slab heap inside a named shared-memory region: blocks allocated by one process can be read, written,
/// sent through a <see cref="SharedChannel"/> and freed by any other process of the same user that opens the
/// heap. Blocks are named by <see cref="SharedBlock.Offset"/>, valid in every process.
/// </summary>
/// <remarks>
/// <para>The same lock-free design as the in-process pool: each process has a cache of free blocks per size
/// class, in front of global tagged stacks of free blocks and of free slabs, all on offsets, every change a
/// compare-exchange with a version tag against ABA. Every block has an owner word saying who holds it, so that
/// two processes racing on one block get one success and one clear error.</para>
/// <para>A process that ends, normally or killed, while holding blocks or in the middle of an operation does not
/// wedge the heap: the next process that joins, finds the heap full, or waits on a channel too long, finds it
/// dead (by pid and start time), and frees what it held.</para>
/// <para>Thread-safe. Linux only (<c>/dev/shm</c>, futexes, <c>/proc</c>). The layout is in docs/shared-memory.md.</para>
/// </remarks>
public sealed unsafe class SharedHeap : IDisposable
{
    /// <summary>Where region files go unless told otherwise: <c>/dev/shm</c>.</summary>
    public const string DefaultDirectory = "/dev/shm";

    private readonly HeapRegion _region;
    private readonly SharedChannel?[] _channels;

    private SharedHeap(string name, HeapRegion region)
    {
        Name = name;
        _region = region;
        _channels = new SharedChannel?[region.Layout.ChannelNames.Length];
    }

    /// <summary>The heap's name.</summary>
    public string Name { get; }

    /// <summary>The region's file.</summary>
    public string Path => _region.Path;

    /// <summary>The region's size in bytes.</summary>
    public long RegionBytes => (long)_region.Layout.RegionBytes;

    /// <summary>The largest block: the slab size.</summary>
    public int MaxBlockBytes => (int)_region.Layout.SlabBytes;

    /// <summary>The channels, in the order they were created.</summary>
    public IReadOnlyList<string> ChannelNames => _region.Layout.ChannelNames;

    /// <summary>Creates a heap and opens it. The region file is created owner-only (mode 0600) and exclusively.</summary>
    /// <param name="name">1 to 200 characters of letters, digits, '.', '_' and '-'; the file is
    /// <c>Directory/name</c>.</param>
    /// <param name="options">The layout (default: 64 MiB, 1 MiB slabs, 16 processes, no channel).</param>
    /// <exception cref="ArgumentException">A bad name or option.</exception>
    /// <exception cref="IOException">The file exists, or the system refused it.</exception>
    /// <exception cref="PlatformNotSupportedException">Not Linux.</exception>
    public static SharedHeap Create(string name, SharedHeapOptions? options = null)
    {
        options ??= new SharedHeapOptions();
        string path = PathOf(name, options.Directory);
        string[] names = options.Channels.Select(c => c.Name).ToArray();
        uint[] capacities = options.Channels.Select(c => (uint)Math.Max(0, c.Capacity)).ToArray();
        if (options.RegionBytes <= 0) throw new ArgumentException($"RegionBytes must be positive, not {options.RegionBytes}.", nameof(options));
        if (RegionLayout.Problem((ulong)options.RegionBytes, (ulong)Math.Max(0, options.SlabBytes), options.MaxProcesses, names, capacities) is string problem)
            throw new ArgumentException(problem + ".", nameof(options));
        var layout = new RegionLayout((ulong)options.RegionBytes, (ulong)options.SlabBytes, options.MaxProcesses, names, capacities);
        return new SharedHeap(name, HeapRegion.Create(path, layout, options.Prefault));
    }

    /// <summary>Opens a heap another process created, waiting up to <paramref name="timeout"/> (default 5 s) for
    /// its creator to finish laying it out.</summary>
    /// <exception cref="FileNotFoundException">No such heap.</exception>
    /// <exception cref="UnauthorizedAccessException">The file is not this user's, or others may read it.</exception>
    /// <exception cref="InvalidDataException">Not a heap of this layout version, or a corrupt one.</exception>
    /// <exception cref="InvalidOperationException">Every process slot is held by a live process.</exception>
    /// <param name="name">The heap's name.</param>
    /// <param name="directory">The directory of its file.</param>
    /// <param name="timeout">How long to wait for a creator still laying the heap out.</param>
    /// <param name="prefault">Fill this process's page tables for the whole region now (<c>MAP_POPULATE</c>), so that
    /// its first touch of each page takes no fault.</param>
    public static SharedHeap Open(string name, string directory = DefaultDirectory, TimeSpan? timeout = null, bool prefault = false)
    {
        string path = PathOf(name, directory);
        return new SharedHeap(name, HeapRegion.Open(path, timeout ?? HeapRegion.DefaultOpenTimeout, prefault));
    }

    /// <summary>Removes a heap's file. Processes that have it open keep using it; the memory goes when the last closes.</summary>
    /// <returns>False when there was no such heap.</returns>
    public static bool Delete(string name, string directory = DefaultDirectory) => SharedRegionFile.Delete(PathOf(name, directory));

    private static string PathOf(string name, string directory)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(directory);
        if (!SharedRegionFile.Supported) throw new PlatformNotSupportedException("shared heaps need Linux.");
        if (name.Length is 0 or > 200 || name is "." or ".." || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
            throw new ArgumentException($"'{name}' is not a heap name: use 1 to 200 letters, digits, '.', '_' or '-'.", nameof(name));
        return System.IO.Path.Combine(directory, name);
    }

    /// <summary>Allocates a block of <paramref name="bytes"/> (1 to <see cref="MaxBlockBytes"/>) held by this process.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A size outside that range.</exception>
    /// <exception cref="InsufficientMemoryException">The heap is full, even after maintenance.</exception>
    public SharedBlock Allocate(int bytes)
    {
        if (!TryAllocate(bytes, out SharedBlock block))
            throw new InsufficientMemoryException($"the shared heap {Path} has no free block of {bytes} bytes.");
        return block;
    }

    /// <summary>Allocates a block, or returns false when the heap is full even after maintenance.</summary>
    public bool TryAllocate(int bytes, out SharedBlock block)
    {
        if (bytes < 1 || bytes > MaxBlockBytes)
            throw new ArgumentOutOfRangeException(nameof(bytes), $"a shared block is 1 to {MaxBlockBytes} bytes, not {bytes}.");
        uint unit = _region.Allocate((nuint)bytes);
        block = unit == 0 ? default : new SharedBlock((long)unit * 64, bytes);
        return unit != 0;
    }

    /// <summary>Frees a block, whichever process allocated it.</summary>
    /// <exception cref="ArgumentException">Not a block of this heap, already free, or in a channel.</exception>
    public void Free(SharedBlock block) => _region.Free(block.Offset);

    /// <summary>The block's <see cref="SharedBlock.Length"/> bytes. Checks that the offset starts a block and the
    /// length fits it, not who holds it.</summary>
    /// <exception cref="ArgumentException">Not a block of this heap, or longer than the block.</exception>
    public Span<byte> GetSpan(SharedBlock block) => _region.SpanOf(block.Offset, block.Length);

    /// <summary>The capacity of a block: its size class, at least its length.</summary>
    public int CapacityOf(SharedBlock block) => _region.CapacityAt(block.Offset);

    /// <summary>The channel named <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">The heap has no such channel.</exception>
    public SharedChannel GetChannel(string name)
    {
        int index = Array.IndexOf(_region.Layout.ChannelNames, name);
        if (index < 0) throw new KeyNotFoundException($"the shared heap {Path} has no channel '{name}'.");
        SharedChannel? channel = Volatile.Read(ref _channels[index]);
        if (channel != null) return channel;
        // Loses to another thread creating the same channel view: both then use the one that was stored first.
        Interlocked.CompareExchange(ref _channels[index], new SharedChannel(this, _region, index, name), null);
        return _channels[index]!;
    }

    /// <summary>Runs maintenance now: recovers processes that died (frees what they held, settles their half-done
    /// channel operations) and returns empty slabs. Other processes wait while it runs.</summary>
    public SharedHeapRecovery Recover()
    {
        HeapRegion.MaintenanceReport report = _region.Recover();
        return new SharedHeapRecovery(report.ProcessesRecovered, report.BlocksReclaimed, report.SlabsReturned, report.MessagesDropped);
    }

    /// <summary>Counts what the heap holds from its shared tables (a walk of every block's owner word).</summary>
    public SharedHeapStatistics GetStatistics()
    {
        HeapRegion.Census census = _region.TakeCensus();
        HeapRegion.Counters header = _region.ReadCounters();
        return new SharedHeapStatistics
        {
            Processes = census.Processes,
            RegionBytes = RegionBytes,
            SlabBytes = MaxBlockBytes,
            SlabCount = _region.Layout.SlabCount,
            SlabsInUse = census.SlabsInUse,
            SlabsNeverUsed = census.SlabsNeverUsed,
            BlocksHeld = census.BlocksHeld,
            BytesHeld = census.BytesHeld,
            BlocksHeldHere = census.BlocksHeldHere,
            BlocksInChannels = census.BlocksInChannels,
            FreeBlocksInSlabsInUse = census.FreeBlocksInSlabsInUse,
            MaintenanceRuns = header.MaintenanceRuns,
            ProcessesRecovered = header.ProcessesRecovered,
            BlocksReclaimed = header.BlocksReclaimed,
            SlabsReturned = header.SlabsReturned,
            MessagesDropped = header.MessagesDropped,
            ProcessesJoined = header.ProcessesJoined,
        };
    }

    /// <summary>Leaves the heap: every block this instance still holds is freed, its slot is given back, and the
    /// region is unmapped here. The heap and its file stay for the other processes (see <see cref="Delete"/>).</summary>
    public void Dispose() => _region.Dispose();
}

/// <summary>What one <see cref="SharedHeap.Recover"/> did.</summary>
public readonly record struct SharedHeapRecovery(int ProcessesRecovered, long BlocksReclaimed, long SlabsReturned, long MessagesDropped);
