using SlabAlloc.Memory;
using SlabAlloc.Platform;
using SlabAlloc.Runtime;
using SlabAlloc.Support;

namespace SlabAlloc.Frontend;

/// <summary>
/// Every <see cref="ThreadCache"/> ever made, which thread each belongs to, and the hand-back of a
/// dead thread's slabs.
/// </summary>
/// <remarks>
/// <para>.NET has no thread-exit callback, so the records are scanned for threads that are no longer
/// alive: every time a thread attaches, at every tick of the periodic upkeep (<c>Upkeep</c>) and
/// on <c>Trim</c>. There is deliberately no finalizable object per thread: each one a dead thread leaves
/// behind grows the garbage collector's gen0 budget, and with it the process's resident memory
/// (docs/design-measurements.md, "No finalizable object per thread"); the scans alone bound memory under thread churn whether or not a
/// collection ever runs.</para>
/// <para>A record's <see cref="ThreadCacheRecord.StateWord"/> is <c>generation &lt;&lt; 2 | state</c>
/// (Free, Live, Reclaiming, Abandoned: a reclaim that found corruption). A record is taken by CAS
/// (Free → Live, Live → Reclaiming), and only the winner writes what follows (Reclaiming → Free or
/// Abandoned). Several scans may find the same dead thread; the one that wins the CAS Live→Reclaiming for
/// the generation it saw reclaims the heap, so a heap is reclaimed once, and a scan that read the record
/// before a new thread took it cannot touch that thread's heap. Records are never removed, only reused:
/// their number is the peak number of threads alive at once.</para>
/// <para>Attaching allocates one managed object, the record, only when no free record can be reused;
/// reclaiming allocates nothing, so an out-of-memory cannot stop a reclaim half-way.</para>
/// </remarks>
internal static unsafe class ThreadCacheRecords
{
    private const long StateFree = 0, StateLive = 1, StateReclaiming = 2, StateAbandoned = 3, StateMask = 3;

    private static ThreadCacheRecord? s_head;
    private static int s_recordCount;
    private static long s_reclaimed;

    /// <summary>Records made since start-up (the peak number of thread caches).</summary>
    public static int RecordCount => Volatile.Read(ref s_recordCount);

    /// <summary>Thread caches handed back after their thread died.</summary>
    public static long Reclaimed => Volatile.Read(ref s_reclaimed);

    /// <summary>All records, newest first.</summary>
    public static ThreadCacheRecord? Head => Volatile.Read(ref s_head);

    /// <summary>Finds or makes a heap for the calling thread. Null when out of memory (native or managed).</summary>
    public static ThreadCacheRecord? Attach(Thread thread, ThreadCache* emptyTemplate)
    {
        _ = ReclaimDead(); // a dead cache found corrupt is logged and abandoned; this thread attaches anyway
        for (ThreadCacheRecord? r = Head; r != null; r = r.Next)
        {
            long word = Volatile.Read(ref r.StateWord);
            if ((word & StateMask) != StateFree) continue;
            // Its last thread has not finished exiting (its exit latch is still armed): the new thread
            // could not register that heap in the stack map, so take another.
            if (ThreadStacks.IsArmed(&r.Heap->Latch)) continue;
            long live = ((word >> 2) + 1) << 2 | StateLive;
            // Loses to another attaching thread taking the same record; look further. No ABA: every take
            // bumps the generation in the word, so a word read before a take-and-free cycle never matches.
            if (Interlocked.CompareExchange(ref r.StateWord, live, word) != word) continue;
            Invariant.Holds(r.Heap->StackBytes == 0, "a free record's cache is in no stack map");
            Invariant.Holds(ThreadCache.FreeCachesEmpty(r.Heap), "a free record's free caches are empty");
            r.Thread = thread;
            return r;
        }

        nuint heapBytes = OsMemory.RoundUpToPages((nuint)sizeof(ThreadCache));
        var heap = (ThreadCache*)OsMemory.Reserve(heapBytes, OsMemory.PageBytes);
        if (heap == null) return null;
        *heap = *emptyTemplate;
        ThreadCacheRecord record;
        try
        {
            record = new ThreadCacheRecord(heap) { Thread = thread, StateWord = (1L << 2) | StateLive };
        }
        catch (OutOfMemoryException)
        {
            OsMemory.Release(heap, heapBytes); // nothing else was taken yet
            return null;
        }
        while (true)
        {
            ThreadCacheRecord? head = Volatile.Read(ref s_head);
            record.Next = head;
            // Loses only to another record being added; the list is append-only.
            if (Interlocked.CompareExchange(ref s_head, record, head) == head) break;
        }
        Interlocked.Increment(ref s_recordCount);
        return record;
    }

