using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using CsCheck;
using SlabAlloc.Memory;
using SlabAlloc.Pool;
using SlabAlloc.Tests.Pool;

namespace SlabAlloc.Tests.Model;

/// <summary>
/// Linearizability checks with CsCheck's <c>SampleParallel</c>: a random sequential prefix of
/// operations, then 2..N operations run in parallel on 2 or 3 threads; the outcome must equal the
/// outcome of the sequential model run in at least one order that keeps each thread's own order.
/// Each operation records what it observed (the slab it got, the index it popped), and the model, run
/// in that order, rejects the order if an observation is impossible there.
/// </summary>
/// <remarks>
/// <para>The shared slab pool is the process's own <see cref="SlabPool.Shared"/> (lock-free, or the
/// mutex baseline under <c>SLABALLOC_POOL=mutex</c>), driven with fake owners as
/// <c>SlabPoolContractTests</c> does. It is global state, so each sample starts with every slab of the
/// previous samples released and ends by releasing its own.</para>
/// <para>Fixed seeds (see <see cref="FixedSeeds"/>); each seeded sample is replayed a few times, as
/// the interleavings differ from run to run.</para>
/// </remarks>
[Collection("SlabAlloc global state")]
public sealed unsafe class PoolLinearizabilityTests
{
    private const int PoolSamples = 120, StackSamples = 120, Replays = 2, Threads = 3;

    // ---------------------------------------------------------------- the shared slab pool

    [Fact]
    public void SharedPoolAcquireReleaseAndPublishAreLinearizable()
    {
        Gen<(PoolActual, PoolModel)> initial = Gen.Const(() => (new PoolActual(), new PoolModel()));
        Gen<int> owner = Gen.Int[0, PoolActual.Owners - 1];
        GenOperation<PoolActual, PoolModel>[] operations =
        [
            owner.Select(Gen.OneOf(PoolActual.Classes), (o, c) => new AcquireOp(o, c))
                .Operation<PoolActual, PoolModel>(op => op.ToString(), (a, op) => a.Acquire(op), (m, op) => m.Acquire(op)),
            owner.Select(Gen.OneOf(PoolActual.Classes), (o, c) => new AcquireOp(o, c))
                .Operation<PoolActual, PoolModel>(op => op.ToString(), (a, op) => a.Acquire(op), (m, op) => m.Acquire(op)),
            owner.Select(o => new GiveUpOp(o, publish: false))
                .Operation<PoolActual, PoolModel>(op => op.ToString(), (a, op) => a.GiveUp(op), (m, op) => m.GiveUp(op)),
            owner.Select(o => new GiveUpOp(o, publish: true))
                .Operation<PoolActual, PoolModel>(op => op.ToString(), (a, op) => a.GiveUp(op), (m, op) => m.GiveUp(op)),
            Gen.Operation<PoolActual, PoolModel>("Trim()", a => a.Trim(), m => { }),
        ];
        try
        {
            FixedSeeds.Run(nameof(SharedPoolAcquireReleaseAndPublishAreLinearizable), PoolSamples, (seed, iter) =>
                initial.SampleParallel(operations,
                    equal: (a, m) => a.Finish().Matches(m),
                    seed: seed, iter: iter, threads: Threads, replay: Replays,
                    maxSequentialOperations: 8, maxParallelOperations: 6,
                    printActual: a => a.Finish().ToString(), printModel: m => m.ToString()));
        }
        finally
        {
            PoolActual.FinishAll();
        }

        // Every slab the samples acquired went back to the pool: none still names a fake owner.
        var held = PoolActual.SlabsStillOwnedByFakeOwners();
        Assert.True(held.Count == 0, $"slabs still owned by the test's fake owners: {string.Join(", ", held.Select(s => $"0x{s:x}"))}");
    }

    /// <summary>Acquire(class) for an owner; <see cref="Observed"/> is filled by the run.</summary>
    internal sealed class AcquireOp(int owner, int sizeClass)
    {
        public readonly int Owner = owner, Class = sizeClass;
        public nint Observed;
        public string? Problem;
        public override string ToString() => $"Acquire(owner {Owner}, class {Class})";
    }

