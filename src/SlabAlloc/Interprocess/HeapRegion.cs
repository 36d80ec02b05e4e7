using System.Runtime.CompilerServices;
using System.Text;
using SlabAlloc.Memory;
using SlabAlloc.Platform;

namespace SlabAlloc.Interprocess;

/// <summary>
/// One process's view of a shared heap: the mapped region, the slot this view holds in the process table,
/// and the operations on blocks, channels and maintenance (the other parts of this partial class).
/// </summary>
/// <remarks>
/// <para><b>Vocabulary.</b> The region is cut into <i>slabs</i> of one size; a slab taken for a <i>class</i> is
/// cut into <i>blocks</i> of that class's size. A block is named by its <i>unit</i>: its offset from the
/// region's start in 64-byte units, valid in every process. Free blocks sit in tagged stacks: one per class
/// for the whole heap (the <i>global stacks</i>) and one per class for each process slot (its <i>cache</i>).
/// The <i>owner table</i> holds one word per unit saying who holds the block that starts there
/// (<see cref="OwnerWord"/>).</para>
/// <para><b>Invariants</b>, true whenever no operation is in progress (checked by maintenance):
/// a block is in at most one stack, and every block in a stack has the owner word Free; a block in a
/// channel's full cell has the word InChannel(that channel); every slab below
/// <see cref="RegionHeader.SlabsCarved"/> either has a class or is in <see cref="RegionHeader.FreeSlabs"/>.
/// Blocks that are Free but in no stack were dropped by a process that died mid-operation; maintenance
/// puts them back.</para>
/// <para><b>Operations and maintenance.</b> Every operation on shared state runs between
/// <see cref="Enter"/> and <see cref="Exit"/>, which count the process's threads inside one. Maintenance
/// (recovering dead processes, returning empty slabs) first claims <see cref="RegionHeader.MaintenanceOwner"/>
/// and then waits until no live process is inside an operation; from then on it is alone with the shared
/// state, apart from half-finished operations of dead processes, which the invariants above let it finish
/// or undo. See <c>HeapRegion.Maintenance.cs</c>.</para>
/// <para>The view may be used by any number of threads of its process at once. <see cref="Dispose"/> waits for
/// the calls in progress (waking those asleep on a channel) before it unmaps; later calls throw
/// <see cref="ObjectDisposedException"/>.</para>
/// </remarks>
internal sealed unsafe partial class HeapRegion : IDisposable
{
    public readonly string Path;
    public readonly RegionLayout Layout;
    private readonly byte* _base;
    private readonly nuint _mappedBytes;

    /// <summary>This view's slot in the process table, and the identity it holds the slot under.</summary>
    public readonly int Slot;
    public readonly long Identity;
    private readonly ProcessRecord* _record;

    /// <summary>Per class: roughly how many blocks this view's cache holds. A hint for trimming only (threads
    /// update it without atomics, and maintenance empties caches without telling), corrected at each trim.</summary>
    private readonly int[] _cachedCount;
    /// <summary>Per class: how many blocks a cache keeps after a trim; it is trimmed at twice that.</summary>
    private readonly int[] _cacheKeep;
    private int _disposed;
    /// <summary>Threads of this process inside a call that touches the mapping (see <see cref="Use"/>).</summary>
    private int _users;

    private HeapRegion(string path, byte* regionBase, nuint mappedBytes, RegionLayout layout, int slot)
    {
        Path = path;
        _base = regionBase;
        _mappedBytes = mappedBytes;
        Layout = layout;
        Slot = slot;
        Identity = ProcessIdentity.Current;
        _record = Record(slot);
        _cachedCount = new int[layout.ClassCount];
        _cacheKeep = new int[layout.ClassCount];
        for (int c = 0; c < layout.ClassCount; c++)
            _cacheKeep[c] = (int)Math.Clamp(CacheBytesPerClass / (long)SharedSizeClasses.BlockBytes(c), 2, 1024);
    }

    /// <summary>What a process's cache keeps of one class after a trim, in bytes.</summary>
    private const long CacheBytesPerClass = 256 * 1024;

    /// <summary>How long an opener waits for a creator to finish a region it found incomplete.</summary>
    public static readonly TimeSpan DefaultOpenTimeout = TimeSpan.FromSeconds(5);

    // ---- creating and opening ----------------------------------------------------------------------------

