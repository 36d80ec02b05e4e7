using System.Text.Json.Serialization;

namespace SlabAlloc.Bench;

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(RunFigures))]
internal sealed partial class BenchJson : JsonSerializerContext { }