    /// <summary>Reclaims the heaps of every thread that has ended. A heap whose reclaim fails (corruption
    /// in it, already logged) is abandoned and the others are still reclaimed; the first failure is
    /// returned, for a caller that reports it (<c>Trim</c>), not thrown: a thread's allocation must not
    /// fail because another, dead thread's cache is corrupt.</summary>
    public static Exception? ReclaimDead()
    {
        Exception? first = null;
        for (ThreadCacheRecord? r = Head; r != null; r = r.Next)
        {
            long word = Volatile.Read(ref r.StateWord);
            if ((word & StateMask) != StateLive || r.Thread is not { IsAlive: false }) continue;
            try
            {
                TryReclaim(r, word >> 2);
            }
            catch (Exception e)
            {
                first ??= e;
            }
        }
        return first;
    }

    /// <summary>Pushes the remote batches of every other live thread, so that blocks a thread holds back while it
    /// waits reach their slabs now (<c>Trim</c>). The first failure (a batch corrupted by a double free,
    /// already logged) is returned after every batch was tried.</summary>
    /// <remarks>Claims the batches of every thread that holds some (one claim covers all of a thread's classes), then
    /// runs one process-wide barrier (the other half of the owners' handshake, <c>SmallBlocks.EnterRemoteBatch</c>),
    /// then waits for each owner to be out of its batches, pushes them and releases the claim. Allocates nothing
    /// until every claim is released; spins and yields, never sleeps.</remarks>
    public static Exception? PushOtherThreadsRemoteBatches()
    {
        if (SlabOptions.RemoteBatch == 0) return null;
        int self = Environment.CurrentManagedThreadId;
        bool claimedAny = false;
        for (ThreadCacheRecord? r = Head; r != null; r = r.Next)
        {
            if (!IsLive(r) || r.Thread == Thread.CurrentThread || Volatile.Read(ref r.Heap->RemoteBatchClasses) == 0) continue;
            claimedAny |= SmallBlocks.TryClaimRemoteBatch(r.Heap);
        }
        if (!claimedAny) return null;
        Interlocked.MemoryBarrierProcessWide();
        Exception? first = null;
        // Damage found in a batch is reported only once every claim of this pass is released: a logger that waits
        // for another thread (one that reclaims a dead owner waits for its batch's claim) must find none held.
        const int DamageReportsKept = 16;
        nint* damagedBlocks = stackalloc nint[DamageReportsKept];
        SmallBlocks.BatchDamage* damages = stackalloc SmallBlocks.BatchDamage[DamageReportsKept];
        int* moreDamagedCounts = stackalloc int[DamageReportsKept];
        int damagedCaches = 0, unreported = 0;
        for (ThreadCacheRecord? r = Head; r != null; r = r.Next)
        {
            ThreadCache* h = r.Heap;
            if (Volatile.Read(ref h->RemoteBatchClaimedBy) != self) continue;
            try
            {
                SmallBlocks.AwaitOwnerOutOfRemoteBatch(h);
                SmallBlocks.BatchDamage damage = SmallBlocks.TryPushRemoteBatches(h, out void* damaged, out int moreDamaged);
                if (damage != SmallBlocks.BatchDamage.None)
                {
                    if (damagedCaches < DamageReportsKept)
                    {
                        damages[damagedCaches] = damage;
                        damagedBlocks[damagedCaches] = (nint)damaged;
                        moreDamagedCounts[damagedCaches] = moreDamaged;
                    }
                    else unreported += 1 + moreDamaged;
                    damagedCaches++;
                }
            }
            catch (Exception e)
            {
                // Nothing in the push throws today; an exception must still not strand the claims after this one.
                first ??= e;
            }
            finally
            {
                SmallBlocks.ReleaseRemoteBatchClaim(h);
            }
        }
        if (first != null) ErrorReports.ReportCaught(first);
        // The damaged batches of each cache reported (logged once) now; past the first DamageReportsKept caches of one
        // pass, the others' are dropped as well and only counted.
        ErrorReports.ReportUnreported(unreported);
        for (int i = 0; i < Math.Min(damagedCaches, DamageReportsKept); i++)
        {
            try
            {
                SmallBlocks.ThrowBatchDamage(damages[i], (void*)damagedBlocks[i], moreDamagedCounts[i]);
            }
            catch (InvalidOperationException e)
            {
                first ??= e;
            }
        }
        return first;
    }