    /// <summary>Creates the region file, lays the region out, publishes it, and joins it.</summary>
    public static HeapRegion Create(string path, RegionLayout layout, bool prefault)
    {
        byte* regionBase = SharedRegionFile.Create(path, (nuint)layout.RegionBytes, prefault);
        try
        {
            ref RegionHeader header = ref *(RegionHeader*)regionBase;
            layout.WriteInto(ref header);
            header.CreatorIdentity = ProcessIdentity.Current;
            header.CreatedUnixMilliseconds = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            for (int i = 0; i < layout.ChannelNames.Length; i++)
            {
                var channel = (ChannelHeader*)(regionBase + layout.ChannelOffsets[i]);
                Encoding.UTF8.GetBytes(layout.ChannelNames[i], new Span<byte>(channel->Name, ChannelHeader.NameBytes));
                channel->Capacity = layout.ChannelCapacities[i];
                channel->Index = (uint)i;
                var cells = (ChannelCell*)((byte*)channel + ChannelHeader.Bytes);
                for (uint p = 0; p < channel->Capacity; p++) cells[p].Sequence = p;
            }
            header.Checksum = Checksum(regionBase, layout);
            // Release: an opener that reads the magic (acquire) sees every byte written above.
            Volatile.Write(ref header.Magic, RegionHeader.ExpectedMagic);
            return Join(path, regionBase, (nuint)layout.RegionBytes, layout);
        }
        catch
        {
            SharedRegionFile.Unmap(regionBase, (nuint)layout.RegionBytes);
            SharedRegionFile.Delete(path);
            throw;
        }
    }

    /// <summary>Opens an existing region: waits (up to <paramref name="timeout"/>) for its creator to publish it,
    /// verifies its header against a layout computed afresh, and joins it.</summary>
    public static HeapRegion Open(string path, TimeSpan timeout, bool prefault)
    {
        long deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        while (true)
        {
            byte* regionBase = SharedRegionFile.Open(path, out nuint bytes, prefault);
            bool keep = false;
            try
            {
                if (bytes >= RegionLayout.HeaderBytes && Volatile.Read(ref ((RegionHeader*)regionBase)->Magic) != 0)
                {
                    RegionLayout layout = Verify(path, regionBase, bytes);
                    HeapRegion region = Join(path, regionBase, bytes, layout);
                    keep = true;
                    return region;
                }
            }
            finally
            {
                if (!keep && regionBase != null) SharedRegionFile.Unmap(regionBase, bytes);
            }
            if (Environment.TickCount64 >= deadline)
                throw new InvalidDataException($"the shared heap {path} is incomplete: its creator did not finish laying it out within {timeout.TotalSeconds:0.#} s.");
            Thread.Sleep(10);
        }
    }

    /// <summary>Checks a published region: magic, version, sizes, every channel descriptor, every offset and the
    /// checksum. Reads nothing outside the first <paramref name="bytes"/>.</summary>
    private static RegionLayout Verify(string path, byte* regionBase, nuint bytes)
    {
        ref RegionHeader header = ref *(RegionHeader*)regionBase;
        if (header.Magic != RegionHeader.ExpectedMagic) throw Corrupt(path, "it is not a SlabAlloc shared heap (wrong magic number)");
        if (header.LayoutVersion != RegionHeader.CurrentVersion)
            throw Corrupt(path, $"its layout version is {header.LayoutVersion}; this library reads version {RegionHeader.CurrentVersion}");
        if (header.RegionBytes != bytes) throw Corrupt(path, $"its header says {header.RegionBytes} bytes but the file holds {bytes}");
        if (header.ChannelCount > RegionLayout.MaxChannels || header.ProcessSlots > RegionLayout.MaxProcessSlots)
            throw Corrupt(path, "its channel or process count is out of range");
        var names = new string[header.ChannelCount];
        var capacities = new uint[header.ChannelCount];
        // Channel descriptors lie one after another from the channel table, which depends on the slot and class
        // counts alone; recompute it rather than trust the stored offset.
        // The parameters are checked before any layout is computed from them: a slab size beyond the range makes
        // a class of 2^64 bytes (0 in 64 bits), which a layout would divide by.
        if (RegionLayout.Problem(header.RegionBytes, header.SlabBytes, (int)header.ProcessSlots, [], []) is string bad)
            throw Corrupt(path, bad);
        var probe = new RegionLayout(header.RegionBytes, header.SlabBytes, (int)header.ProcessSlots, [], []);
        ulong offset = probe.ChannelTableOffset + (ulong)header.ProcessSlots * ((ulong)header.ChannelCount * 8 + 63 & ~63UL);
        for (int i = 0; i < names.Length; i++)
        {
            if (offset + ChannelHeader.Bytes > bytes) throw Corrupt(path, "its channel table runs past the end");
            var channel = (ChannelHeader*)(regionBase + offset);
            var name = new ReadOnlySpan<byte>(channel->Name, ChannelHeader.NameBytes);
            int length = name.IndexOf((byte)0);
            names[i] = Encoding.UTF8.GetString(length < 0 ? name : name[..length]);
            capacities[i] = channel->Capacity;
            if (channel->Index != i || capacities[i] < 2 || capacities[i] > 1u << 20 || (capacities[i] & (capacities[i] - 1)) != 0)
                throw Corrupt(path, $"channel {i} has a bad descriptor");
            offset += ChannelHeader.Bytes + capacities[i] * 16UL;
        }
        if (RegionLayout.Problem(header.RegionBytes, header.SlabBytes, (int)header.ProcessSlots, names, capacities) is string problem)
            throw Corrupt(path, problem);
        var layout = new RegionLayout(header.RegionBytes, header.SlabBytes, (int)header.ProcessSlots, names, capacities);
        if (layout.Verify(header) is string field) throw Corrupt(path, $"its layout does not add up ({field})");
        if (Checksum(regionBase, layout) != header.Checksum) throw Corrupt(path, "its header checksum does not match");
        return layout;
    }

