namespace Workbook.Vision;

/// <summary>
/// Shape arithmetic of convolution and pooling layers, so models can compute their flatten size from the input size
/// instead of hard-coding it (the source articles' <c>128*56*56</c> only works for 224×224 inputs).
/// </summary>
public static class ConvArithmetic
{
    /// <summary>
    /// Output length along one spatial axis of a convolution or pooling window (PyTorch's formula):
    /// <c>floor((n + 2·padding − dilation·(kernel − 1) − 1) / stride) + 1</c>.
    /// </summary>
    /// <param name="inputSize">Input length n (height or width).</param>
    /// <param name="kernelSize">Kernel (window) size k.</param>
    /// <param name="stride">Step between windows.</param>
    /// <param name="padding">Zeros added on each side.</param>
    /// <param name="dilation">Spacing between kernel taps.</param>
    /// <exception cref="ArgumentException">A size is not positive, or the kernel does not fit the padded input.</exception>
    public static int OutputSize(int inputSize, int kernelSize, int stride = 1, int padding = 0, int dilation = 1)
    {
        if (inputSize <= 0) throw new ArgumentException($"inputSize must be positive, got {inputSize}.", nameof(inputSize));
        if (kernelSize <= 0) throw new ArgumentException($"kernelSize must be positive, got {kernelSize}.", nameof(kernelSize));
        if (stride <= 0) throw new ArgumentException($"stride must be positive, got {stride}.", nameof(stride));
        if (padding < 0) throw new ArgumentException($"padding must be >= 0, got {padding}.", nameof(padding));
        if (dilation <= 0) throw new ArgumentException($"dilation must be positive, got {dilation}.", nameof(dilation));
        int span = dilation * (kernelSize - 1) + 1;       // how many input positions one window covers
        int padded = inputSize + 2 * padding;
        if (span > padded)
            throw new ArgumentException(
                $"A kernel spanning {span} positions does not fit an input of {inputSize} with padding {padding} (padded length {padded}).",
                nameof(kernelSize));
        return (padded - span) / stride + 1;
    }

    /// <summary>"Same" padding for an odd kernel at stride 1: <c>(k − 1)/2</c> keeps the size unchanged.</summary>
    /// <exception cref="ArgumentException">The kernel size is even or not positive.</exception>
    public static int SamePadding(int kernelSize)
    {
        if (kernelSize <= 0 || kernelSize % 2 == 0)
            throw new ArgumentException($"Same padding needs an odd positive kernel size, got {kernelSize}.", nameof(kernelSize));
        return (kernelSize - 1) / 2;
    }
}
