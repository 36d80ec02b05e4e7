using System.Runtime.CompilerServices;

namespace SlabAlloc.Workloads;

/// <summary>
/// The inner loop of Hoard's cache benchmarks (cache-scratch, cache-thrash): write every byte of an
/// object, read it back, and do that a number of times over. If another thread's object shares a
/// cache line with this one, each write takes the line away from the other core: false sharing.
/// </summary>
/// <remarks>The write and the read are volatile so that the JIT keeps every one of them: the original
/// reads each byte into a volatile local for the same reason. The original writes byte k with k; here
/// with k plus a salt of the thread's, so that the sum of the bytes read back, which the workload
/// checks, differs from what the thread wrote when another thread wrote into the same object meanwhile.</remarks>
internal static unsafe class CacheLineWrites
{
    /// <summary>Writes byte k of the <paramref name="size"/> bytes at <paramref name="p"/> with k + <paramref name="salt"/>
    /// and reads it back, <paramref name="repetitions"/> times over; returns the sum of the bytes read.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long Repeat(byte* p, int size, int repetitions, byte salt)
    {
        long sum = 0;
        for (int j = 0; j < repetitions; j++)
            for (int k = 0; k < size; k++)
            {
                Volatile.Write(ref p[k], (byte)(k + salt));
                sum += Volatile.Read(ref p[k]);
            }
        return sum;
    }

    /// <summary>What <see cref="Repeat"/> returns when nothing else wrote to the object.</summary>
    public static long ExpectedSum(int size, int repetitions, byte salt)
    {
        long once = 0;
        for (int k = 0; k < size; k++) once += (byte)(k + salt);
        return once * repetitions;
    }
}