    /// <summary>The most remote-free links a take from an idle thread follows (see <c>SmallBlocks.UnlinkFreedSlabs</c>).</summary>
    private const int IdleTakeBackWalk = 16 * 1024;

    /// <summary>Takes back, from every other thread's cache that is live (or ended and not reclaimed yet), the
    /// retained slabs that other threads' frees have emptied (<c>SmallBlocks.UnlinkFreedSlabs</c>, <c>LetGoTakenSlabs</c>); with
    /// <paramref name="idleOnly"/>, only from live threads that have had no cache miss since the last look (one
    /// that misses collects those frees itself), and a bounded amount from each. Returns how many slabs were
    /// taken back.</summary>
    /// <remarks>Holds each cache through its record's <see cref="ThreadCacheRecord.TakenBy"/>, taken by
    /// compare-exchange and kept only if the record is still Live in the generation read before; a reclaim that
    /// wins the record waits until no taker holds it (<see cref="TryReclaim"/>). Both steps are interlocked,
    /// so of a taker and a reclaim one sees the other. The slabs are let go only once the cache is released.
    /// Allocates nothing and never throws: corruption met while letting a slab go is logged where it is found,
    /// and that slab left out of use.</remarks>
    public static int TakeBackFreedSlabs(bool idleOnly)
    {
        int taken = 0, self = Environment.CurrentManagedThreadId;
        for (ThreadCacheRecord? r = Head; r != null; r = r.Next)
        {
            long word = Volatile.Read(ref r.StateWord);
            if ((word & StateMask) != StateLive || r.Thread == Thread.CurrentThread) continue;
            ThreadCache* h = r.Heap;
            if (idleOnly)
            {
                // An ended thread's cache is the reclaim's, which hands back all of it.
                if (r.Thread is not { IsAlive: true }) continue;
                long misses = Volatile.Read(ref h->CacheMisses);
                bool idle = Volatile.Read(ref h->MissesAtLastLook) == misses;
                Volatile.Write(ref h->MissesAtLastLook, misses);
                if (!idle || !SmallBlocks.MayTakeBack(h)) continue;
            }
            // Loses to another taker: that one has the cache now. No ABA: the claim alone proves nothing; the state
            // word, generation included, read again once it is held, decides whether this is still the cache read.
            if (Interlocked.CompareExchange(ref r.TakenBy, self, 0) != 0) continue;
            SlabMeta* chain = null;
            bool gaveUp = false;
            try
            {
                // Reclaimed (or taken by a new thread) since the word was read: not this cache any more.
                if (Volatile.Read(ref r.StateWord) == word) chain = SmallBlocks.UnlinkFreedSlabs(h, idleOnly ? IdleTakeBackWalk : int.MaxValue, out gaveUp);
            }
            finally
            {
                Volatile.Write(ref r.TakenBy, 0);
            }
            // Let go once the cache is released: corruption found here is logged where it is found, and a logger
            // that calls back into SlabAlloc must find nothing held.
            int here = SmallBlocks.LetGoTakenSlabs(chain);
            if (!gaveUp) SmallBlocks.NoteTakeBack(h, here);
            taken += here;
        }
        return taken;
    }

