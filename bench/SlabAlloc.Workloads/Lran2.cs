namespace SlabAlloc.Workloads;

/// <summary>
/// The small portable generator Larson uses (Gloger's lran2: a linear congruential generator with
/// the Numerical Recipes constants IA = 1366, IC = 150889, M = 714025, shuffled through a 97-entry
/// table), so that our Larson draws the same kind of size and victim sequence as the C original.
/// </summary>
internal struct Lran2
{
    private const long M = 714025, IA = 1366, IC = 150889;
    private readonly long[] _table;
    private long _x, _y;

    public Lran2(long seed)
    {
        _table = new long[97];
        long x = Math.Abs((IC - seed) % M);
        for (int j = 0; j < _table.Length; j++)
        {
            x = (IA * x + IC) % M;
            _table[j] = x;
        }
        _x = (IA * x + IC) % M;
        _y = _x;
    }

    public long Next()
    {
        int j = (int)(_y % 97);
        _y = _table[j];
        _x = (IA * _x + IC) % M;
        _table[j] = _x;
        return _y;
    }
}
