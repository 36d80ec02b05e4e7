using System.Text.Json.Serialization;

namespace SlabAlloc.Interprocess;

/// <summary>The JSON the child reports its figures in: one line on its standard output at the end of a run.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(ProcessUsage))]
internal sealed partial class IpcJson : JsonSerializerContext { }