    /// <summary>The owner gives up the slab it acquired last: released empty, or (Publish) let go with
    /// one block out, that block freed remotely, and published to the partial list.</summary>
    internal sealed class GiveUpOp(int owner, bool publish)
    {
        public readonly int Owner = owner;
        public readonly bool Publish = publish;
        public nint Observed; // the slab given up, 0 if the owner held none
        public string? Problem;
        public override string ToString() => Publish ? $"PublishPartial(owner {Owner})" : $"ReleaseEmpty(owner {Owner})";
    }

    /// <summary>The pool with three fake owners, each holding a LIFO stack of the slabs it acquired.</summary>
    internal sealed class PoolActual
    {
        public const int Owners = 3;
        /// <summary>Blocks of 96 B, 544 B and 3.5 KiB (one-slot slabs) and 24 KiB (an 8-slot span).</summary>
        public static readonly int[] Classes = [5, 16, 25, 37]; // 96 B, 640 B, 3 KiB (one-slot slabs), 24 KiB (eight-slot)

        private static readonly object s_registryGate = new(); // Monitor: re-entered when Start finishes an earlier sample
        private static readonly List<PoolActual> s_unfinished = [];

        private readonly Lock _gate = new();
        private readonly List<nint>[] _held = [[], [], []];
        private readonly ConcurrentDictionary<nint, int> _holders = new();
        private bool _started;
        private Snapshot? _final;

        public static void* FakeOwner(int owner) => (void*)(0x5A10_0000 + owner * 0x100);

        /// <summary>Before the first operation of a sample: whatever an earlier sample could not release
        /// (it threw before its end) is released now, so every sample starts with no slab held.</summary>
        private void Start()
        {
            if (Volatile.Read(ref _started)) return;
            lock (s_registryGate)
            {
                if (_started) return;
                foreach (var earlier in s_unfinished.ToArray()) earlier.Finish();
                s_unfinished.Add(this);
                Volatile.Write(ref _started, true);
            }
        }

        public static void FinishAll()
        {
            lock (s_registryGate)
                foreach (var a in s_unfinished.ToArray()) a.Finish();
        }

        public void Acquire(AcquireOp op)
        {
            Start();
            op.Problem = null; // a replay runs the same operation objects again
            void* owner = FakeOwner(op.Owner);
            SlabMeta* s = SlabPool.Shared.Acquire(op.Class, owner);
            op.Observed = (nint)s;
            if (s == null) { op.Problem = "Acquire returned null"; return; }
            if (s->ClassIndex != op.Class) op.Problem = $"got slab 0x{(nint)s:x} of class {s->ClassIndex}";
            else if (s->Owner != owner) op.Problem = $"slab 0x{(nint)s:x} has owner 0x{(nint)s->Owner:x}";
            else if (s->Lifecycle != SlabLifecycle.Owned) op.Problem = $"slab 0x{(nint)s:x} is {s->Lifecycle}, not Owned";
            else if (s->Free == null && !SlabMeta.HasFresh(s)) op.Problem = $"slab 0x{(nint)s:x} has no free block";
            else op.Problem = CheckLists(s);
            if (!_holders.TryAdd((nint)s, op.Owner))
            {
                string other = _holders.TryGetValue((nint)s, out int holder) ? $"owner {holder}" : "another owner";
                op.Problem = $"slab 0x{(nint)s:x} handed to owner {op.Owner} while {other} holds it";
                return; // do not record it twice: the model rejects every order anyway
            }
            lock (_gate) _held[op.Owner].Add((nint)s);
        }

        /// <summary>The slab's own invariant once its remote frees are collected (adoption does that):
        /// <c>Carved == Used + |Free| + |SetAside|</c>, every link readable (hardened mode checks each).</summary>
        private static string? CheckLists(SlabMeta* s)
        {
            try
            {
                int free = Count(s, s->Free), local = Count(s, s->SetAside);
                if (free < 0 || local < 0) return $"slab 0x{(nint)s:x} has a free list longer than the slab";
                if (s->Carved > s->Capacity || s->Carved != s->Used + free + local)
                    return $"slab 0x{(nint)s:x}: Carved {s->Carved} (of {s->Capacity}) != Used {s->Used} + Free {free} + SetAside {local}";
                return null;
            }
            catch (Exception e) { return $"slab 0x{(nint)s:x}: {e.GetType().Name} walking its free lists: {e.Message}"; }
        }

