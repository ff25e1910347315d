using TorchSharp;
using Workbook.Runtime;

namespace Workbook.Tests.Runtime;

public class TorchRuntimeTests
{
    [Fact]
    public void TorchSharpComputes()
    {
        var report = TorchRuntime.EnsureLoaded();
        using var a = torch.arange(6, dtype: torch.float32).reshape(2, 3);
        using var s = a.sum();
        Assert.Equal(15f, s.item<float>());
        Assert.NotNull(report.Loaded);
    }
}
