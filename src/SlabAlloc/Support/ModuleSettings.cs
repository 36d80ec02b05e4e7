// Locals and stackalloc buffers are not zeroed on entry: every one is written before it is read, and
// the fast paths take the address of a local only to learn where the stack is (see StackCacheMap).
[module: System.Runtime.CompilerServices.SkipLocalsInit]
