using System.Reflection;
using System.Runtime.InteropServices;

namespace SlabAlloc.Tests.Api;

/// <summary>
/// <see cref="SlabMemory"/> has every public member of <see cref="NativeMemory"/>, with the same
/// signature, so that code switches by replacing the class name; and the memory operations among
/// them (<c>Clear</c>, <c>Copy</c>, <c>Fill</c>) do what <see cref="NativeMemory"/>'s do.
/// </summary>
public sealed unsafe class NativeMemorySurfaceTests
{
    private static string Signature(MethodInfo m) =>
        $"{m.ReturnType} {m.Name}({string.Join(", ", m.GetParameters().Select(p => p.ParameterType + " " + p.Name))})";

    private static HashSet<string> PublicStatics(Type t) =>
        t.GetMethods(BindingFlags.Public | BindingFlags.Static).Select(Signature).ToHashSet();

    [Fact]
    public void Every_public_member_of_NativeMemory_has_a_counterpart_with_the_same_signature()
    {
        var native = PublicStatics(typeof(NativeMemory));
        var slab = PublicStatics(typeof(SlabMemory));
        // NativeMemory has no properties, fields or events; if it gains one, this test must learn it.
        Assert.DoesNotContain(typeof(NativeMemory).GetMembers(BindingFlags.Public | BindingFlags.Static),
            m => m.MemberType != MemberTypes.Method);
        Assert.True(native.Count >= 12, $"NativeMemory has {native.Count} public methods");
        var missing = native.Except(slab).OrderBy(s => s).ToList();
        Assert.True(missing.Count == 0, "SlabMemory lacks: " + string.Join("; ", missing));
    }

    /// <summary>Each operation on the same random contents, once through NativeMemory and once through
    /// SlabMemory, on SlabAlloc blocks of a small and a large size: the results are identical.</summary>
    [Theory]
    [InlineData(1000, 1)]
    [InlineData(200_000, 2)]
    public void Clear_Copy_and_Fill_do_what_NativeMemory_does(int size, int seed)
    {
        var random = new Random(seed);
        var contents = new byte[size];
        random.NextBytes(contents);
        byte* a = (byte*)SlabMemory.Alloc((nuint)size);
        byte* b = (byte*)SlabMemory.Alloc((nuint)size);
        try
        {
            foreach (int step in Enumerable.Range(0, 64))
            {
                contents.CopyTo(new Span<byte>(a, size));
                contents.CopyTo(new Span<byte>(b, size));
                int from = random.Next(size), to = random.Next(size);
                int count = random.Next(size - Math.Max(from, to) + 1);
                byte value = (byte)random.Next(256);
                switch (step % 3)
                {
                    case 0:
                        NativeMemory.Clear(a + from, (nuint)count);
                        SlabMemory.Clear(b + from, (nuint)count);
                        break;
                    case 1: // overlapping ranges whenever |from - to| < count
                        NativeMemory.Copy(a + from, a + to, (nuint)count);
                        SlabMemory.Copy(b + from, b + to, (nuint)count);
                        break;
                    default:
                        NativeMemory.Fill(a + from, (nuint)count, value);
                        SlabMemory.Fill(b + from, (nuint)count, value);
                        break;
                }
                Assert.True(new Span<byte>(a, size).SequenceEqual(new Span<byte>(b, size)), $"step {step}");
            }
        }
        finally
        {
            SlabMemory.Free(a);
            SlabMemory.Free(b);
        }
    }
}
