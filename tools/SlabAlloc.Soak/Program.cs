using System.Globalization;
using SlabAlloc.Soak;

// The correctness gate, apart from the measurements in bench/: what it reports is pass or fail, not a
// figure, and ./build.sh test runs it after the test suites.
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
try
{
    return Dispatch(args);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"SlabAlloc.Soak: {e.Message}");
    Console.Error.WriteLine(Usage);
    return 2;
}

// Without a command, the self-check: the quick one.
static int Dispatch(string[] args) => args.Length == 0 ? SelfCheck.Run([]) : args[0] switch
{
    "soak" => SoakRun.Run(args.Skip(1).ToList()),
    "selfcheck" => SelfCheck.Run(args[1..]),
    _ => throw new ArgumentException($"unknown command '{args[0]}'"),
};

partial class Program
{
    internal const string Usage = """
        usage: SlabAlloc.Soak <command> ...
          soak [--seconds S] [--threads T] [--report-every R] [--seed N]   (thread churn with verification; exit 1 on failure)
          selfcheck [threads] [rounds]                (the default: blocks of every size class, stamped, half freed by
                                                       another thread; exact accounting at the end; exit 1 on failure)
        """;
}
