using System.Text.Json.Serialization;

namespace SlabAlloc.Workloads;

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(RunFigures))]
[JsonSerializable(typeof(EchoFigures))]
internal sealed partial class BenchJson : JsonSerializerContext { }