    /// <summary>FNV-1a over the header's written-once fields and every channel descriptor.</summary>
    private static ulong Checksum(byte* regionBase, RegionLayout layout)
    {
        ulong hash = 0xcbf29ce484222325;
        void Mix(ReadOnlySpan<byte> bytes)
        {
            foreach (byte b in bytes) hash = (hash ^ b) * 0x100000001b3;
        }
        Mix(new ReadOnlySpan<byte>(regionBase + RegionHeader.ChecksummedStart, RegionHeader.ChecksummedEnd - RegionHeader.ChecksummedStart));
        foreach (ulong offset in layout.ChannelOffsets) Mix(new ReadOnlySpan<byte>(regionBase + offset, 56));
        return hash;
    }

    /// <summary>Claims a free slot of the process table; if none is free, recovers dead processes and tries once more.</summary>
    private static HeapRegion Join(string path, byte* regionBase, nuint bytes, RegionLayout layout)
    {
        long identity = ProcessIdentity.Current;
        for (int attempt = 0; attempt < 2; attempt++)
        {
            for (int slot = 0; slot < layout.ProcessSlots; slot++)
            {
                var record = (ProcessRecord*)(regionBase + layout.ProcessTableOffset + (ulong)slot * layout.ProcessRecordBytes);
                // Loses to another process claiming the same slot: try the next one.
                if (Volatile.Read(ref record->Identity) != 0 || Interlocked.CompareExchange(ref record->Identity, identity, 0) != 0) continue;
                Volatile.Write(ref record->ActiveOperations, 0);
                var region = new HeapRegion(path, regionBase, bytes, layout, slot);
                Interlocked.Increment(ref region.Header.ProcessesJoined);
                try
                {
                    if (region.AnyProcessDead()) region.RunMaintenance(leaving: false);
                }
                catch (TimeoutException)
                {
                    // A stopped process keeps the dead from being recovered now; a later maintenance will.
                }
                catch
                {
                    // A corrupt region: the slot goes back, holding nothing yet, and the open fails.
                    Volatile.Write(ref record->Identity, 0);
                    throw;
                }
                return region;
            }
            if (attempt == 0)
            {
                // A throwaway view cannot run maintenance without a slot; look for the dead directly.
                var scan = new HeapRegion(path, regionBase, bytes, layout, slot: -1);
                if (!scan.AnyProcessDead()) break;
                scan.RunMaintenance(leaving: false);
            }
        }
        throw new InvalidOperationException($"all {layout.ProcessSlots} process slots of the shared heap {path} are held by live processes.");
    }

    // ---- addressing (the one place that turns offsets into pointers) ---------------------------------------

    internal ref RegionHeader Header => ref *(RegionHeader*)_base;

    internal ProcessRecord* Record(int slot) =>
        (ProcessRecord*)(_base + Layout.ProcessTableOffset + (ulong)slot * Layout.ProcessRecordBytes);

    private ref TaggedIndexStack CacheStack(int slot, int classIndex) =>
        ref *(TaggedIndexStack*)((byte*)Record(slot) + 64 + classIndex * 64);