        private static int Count(SlabMeta* s, void* head)
        {
            int n = 0;
            for (void* p = head; p != null; p = SlabMeta.NextOf(s, p))
                if (++n > s->Capacity) return -1;
            return n;
        }

        public void GiveUp(GiveUpOp op)
        {
            Start();
            op.Problem = null; // a replay runs the same operation objects again
            nint slab;
            lock (_gate)
            {
                List<nint> mine = _held[op.Owner];
                if (mine.Count == 0) { op.Observed = 0; return; }
                slab = mine[^1];
                mine.RemoveAt(mine.Count - 1);
            }
            op.Observed = slab;
            if (!_holders.TryRemove(slab, out int holder) || holder != op.Owner)
                op.Problem = $"slab 0x{slab:x} given up by owner {op.Owner} was not held by it";
            var s = (SlabMeta*)slab;
            if (op.Publish) op.Problem ??= PublishWithABlockOut(s);
            else GiveBack(s);
        }

        public void Trim()
        {
            Start();
            Exception? corruption = SlabPool.Shared.Trim();
            if (corruption != null) throw corruption; // the model's slabs are never corrupt
        }

        /// <summary>Lets a slab go the way a thread cache does: empty ones to the pool's empty list,
        /// ones with blocks out (a slab someone else published) back to the partial list.</summary>
        private static void GiveBack(SlabMeta* s)
        {
            switch (SlabMeta.LetGo(s))
            {
                case SlabMeta.LetGoResult.Empty: SlabPool.Shared.ReleaseEmpty(s); break;
                case SlabMeta.LetGoResult.Queued: SlabPool.Shared.PublishPartial(s); break;
                case SlabMeta.LetGoResult.Detached: break; // in no list until a remote free publishes it
            }
        }

        /// <summary>Takes a block, lets the slab go with it out (Queued: it has free blocks), frees the
        /// block remotely (a push onto ThreadFree, which does not publish a queued slab) and publishes
        /// the slab to the partial list. Whoever adopts it next collects that block.</summary>
        private static string? PublishWithABlockOut(SlabMeta* s)
        {
            if (s->Free == null && !SlabMeta.HasFresh(s)) { GiveBack(s); return null; }
            void* block = s->Free;
            if (block != null) s->Free = SlabMeta.NextOf(s, block);
            else block = SlabMeta.TakeFresh(s);
            s->Used++;
            SlabMeta.LetGoResult letGo = SlabMeta.LetGo(s);
            bool firstFreeOfAFullSlab = SlabMeta.PushRemote(s, block) == SlabMeta.PushOutcome.FirstOfDetached;
            switch (letGo)
            {
                case SlabMeta.LetGoResult.Queued:
                    SlabPool.Shared.PublishPartial(s);
                    return firstFreeOfAFullSlab ? $"a remote free into queued slab 0x{(nint)s:x} asked to publish it again" : null;
                case SlabMeta.LetGoResult.Detached:
                    if (!firstFreeOfAFullSlab) return $"the first remote free into detached slab 0x{(nint)s:x} did not publish it";
                    SlabPool.Shared.PublishPartial(s);
                    return null;
                default:
                    return $"slab 0x{(nint)s:x} with a block out was let go as {letGo}";
            }
        }

        /// <summary>The end of a sample (idempotent; called by every order the model tries, in parallel):
        /// records what each owner holds, then releases it all.</summary>
        public Snapshot Finish()
        {
            lock (_gate)
            {
                if (_final != null) return _final;
                var held = new List<(nint Slab, int Class, string? Problem)>[Owners];
                for (int o = 0; o < Owners; o++)
                {
                    held[o] = [];
                    foreach (nint slab in _held[o])
                    {
                        var s = (SlabMeta*)slab;
                        string? problem = s->Owner != FakeOwner(o) ? $"owner field 0x{(nint)s->Owner:x}"
                            : s->Lifecycle != SlabLifecycle.Owned ? $"lifecycle {s->Lifecycle}" : null;
                        held[o].Add((slab, s->ClassIndex, problem));
                    }
                }
                for (int o = 0; o < Owners; o++)
                {
                    foreach (nint slab in _held[o])
                    {
                        _holders.TryRemove(slab, out _);
                        GiveBack((SlabMeta*)slab);
                    }
                    _held[o].Clear();
                }
                _final = new Snapshot(held);
            }
            lock (s_registryGate) s_unfinished.Remove(this);
            return _final;
        }

