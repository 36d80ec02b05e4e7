using Microsoft.Extensions.Logging;
using SlabAlloc.Support;

namespace SlabAlloc.Tests.Support;

/// <summary>
/// <see cref="ErrorReports"/>: each failure is logged exactly once, at once outside a scope and, inside one, when
/// the thread's outermost scope ends, in the order found. The whole-allocator case (a logger that waits for another
/// thread's <c>Trim</c> while a reclaim, a <c>Trim</c> or a pass of the upkeep found the failure) is
/// <c>HardeningTests.ALoggerThatWaitsForAnotherThreadsTrim_IsCalledOnceNothingIsHeld</c>.
/// </summary>
[Collection("SlabAlloc global state")]
public sealed class ErrorReportsTests
{
    /// <summary>Runs <paramref name="test"/> with <paramref name="factory"/> as SlabAlloc's logger, and none after.</summary>
    private static void WithLogger(ILoggerFactory factory, Action test)
    {
        SlabAllocLogging.Configure(factory);
        try
        {
            test();
        }
        finally
        {
            SlabAllocLogging.Configure(null);
        }
    }

    [Fact]
    public void InsideNestedScopes_FailuresAreLoggedWhenTheOutermostEnds_OnceEach_InOrder()
    {
        var factory = new RecordingLoggerFactory();
        var first = new InvalidOperationException("first");
        var second = new InvalidOperationException("second");
        WithLogger(factory, () =>
        {
            using (ErrorReports.Defer())
            {
                Assert.Same(first, ErrorReports.Report(first));
                using (ErrorReports.Defer())
                {
                    ErrorReports.Report(second);
                    ErrorReports.Report(first); // reported before: not kept again
                }
                Assert.Empty(Mine(factory, first, second)); // the inner scope's end logs nothing
                Assert.Equal(2, ErrorReports.KeptCount);
            }
            Assert.Equal([first, second], Mine(factory, first, second));
            Assert.Equal(0, ErrorReports.KeptCount);

            ErrorReports.Report(second); // logged already: never again
            Assert.Equal([first, second], Mine(factory, first, second));
        });
    }

    [Fact]
    public void AnExceptionOfTheRuntimeCaughtTwiceInOneScope_IsLoggedOnce_AndNotMarked()
    {
        // The runtime may throw one out-of-memory instance again and again: it is never marked, so each later
        // catch outside a scope logs it again, but one scope logs it once.
        var factory = new RecordingLoggerFactory();
        var runtimes = new OutOfMemoryException("the runtime's");
        WithLogger(factory, () =>
        {
            using (ErrorReports.Defer())
            {
                ErrorReports.ReportCaught(runtimes);
                ErrorReports.ReportCaught(runtimes);
            }
            Assert.Equal([runtimes], Mine(factory, runtimes));
            Assert.False(ErrorReports.WasReported(runtimes));
            ErrorReports.ReportCaught(runtimes);
            Assert.Equal([runtimes, runtimes], Mine(factory, runtimes));
        });
    }

    [Fact]
    public void OutsideAScope_AFailureIsLoggedAtOnce_AndOnAnotherThreadAScopeOfThisOneDefersNothing()
    {
        var factory = new RecordingLoggerFactory();
        var here = new InvalidOperationException("here");
        var there = new InvalidOperationException("there");
        WithLogger(factory, () =>
        {
            ErrorReports.Report(here);
            Assert.Equal([here], Mine(factory, here, there));
            using (ErrorReports.Defer())
            {
                var other = new Thread(() => ErrorReports.Report(there));
                other.Start();
                other.Join();
                Assert.Equal([here, there], Mine(factory, here, there));
            }
        });
    }

    [Fact]
    public void AScopeKeepsTheFirstFailuresUpToItsBound_AndTheNextScopeStartsFromNothing()
    {
        var factory = new RecordingLoggerFactory();
        var failures = Enumerable.Range(0, ErrorReports.KeptPerScope + 3).Select(i => new InvalidOperationException($"failure {i}")).ToArray();
        var later = new InvalidOperationException("later");
        WithLogger(factory, () =>
        {
            using (ErrorReports.Defer())
            {
                foreach (var f in failures) ErrorReports.Report(f);
            }
            Assert.Equal(failures.Take(ErrorReports.KeptPerScope), Mine(factory, failures));
            LogEntry notLogged = Assert.Single(factory.Entries, e => e.EventId.Name == "ErrorsNotLogged");
            Assert.Equal(LogLevel.Error, notLogged.Level);
            Assert.Contains($"detected 3 more errors in one operation than the {ErrorReports.KeptPerScope} it logs", notLogged.Message);
            using (ErrorReports.Defer()) ErrorReports.Report(later);
            Assert.Equal([later], Mine(factory, later));
            Assert.Single(factory.Entries, e => e.EventId.Name == "ErrorsNotLogged");
        });
    }

    [Fact]
    public void FailuresHandledWithoutAReportOfTheirOwn_AreCountedWithThoseNotKept()
    {
        // A Trim that finds more damaged remote batches than it reports one by one counts the rest.
        var factory = new RecordingLoggerFactory();
        var one = new InvalidOperationException("one");
        WithLogger(factory, () =>
        {
            using (ErrorReports.Defer())
            {
                ErrorReports.Report(one);
                ErrorReports.ReportUnreported(3);
                ErrorReports.ReportUnreported(0);
                Assert.DoesNotContain(factory.Entries, e => e.EventId.Name == "ErrorsNotLogged");
            }
            Assert.Equal([one], Mine(factory, one));
            LogEntry notLogged = Assert.Single(factory.Entries, e => e.EventId.Name == "ErrorsNotLogged");
            Assert.Contains("detected 3 more errors", notLogged.Message);
        });
    }

    [Fact]
    public void ALoggerThatReportsWhileTheScopeIsLogged_HasItsOwnFailureLoggedAtOnce()
    {
        var kept = new InvalidOperationException("kept");
        var fromLogger = new InvalidOperationException("from the logger");
        var factory = new RecordingLoggerFactory();
        var callingBack = new CallingBackFactory(factory, kept, () => ErrorReports.Report(fromLogger));
        WithLogger(callingBack, () =>
        {
            using (ErrorReports.Defer()) ErrorReports.Report(kept);
            Assert.Equal([kept, fromLogger], Mine(factory, kept, fromLogger));
            Assert.Equal(0, ErrorReports.KeptCount);
        });
    }

    /// <summary>The errors logged whose exception is one of <paramref name="ours"/>, in order (the upkeep may log
    /// on its own thread meanwhile).</summary>
    private static Exception[] Mine(RecordingLoggerFactory factory, params Exception[] ours) =>
        factory.Entries.Where(e => e.Level == LogLevel.Error && ours.Contains(e.Exception)).Select(e => e.Exception!).ToArray();

    /// <summary>Records through <paramref name="inner"/>, and calls <paramref name="onLogged"/> after logging
    /// <paramref name="trigger"/>.</summary>
    private sealed class CallingBackFactory(RecordingLoggerFactory inner, Exception trigger, Action onLogged) : ILoggerFactory
    {
        public ILogger CreateLogger(string categoryName) => new Logger(inner.CreateLogger(categoryName), trigger, onLogged);
        public void AddProvider(ILoggerProvider provider) => throw new NotSupportedException();
        public void Dispose() { }

        private sealed class Logger(ILogger inner, Exception trigger, Action onLogged) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                inner.Log(logLevel, eventId, state, exception, formatter);
                if (exception == trigger) onLogged();
            }
        }
    }
}