    private ref TaggedIndexStack GlobalStack(int classIndex) =>
        ref *(TaggedIndexStack*)(_base + Layout.ClassTableOffset + (ulong)classIndex * 64);

    /// <summary>The receivers (index 0) and senders (index 1) of <paramref name="slot"/> asleep on a channel.</summary>
    private int* WaitCounts(int slot, int channel) =>
        (int*)((byte*)Record(slot) + Layout.WaitCountsInRecord + (ulong)channel * 8);

    private SlabEntry* Slab(uint slab) => (SlabEntry*)(_base + Layout.SlabTableOffset) + slab;

    private uint* OwnerOf(uint unit) => (uint*)(_base + Layout.OwnerTableOffset) + (unit - Layout.SlabAreaUnit);

    internal byte* Address(uint unit) => _base + (ulong)unit * SharedSizeClasses.UnitBytes;

    internal ChannelHeader* Channel(int channel) => (ChannelHeader*)(_base + Layout.ChannelOffsets[channel]);

    private static ChannelCell* Cells(ChannelHeader* channel) => (ChannelCell*)((byte*)channel + ChannelHeader.Bytes);

    /// <summary>The links of block stacks: the first four bytes of each free block. Checks the unit before it
    /// becomes a pointer, so a corrupt stack cannot lead outside the slabs.</summary>
    private readonly struct BlockLinks(byte* regionBase, uint firstUnit, uint endUnit, string path) : IIndexLinks
    {
        public int* LinkOf(uint index)
        {
            if (index < firstUnit || index >= endUnit) throw Corrupt(path, $"a free list leads to unit {index}, outside the slabs");
            return (int*)(regionBase + (ulong)index * SharedSizeClasses.UnitBytes);
        }
    }

    /// <summary>The links of the free-slab stack: <see cref="SlabEntry.FreeLink"/>.</summary>
    private readonly struct SlabLinks(SlabEntry* table, uint count, string path) : IIndexLinks
    {
        public int* LinkOf(uint index)
        {
            if (index >= count) throw Corrupt(path, $"the free-slab list leads to slab {index} of {count}");
            return &table[index].FreeLink;
        }
    }

    private BlockLinks Links => new(_base, Layout.SlabAreaUnit, Layout.SlabAreaUnit + (uint)Layout.TotalSlabUnits, Path);

    private SlabLinks SlabStackLinks => new((SlabEntry*)(_base + Layout.SlabTableOffset), (uint)Layout.SlabCount, Path);

    /// <summary>The class of the block at <paramref name="unit"/>, or -1 when no block of a slab in use starts there.
    /// Reads only the slab table.</summary>
    private int ClassOfBlock(uint unit)
    {
        if (unit < Layout.SlabAreaUnit) return -1;
        ulong relative = unit - Layout.SlabAreaUnit;
        if (relative >= Layout.TotalSlabUnits) return -1;
        uint slab = (uint)(relative / Layout.SlabUnits);
        uint within = (uint)(relative % Layout.SlabUnits);
        uint classPlusOne = Volatile.Read(ref Slab(slab)->ClassPlusOne);
        if (classPlusOne == 0 || classPlusOne > (uint)Layout.ClassCount) return -1;
        int classIndex = (int)classPlusOne - 1;
        uint blockUnits = Layout.BlockUnits[classIndex];
        if (within % blockUnits != 0 || within / blockUnits >= Layout.BlocksPerSlab[classIndex]) return -1;
        return classIndex;
    }

    /// <summary>The unit of a block offset given by a caller, or an <see cref="ArgumentException"/>.</summary>
    internal uint UnitOfOffset(long offset, out int classIndex)
    {
        if (offset <= 0 || (offset & (SharedSizeClasses.UnitBytes - 1)) != 0 || (ulong)offset >= Layout.RegionBytes
            || (classIndex = ClassOfBlock((uint)((ulong)offset >> SharedSizeClasses.UnitShift))) < 0)
            throw new ArgumentException($"offset {offset} is not the start of a block of the shared heap {Path}.", nameof(offset));
        return (uint)((ulong)offset >> SharedSizeClasses.UnitShift);
    }

    /// <summary>The capacity of the block at a caller's offset (see <see cref="UnitOfOffset"/>).</summary>
    public int CapacityAt(long offset)
    {
        Use();
        try
        {
            return CapacityOf(UnitOfOffset(offset, out _));
        }
        finally
        {
            Unuse();
        }
    }