        public static List<nint> SlabsStillOwnedByFakeOwners()
        {
            var found = new List<nint>();
            int count = SuperslabDirectory.Count;
            for (uint i = 0; i < count; i++)
            {
                SuperslabEntry* e = SuperslabDirectory.Entry(i);
                if (Volatile.Read(ref e->Live) == 0) continue;
                for (int slot = 1; slot < Geometry.SlotsPerSuperslab; slot++)
                {
                    SlabMeta* s = SuperslabEntry.Slab(e, slot);
                    if (s->Lifecycle != SlabLifecycle.Owned) continue;
                    for (int o = 0; o < Owners; o++)
                        if (s->Owner == FakeOwner(o)) found.Add((nint)s);
                }
            }
            return found;
        }

        public override string ToString() => _final?.ToString() ?? "(running)";
    }

    /// <summary>What the owners held at the end of a sample.</summary>
    internal sealed class Snapshot(List<(nint Slab, int Class, string? Problem)>[] held)
    {
        public bool Matches(PoolModel model)
        {
            for (int o = 0; o < PoolActual.Owners; o++)
            {
                var mine = held[o];
                var expected = model.Held[o];
                if (mine.Count != expected.Count) return false;
                for (int i = 0; i < mine.Count; i++)
                    if (mine[i].Slab != expected[i].Slab || mine[i].Class != expected[i].Class || mine[i].Problem != null) return false;
            }
            return true;
        }

        public override string ToString() => string.Join("; ", held.Select((h, o) =>
            $"owner {o}: [{string.Join(", ", h.Select(x => $"0x{x.Slab:x} c{x.Class}{(x.Problem == null ? "" : " " + x.Problem)}"))}]"));
    }

    /// <summary>
    /// The sequential specification: each owner holds a stack of (slab, class). Acquire must give the
    /// owner a slab of the class that no owner holds at that point of the order; giving up takes the
    /// owner's last slab (or nothing when it holds none). Which free slab the pool picks is its own
    /// business, so the model takes the slab the run observed and checks it is allowed.
    /// </summary>
    internal sealed class PoolModel
    {
        public readonly List<(nint Slab, int Class)>[] Held = [[], [], []];

        public void Acquire(AcquireOp op)
        {
            if (op.Problem != null) throw new InvalidOperationException($"{op}: {op.Problem}");
            for (int o = 0; o < PoolActual.Owners; o++)
                if (Held[o].Exists(h => h.Slab == op.Observed))
                    throw new InvalidOperationException($"{op} got slab 0x{op.Observed:x}, held by owner {o} at this point");
            Held[op.Owner].Add((op.Observed, op.Class));
        }

        public void GiveUp(GiveUpOp op)
        {
            if (op.Problem != null) throw new InvalidOperationException($"{op}: {op.Problem}");
            var mine = Held[op.Owner];
            if (mine.Count == 0)
            {
                if (op.Observed != 0) throw new InvalidOperationException($"{op} gave up 0x{op.Observed:x} but holds nothing here");
                return;
            }
            if (mine[^1].Slab != op.Observed) throw new InvalidOperationException($"{op} gave up 0x{op.Observed:x}, not its last slab 0x{mine[^1].Slab:x}");
            mine.RemoveAt(mine.Count - 1);
        }

        public override string ToString() => string.Join("; ", Held.Select((h, o) =>
            $"owner {o}: [{string.Join(", ", h.Select(x => $"0x{x.Slab:x} c{x.Class}"))}]"));
    }

    // ---------------------------------------------------------------- TaggedIndexStack

    [Fact]
    public void TaggedIndexStackPushAndPopAreLinearizable()
    {
        Gen<(StackActual, StackModel)> initial = Gen.Const(() => (new StackActual(), new StackModel()));
        GenOperation<StackActual, StackModel>[] operations =
        [
            Gen.Const(() => new StackOp(push: true))
                .Operation<StackActual, StackModel>(op => op.ToString(), (a, op) => a.Push(op), (m, op) => m.Push(op)),
            Gen.Const(() => new StackOp(push: false))
                .Operation<StackActual, StackModel>(op => op.ToString(), (a, op) => a.Pop(op), (m, op) => m.Pop(op)),
        ];
        FixedSeeds.Run(nameof(TaggedIndexStackPushAndPopAreLinearizable), StackSamples, (seed, iter) =>
            initial.SampleParallel(operations,
                equal: (a, m) => a.Finish().Matches(m),
                seed: seed, iter: iter, threads: Threads, replay: Replays,
                maxSequentialOperations: 8, maxParallelOperations: 6,
                printActual: a => a.Finish().ToString(), printModel: m => $"[{string.Join(", ", m.Stack)}] (top first)"));
    }

