namespace SlabAlloc.Workloads;

/// <summary>
/// glibc's <c>rand()</c>: the additive feedback generator of <c>random()</c> in its default form
/// (TYPE_3: 31 words of state, the front word advanced by adding the rear word three places behind it
/// modulo 2^32, each output the new front word shifted right by one bit), seeded through the minimal
/// standard generator (16807 × x modulo 2^31 - 1) and stepped 310 times before the first output, as
/// <c>srandom</c> does. With seed 1, the seed of a program that never calls <c>srand</c>, it gives the
/// C library's sequence, so a port draws what the original drew.
/// </summary>
/// <remarks>Invariant: the front index is always the rear index plus three, modulo 31.</remarks>
internal struct GlibcRandom
{
    /// <summary>The largest value <see cref="Next"/> returns (glibc's <c>RAND_MAX</c>).</summary>
    public const int RandMax = int.MaxValue;

    private const int Degree = 31, Separation = 3, Discarded = 10 * Degree;
    private readonly int[] _state;
    private int _front, _rear;

    public GlibcRandom(int seed)
    {
        _state = new int[Degree];
        _state[0] = seed == 0 ? 1 : seed;
        for (int i = 1; i < Degree; i++)
        {
            long word = 16807L * _state[i - 1] % int.MaxValue;
            _state[i] = (int)(word < 0 ? word + int.MaxValue : word);
        }
        _front = Separation;
        _rear = 0;
        for (int i = 0; i < Discarded; i++) Next();
    }

    /// <summary>The next value, in [0, <see cref="RandMax"/>].</summary>
    public int Next()
    {
        uint value = unchecked((uint)_state[_front] + (uint)_state[_rear]);
        _state[_front] = (int)value;
        _front = _front + 1 == Degree ? 0 : _front + 1;
        _rear = _rear + 1 == Degree ? 0 : _rear + 1;
        return (int)(value >> 1);
    }
}