    /// <summary>Waits until no heap is being reclaimed. A reclaim that another thread (an attaching thread
    /// or the upkeep) won but has not finished is skipped by <see cref="ReclaimDead"/>; <c>Trim</c> waits for it, so that
    /// what it finds to trim includes that heap's slabs. A reclaim runs no user code and takes
    /// microseconds, unless its thread is descheduled.</summary>
    public static void AwaitReclaims()
    {
        int self = Environment.CurrentManagedThreadId;
        for (ThreadCacheRecord? r = Head; r != null; r = r.Next)
        {
            // Not a reclaim this thread is in the middle of (a logger called back into Trim from it). Spins and
            // yields, never sleeps: Thread.Sleep is an interruptible wait, and Trim must not be interrupted.
            while ((Volatile.Read(ref r.StateWord) & StateMask) == StateReclaiming && Volatile.Read(ref r.ReclaimedBy) != self)
            {
                Thread.SpinWait(20);
                Thread.Yield();
            }
        }
    }

    /// <summary>Hands the slabs of <paramref name="r"/>'s heap back to the pool, if it is still
    /// live in generation <paramref name="generation"/>.</summary>
    public static void TryReclaim(ThreadCacheRecord r, long generation)
    {
        long live = generation << 2 | StateLive;
        // Loses to another scan that found the same dead thread: one of them hands the heap back. The
        // generation in the word makes a scan that read an earlier thread's record lose too (no ABA).
        if (Interlocked.CompareExchange(ref r.StateWord, generation << 2 | StateReclaiming, live) != live) return;
        // Failures found while the record is Reclaiming are logged once it is not: Trim waits for every reclaim
        // in flight, and a logger may wait for another thread's Trim.
        using (ErrorReports.Defer())
        {
            Volatile.Write(ref r.ReclaimedBy, Environment.CurrentManagedThreadId);
            // A take of the heap's slabs that began before the exchange ends first (a taker that looks after it
            // finds the record no longer Live and leaves).
            while (Volatile.Read(ref r.TakenBy) != 0)
            {
                Thread.SpinWait(20);
                Thread.Yield();
            }
            StackCacheMap.Unregister(r.Heap);
            try
            {
                SmallBlocks.ReleaseAllSlabs(r.Heap);
            }
            catch (Exception e)
            {
                // Corruption found in the dead thread's slabs, or no memory: the heap is left as it is, never taken
                // again, and no longer waited for by Trim.
                Volatile.Write(ref r.ReclaimedBy, 0);
                Volatile.Write(ref r.StateWord, generation << 2 | StateAbandoned);
                ErrorReports.ReportCaught(e); // after the record is out of Reclaiming, should the report itself fail
                throw;
            }
            int threadId = r.Thread?.ManagedThreadId ?? -1;
            r.Thread = null;
            Interlocked.Increment(ref s_reclaimed);
            Volatile.Write(ref r.ReclaimedBy, 0);
            Volatile.Write(ref r.StateWord, generation << 2 | StateFree);
            // Logged once the record is free: a logger that calls back into SlabAlloc (Trim) finds nothing in flight.
            SlabLog.ThreadCacheFlushed((nuint)r.Heap, generation, threadId);
        }
    }

    /// <summary>True while a thread is attached to the record.</summary>
    public static bool IsLive(ThreadCacheRecord r) => (Volatile.Read(ref r.StateWord) & StateMask) == StateLive;
}

/// <summary>One thread cache and the thread it belongs to.</summary>
internal sealed unsafe class ThreadCacheRecord(ThreadCache* heap)
{
    public readonly ThreadCache* Heap = heap;
    public Thread? Thread;
    public long StateWord;
    public ThreadCacheRecord? Next;
    /// <summary>The managed id of the thread reclaiming the heap, while it does (else 0).</summary>
    public int ReclaimedBy;
    /// <summary>The managed id of a thread taking back the heap's emptied slabs while its thread lives, while it
    /// does (else 0; <see cref="ThreadCacheRecords.TakeBackFreedSlabs"/>).</summary>
    public int TakenBy;
}
