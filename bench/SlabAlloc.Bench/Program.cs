using SlabAlloc.Bench;

return args.Length > 0 && args[0] == "selfcheck" || args.Length == 0
    ? SelfCheck.Run(args.Skip(1).ToArray())
    : Usage();

static int Usage()
{
    Console.Error.WriteLine("usage: SlabAlloc.Bench [selfcheck [threads] [rounds]]");
    return 2;
}
