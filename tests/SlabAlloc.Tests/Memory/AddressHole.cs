using SlabAlloc.Platform;

namespace SlabAlloc.Tests.Memory;

/// <summary>
/// An aligned range of address space that nothing else in the process can map while the hole exists:
/// reserved with no access and no memory behind it. Tests that write registry values for made-up
/// addresses use one, so that they can never overwrite or clear the entry of a real superslab or
/// large block (the mmap area of a process lies wherever address-space randomization put it).
/// </summary>
internal sealed unsafe class AddressHole : IDisposable
{
    private readonly void* _mapping;
    private readonly nuint _mappingBytes;

    /// <summary>The aligned start of the hole.</summary>
    public nuint Base { get; }

    public AddressHole(nuint bytes, nuint alignment)
    {
        _mappingBytes = bytes + alignment;
        const int ProtNone = 0;
        _mapping = LibC.Mmap(null, _mappingBytes, ProtNone, LibC.MapPrivate | LibC.MapAnonymous | LibC.MapNoReserve, -1, 0);
        if (_mapping == LibC.MapFailed) throw new InvalidOperationException($"could not reserve {_mappingBytes} bytes of address space");
        Base = ((nuint)_mapping + alignment - 1) & ~(alignment - 1);
    }

    public void Dispose() => LibC.Munmap(_mapping, _mappingBytes);
}
