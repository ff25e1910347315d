using TorchSharp;
using static TorchSharp.torch;
using ITransform = TorchSharp.torchvision.ITransform;

namespace Workbook.Vision;

/// <summary>
/// A labelled image dataset laid out as one subfolder per class (torchvision's <c>ImageFolder</c>):
/// <c>root/cat/001.png</c>, <c>root/dog/xyz.jpg</c>. Class names are the subfolder names sorted ordinally and get
/// indices 0, 1, ...; files inside are sorted too, so the sample order is reproducible on every machine.
/// Images are decoded with SkiaSharp on access and passed through the transform.
/// </summary>
public sealed class ImageFolder
{
    /// <summary>The root folder.</summary>
    public string Root { get; }
    /// <summary>Class names (subfolder names), in index order.</summary>
    public IReadOnlyList<string> Classes { get; }
    /// <summary>Class name → class index.</summary>
    public IReadOnlyDictionary<string, int> ClassToIndex { get; }
    /// <summary>Every image file with its class index, in dataset order.</summary>
    public IReadOnlyList<(string Path, int Label)> Samples { get; }
    /// <summary>The transform applied to each decoded <c>uint8 [C, H, W]</c> image (null: none): a TorchVision
    /// transform or <c>transforms.Compose(...)</c> of them.</summary>
    public ITransform? Transform { get; }
    /// <summary>Channels decoded: 3 (RGB) or 1 (grayscale).</summary>
    public int Channels { get; }

    /// <summary>Number of images.</summary>
    public int Count => Samples.Count;

    /// <summary>Scans <paramref name="root"/> for class subfolders and their images.</summary>
    /// <param name="root">Folder with one subfolder per class.</param>
    /// <param name="transform">Applied to every decoded image, e.g. <c>transforms.Compose(transforms.Resize(32, 32, InterpolationMode.Bilinear,
    /// antialias: true), transforms.ConvertImageDtype(ScalarType.Float32), new Normalize(...))</c>.</param>
    /// <param name="channels">3 for RGB, 1 for grayscale.</param>
    /// <exception cref="DirectoryNotFoundException">The root folder does not exist.</exception>
    /// <exception cref="InvalidDataException">No class subfolders, or a class folder without image files.</exception>
    public ImageFolder(string root, ITransform? transform = null, int channels = 3)
    {
        if (channels != 1 && channels != 3) throw new ArgumentException($"channels must be 1 or 3, got {channels}.", nameof(channels));
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"ImageFolder root not found: {root}");
        Root = root; Transform = transform; Channels = channels;

        var classDirs = Directory.GetDirectories(root).Select(d => Path.GetFileName(d)!)
            .Where(n => !n.StartsWith('.')).OrderBy(n => n, StringComparer.Ordinal).ToList();
        if (classDirs.Count == 0)
            throw new InvalidDataException(
                $"ImageFolder found no class subfolders in '{root}': expected one subfolder per class, e.g. {root}/cat/001.png.");
        Classes = classDirs;
        ClassToIndex = classDirs.Select((c, i) => (c, i)).ToDictionary(p => p.c, p => p.i);

        var samples = new List<(string, int)>();
        foreach (var (name, index) in classDirs.Select((c, i) => (c, i)))
        {
            var files = Directory.GetFiles(Path.Combine(root, name), "*", SearchOption.AllDirectories)
                .Where(f => Images.Extensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
                .OrderBy(f => f, StringComparer.Ordinal).ToList();
            if (files.Count == 0)
                throw new InvalidDataException(
                    $"ImageFolder class folder '{Path.Combine(root, name)}' has no image files ({string.Join(", ", Images.Extensions)}).");
            samples.AddRange(files.Select(f => (f, index)));
        }
        Samples = samples;
    }

    /// <summary>Decodes and transforms image <paramref name="index"/>; returns it with its class index.</summary>
    /// <exception cref="InvalidDataException">The file is corrupt; the message names its path.</exception>
    public (Tensor Image, int Label) Get(int index)
    {
        if (index < 0 || index >= Count) throw new ArgumentOutOfRangeException(nameof(index), $"index {index} is outside 0..{Count - 1}.");
        var (path, label) = Samples[index];
        using var scope = torch.NewDisposeScope();
        var image = Images.Load(path, Channels);
        if (Transform is not null) image = Transform.call(image);
        return (image.MoveToOuterDisposeScope(), label);
    }

    /// <summary>
    /// Decodes and transforms the images (all, or the given indices) into one batch: inputs <c>[N, C, H, W]</c> and
    /// int64 targets <c>[N]</c>. Every transformed image must have the same shape (use Resize/CenterCrop).
    /// </summary>
    public (Tensor Inputs, Tensor Targets) Load(IEnumerable<int>? indices = null)
    {
        var idx = (indices ?? Enumerable.Range(0, Count)).ToList();
        if (idx.Count == 0) throw new ArgumentException("Load needs at least one index.", nameof(indices));
        using var scope = torch.NewDisposeScope();
        var images = new List<Tensor>(idx.Count);
        var labels = new long[idx.Count];
        for (int i = 0; i < idx.Count; i++)
        {
            var (img, label) = Get(idx[i]);
            if (images.Count > 0 && !img.shape.SequenceEqual(images[0].shape))
                throw new InvalidDataException(
                    $"Image '{Samples[idx[i]].Path}' has shape [{string.Join(", ", img.shape)}] after the transform but the first has " +
                    $"[{string.Join(", ", images[0].shape)}]: add a Resize and/or CenterCrop to the transform.");
            images.Add(img);
            labels[i] = label;
        }
        var inputs = torch.stack(images);
        var targets = torch.tensor(labels);
        return (inputs.MoveToOuterDisposeScope(), targets.MoveToOuterDisposeScope());
    }

    /// <summary>Number of images per class, in class order.</summary>
    public IReadOnlyList<int> CountsPerClass() =>
        Enumerable.Range(0, Classes.Count).Select(c => Samples.Count(s => s.Label == c)).ToList();

    /// <inheritdoc />
    public override string ToString() =>
        $"ImageFolder('{Root}', {Count} images, {Classes.Count} classes: {string.Join(", ", Classes.Take(10))}{(Classes.Count > 10 ? ", ..." : "")}; transform: {Transform?.ToString() ?? "none"})";
}
