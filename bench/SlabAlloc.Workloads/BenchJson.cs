using System.Text.Json.Serialization;

namespace SlabAlloc.Workloads;

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(RunFigures))]
internal sealed partial class BenchJson : JsonSerializerContext { }