    /// <summary>The first <paramref name="length"/> bytes of the block at a caller's offset: checks that the offset
    /// starts a block and the length fits it, not who holds it.</summary>
    public Span<byte> SpanOf(long offset, int length)
    {
        Use();
        try
        {
            uint unit = UnitOfOffset(offset, out _);
            int capacity = CapacityOf(unit);
            if (length < 0 || length > capacity)
                throw new ArgumentException($"a length of {length} does not fit the block at offset {offset} ({capacity} bytes).", "block");
            return Bytes(offset, length);
        }
        finally
        {
            Unuse();
        }
    }

    /// <summary>The region's bytes from <paramref name="offset"/>, bounds-checked against the mapping.</summary>
    internal Span<byte> Bytes(long offset, int length)
    {
        if (offset < 0 || length < 0 || (ulong)offset + (ulong)length > Layout.RegionBytes)
            throw new ArgumentOutOfRangeException(nameof(offset), $"[{offset}, {offset}+{length}) is outside the shared heap {Path}.");
        return new Span<byte>(_base + offset, length);
    }

    internal static InvalidDataException Corrupt(string path, string what) =>
        new($"the shared heap {path} is corrupt or incompatible: {what}.");

    // ---- operations ----------------------------------------------------------------------------------------

    /// <summary>Counts this thread as using the mapping, or throws <see cref="ObjectDisposedException"/>. Every
    /// public method that reads or writes the region runs between this and <see cref="Unuse"/> (operations through
    /// <see cref="Enter"/> and <see cref="Exit"/>), so that <see cref="Dispose"/> can wait for the threads still
    /// inside before it gives the slot back and unmaps.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Use()
    {
        // Interlocked is a full fence, and Dispose sets _disposed before it reads _users (a Dekker handshake):
        // either Dispose sees this thread and waits for it, or this thread sees _disposed and leaves.
        Interlocked.Increment(ref _users);
        if (Volatile.Read(ref _disposed) == 0) return;
        Interlocked.Decrement(ref _users);
        throw Disposed();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Unuse() => Interlocked.Decrement(ref _users);

    private ObjectDisposedException Disposed() => new(nameof(SharedHeap), $"the shared heap {Path} was disposed here.");

    /// <summary>Marks this process as inside an operation on shared state; waits while maintenance runs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Enter()
    {
        // First as a user of the mapping: the count below is in the mapping, which Dispose may unmap.
        Use();
        while (true)
        {
            // Interlocked is a full fence: either this count is visible to a maintainer that claimed the heap
            // after it, or that claim is visible to the read below (the two sides of a Dekker handshake).
            Interlocked.Increment(ref _record->ActiveOperations);
            if (Volatile.Read(ref Header.MaintenanceOwner) == 0) return;
            Interlocked.Decrement(ref _record->ActiveOperations);
            try
            {
                AwaitMaintenance();
            }
            catch
            {
                Unuse();
                throw;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Exit()
    {
        Interlocked.Decrement(ref _record->ActiveOperations);
        Unuse();
    }

    /// <summary>Leaves the heap: waits for this view's threads still inside a call (waking those asleep on a
    /// channel), frees everything the view still holds or caches (by a maintenance pass that treats this slot as
    /// ended), then gives the slot back and unmaps the region. Later calls throw <see cref="ObjectDisposedException"/>.</summary>
    /// <remarks>Leaving maintenance does not wait for this slot's operations to end (the slot is ended), and
    /// unmapping under a thread that still reads the region would crash the process; hence the wait first.
    /// Never throws: if the leaving maintenance cannot run (the region is corrupt, or a stopped process keeps it
    /// from quiescence), the slot stays held under this process's identity, and the first maintenance after this
    /// process ends recovers it like any dead process's.</remarks>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        // A thread asleep on a channel holds the mapping for up to one sleep slice; wake it to let go sooner. Other
        // processes' sleepers wake too, find nothing new and sleep again.
        for (int channel = 0; channel < Layout.ChannelNames.Length; channel++)
        {
            Futex.Wake(&Channel(channel)->NotEmptyEvents, int.MaxValue);
            Futex.Wake(&Channel(channel)->NotFullEvents, int.MaxValue);
        }
        var spinner = new SpinWait();
        while (Volatile.Read(ref _users) != 0) spinner.SpinOnce(sleep1Threshold: 10);
        try
        {
            if (Slot >= 0) RunMaintenance(leaving: true);
        }
        catch (InvalidDataException)
        {
        }
        catch (TimeoutException)
        {
        }
        finally
        {
            SharedRegionFile.Unmap(_base, _mappedBytes);
        }
    }
}
