namespace SlabAlloc;

/// <summary>Figures for one size class.</summary>
/// <param name="SizeClass">The class index.</param>
/// <param name="BlockBytes">The block size of the class.</param>
/// <param name="Allocations">Blocks of the class handed out since start-up.</param>
/// <param name="Frees">Blocks of the class freed since start-up.</param>
/// <param name="SlabsOwned">Slabs a thread cache allocates from.</param>
/// <param name="SlabsFull">Slabs with every block handed out and no owner.</param>
/// <param name="SlabsPartial">Slabs waiting in the class's partial list.</param>
/// <param name="SlabsEmpty">Slabs waiting in the class's empty list.</param>
public sealed record SizeClassStatistics(
    int SizeClass, int BlockBytes, long Allocations, long Frees,
    int SlabsOwned, int SlabsFull, int SlabsPartial, int SlabsEmpty)
{
    /// <summary>Blocks of the class handed out and not yet freed.</summary>
    public long BlocksInUse => Allocations - Frees;
}