    /// <summary>A push (of whichever index the run found spare) or a pop; <see cref="Index"/> is what the run saw, -1 for none.</summary>
    internal sealed class StackOp(bool push)
    {
        public readonly bool IsPush = push;
        public int Index = -1;
        public override string ToString() => IsPush ? "Push" : "TryPop";
    }

    /// <summary>A fresh stack per sample over <see cref="Indices"/> link cells that outlive every test
    /// (as the directory's do); indices not on the stack wait in a spare list and are reused LIFO, so
    /// pop-pop-push of the same index (the ABA pattern) is common.</summary>
    internal sealed class StackActual
    {
        public const int Indices = 5;
        private static readonly int* s_cells = (int*)NativeMemory.AllocZeroed(Indices, sizeof(int));

        private struct Links : IIndexLinks
        {
            public readonly int* LinkOf(uint index) => s_cells + index;
        }

        private readonly TaggedIndexStack[] _stack = new TaggedIndexStack[1];
        private readonly Lock _gate = new();
        private readonly Stack<uint> _spare = new(Enumerable.Range(0, Indices).Select(i => (uint)(Indices - 1 - i)));
        private StackSnapshot? _final;

        public void Push(StackOp op)
        {
            uint index;
            lock (_gate)
            {
                if (!_spare.TryPop(out index)) { op.Index = -1; return; }
            }
            op.Index = (int)index;
            _stack[0].Push(index, default(Links));
        }

        public void Pop(StackOp op)
        {
            if (!_stack[0].TryPop(out uint index, default(Links))) { op.Index = -1; return; }
            op.Index = (int)index;
            lock (_gate) _spare.Push(index);
        }

        /// <summary>Drains the stack once (top first) and checks that every index is in exactly one
        /// place: on the stack or spare. Never throws (CsCheck prints the actual state with it).</summary>
        public StackSnapshot Finish()
        {
            lock (_gate)
            {
                if (_final != null) return _final;
                var drained = new List<uint>();
                string? problem = null;
                while (_stack[0].TryPop(out uint index, default(Links)))
                {
                    drained.Add(index);
                    if (drained.Count > Indices) { problem = $"the stack holds more than {Indices} entries"; break; }
                }
                var all = drained.Concat(_spare).OrderBy(i => i).ToList();
                if (problem == null && !all.SequenceEqual(Enumerable.Range(0, Indices).Select(i => (uint)i)))
                    problem = $"indices lost or duplicated (spare [{string.Join(", ", _spare)}])";
                return _final = new StackSnapshot(drained, problem);
            }
        }
    }

    /// <summary>The stack's contents at the end of a sample, top first, and what was wrong, if anything.</summary>
    internal sealed record StackSnapshot(List<uint> Stack, string? Problem)
    {
        public bool Matches(StackModel model) => Problem == null && Stack.SequenceEqual(model.Stack);
        public override string ToString() => $"[{string.Join(", ", Stack)}] (top first){(Problem == null ? "" : ": " + Problem)}";
    }

    /// <summary>A sequential stack: a push must push an index not on it; a pop must return the top, or nothing when empty.</summary>
    internal sealed class StackModel
    {
        public readonly List<uint> Stack = []; // top first

        public void Push(StackOp op)
        {
            if (op.Index < 0) return; // no spare index at that moment: every index was on the stack or in flight
            if (Stack.Contains((uint)op.Index)) throw new InvalidOperationException($"pushed {op.Index}, already on the stack here");
            Stack.Insert(0, (uint)op.Index);
        }

        public void Pop(StackOp op)
        {
            if (Stack.Count == 0)
            {
                if (op.Index >= 0) throw new InvalidOperationException($"popped {op.Index} from an empty stack");
                return;
            }
            if (op.Index != Stack[0]) throw new InvalidOperationException($"popped {op.Index}, the top here is {Stack[0]}");
            Stack.RemoveAt(0);
        }
    }
}
