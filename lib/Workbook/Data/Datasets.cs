using TorchSharp;
using static TorchSharp.torch;

namespace Workbook.Data;

/// <summary>One file of a known dataset: its name, canonical addresses and checksum.</summary>
/// <param name="Dataset">The folder under <c>data/</c> (and under the download cache), e.g. "fashion-mnist".</param>
/// <param name="FileName">E.g. "train-images-idx3-ubyte.gz".</param>
/// <param name="Urls">The canonical address first, then mirrors.</param>
/// <param name="Checksum"><c>"sha256:HEX"</c> or <c>"md5:HEX"</c> of the file.</param>
public sealed record DatasetFile(string Dataset, string FileName, IReadOnlyList<string> Urls, string Checksum);

/// <summary>
/// Fashion-MNIST and MNIST as <see cref="InMemoryDataset"/>s: images float32 <c>[N, 1, 28, 28]</c> scaled to [0, 1],
/// labels int64 <c>[N]</c>. Files are looked up in the repository's <c>data/</c> folder first (it ships the
/// Fashion-MNIST train and test sets and the MNIST test set, so everything works offline), then in the download
/// cache (<c>WORKBOOK_CACHE</c>, default <c>~/.cache/workbook</c>), and only then downloaded from the canonical
/// addresses with checksum verification and resume (<see cref="Downloader"/>).
/// <para>
/// Ours rather than TorchVision's <c>datasets.FashionMNIST</c>/<c>MNIST</c>: TorchVision 0.107 scales pixels by 1/256
/// (white is 0.996, not PyTorch's 1.0) and applies the parameter named <c>target_transform</c> to the image (both
/// pinned in TorchVisionQuirkTests); ours also finds the repository's <c>data/</c> copy and checks every file's hash.
/// </para>
/// </summary>
public static class Datasets
{
    const string FashionUrl = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/";
    static readonly string[] MnistUrls = { "https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/" };

    /// <summary>Fashion-MNIST's ten class names (Xiao, Rasul &amp; Vollgraf, 2017), by label id.</summary>
    public static IReadOnlyList<string> FashionMnistClasses { get; } = new[]
        { "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot" };

    /// <summary>
    /// The known files. SHA-256 for the files the repository ships (their MD5s equal the ones the dataset authors
    /// publish); MD5 as published for the MNIST training files, which the repository does not ship.
    /// </summary>
    public static IReadOnlyList<DatasetFile> Files { get; } = new[]
    {
        Fashion("train-images-idx3-ubyte.gz", "sha256:3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        Fashion("train-labels-idx1-ubyte.gz", "sha256:a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        Fashion("t10k-images-idx3-ubyte.gz", "sha256:346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        Fashion("t10k-labels-idx1-ubyte.gz", "sha256:67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
        Mnist("train-images-idx3-ubyte.gz", "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        Mnist("train-labels-idx1-ubyte.gz", "md5:d53e105ee54ea40749a09fcbcd1e9432"),
        Mnist("t10k-images-idx3-ubyte.gz", "sha256:8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        Mnist("t10k-labels-idx1-ubyte.gz", "sha256:f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    };

    static DatasetFile Fashion(string f, string checksum) => new("fashion-mnist", f, new[] { FashionUrl + f }, checksum);
    static DatasetFile Mnist(string f, string checksum) => new("mnist", f, MnistUrls.Select(u => u + f).ToArray(), checksum);

    /// <summary>The download cache folder: <c>WORKBOOK_CACHE</c>, or <c>~/.cache/workbook</c>.</summary>
    public static string CacheDirectory =>
        Environment.GetEnvironmentVariable("WORKBOOK_CACHE") is { Length: > 0 } c ? c
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "workbook");

    /// <summary>
    /// The local path of a known dataset file: <c>data/DATASET/FILE</c> when the repository has it, else the cached
    /// copy, else (when <paramref name="download"/>) a fresh, verified download into the cache.
    /// </summary>
    /// <param name="dataset">"fashion-mnist" or "mnist".</param>
    /// <param name="fileName">E.g. "t10k-labels-idx1-ubyte.gz".</param>
    /// <param name="download">Allow the network; false fails with a message saying where to put the file.</param>
    /// <param name="progress">Download progress (only called when downloading).</param>
    /// <exception cref="ArgumentException">Unknown dataset or file.</exception>
    /// <exception cref="FileNotFoundException">Not available locally and <paramref name="download"/> is false.</exception>
    public static string Resolve(string dataset, string fileName, bool download = true, Action<DownloadProgress>? progress = null)
    {
        var file = Files.FirstOrDefault(f => f.Dataset == dataset && f.FileName == fileName) ?? throw new ArgumentException(
            $"Unknown dataset file '{dataset}/{fileName}'. Known: {string.Join(", ", Files.Select(f => f.Dataset + "/" + f.FileName))}.", nameof(fileName));
        if (DataPaths.TryFindDataDirectory() is { } data && File.Exists(Path.Combine(data, dataset, fileName)))
            return Path.Combine(data, dataset, fileName);
        var cached = Path.Combine(CacheDirectory, dataset, fileName);
        if (!download)
        {
            if (File.Exists(cached) && Downloader.Verify(cached, file.Checksum)) return cached;
            throw new FileNotFoundException($"'{dataset}/{fileName}' is neither in the data folder ({DataPaths.TryFindDataDirectory() ?? "not found"}) " +
                $"nor in the cache ('{cached}'), and download is off. Copy it to one of them or pass download: true.", cached);
        }
        return Downloader.Fetch(file.Urls, cached, file.Checksum, progress);
    }

    /// <summary>Fashion-MNIST (60,000 training, 10,000 test images of clothing, 10 classes; see <see cref="FashionMnistClasses"/>).</summary>
    /// <param name="train">The training set (true) or the test set (false).</param>
    /// <param name="limit">Keep only the first <paramref name="limit"/> samples (for quick runs).</param>
    /// <param name="download">Allow downloading when the files are not local.</param>
    public static InMemoryDataset FashionMnist(bool train = true, int? limit = null, bool download = true) =>
        LoadIdxPair("fashion-mnist", train, limit, download);

    /// <summary>MNIST handwritten digits (the repository ships the 10,000-image test set; the training set is downloaded).</summary>
    /// <param name="train">The training set (true) or the test set (false).</param>
    /// <param name="limit">Keep only the first <paramref name="limit"/> samples.</param>
    /// <param name="download">Allow downloading when the files are not local.</param>
    public static InMemoryDataset Mnist(bool train = false, int? limit = null, bool download = true) =>
        LoadIdxPair("mnist", train, limit, download);

    /// <summary>
    /// Loads an IDX image file and its label file as a dataset: images become float32 <c>[N, 1, rows, cols]</c>
    /// in [0, 1] (pixel / 255), labels int64 <c>[N]</c>.
    /// </summary>
    /// <exception cref="InvalidDataException">A file is malformed, or the two files disagree on N or are not images/labels.</exception>
    public static InMemoryDataset FromIdx(string imagesPath, string labelsPath, int? limit = null)
    {
        using var scope = torch.NewDisposeScope();
        var images = Idx.Read(imagesPath);
        var labels = Idx.Read(labelsPath);
        if (images.dim() != 3) throw new InvalidDataException($"'{imagesPath}' holds shape [{string.Join(", ", images.shape)}], expected images [N, rows, cols].");
        if (labels.dim() != 1) throw new InvalidDataException($"'{labelsPath}' holds shape [{string.Join(", ", labels.shape)}], expected labels [N].");
        if (images.shape[0] != labels.shape[0])
            throw new InvalidDataException($"'{imagesPath}' has {images.shape[0]} images but '{labelsPath}' has {labels.shape[0]} labels.");
        long n = limit is { } l ? Math.Min(l, images.shape[0]) : images.shape[0];
        var x = images.narrow(0, 0, n).to(ScalarType.Float32).div_(255f).unsqueeze(1);
        var y = labels.narrow(0, 0, n).to(ScalarType.Int64);
        return new InMemoryDataset(x, y);
    }

    static InMemoryDataset LoadIdxPair(string dataset, bool train, int? limit, bool download)
    {
        var prefix = train ? "train" : "t10k";
        return FromIdx(Resolve(dataset, $"{prefix}-images-idx3-ubyte.gz", download), Resolve(dataset, $"{prefix}-labels-idx1-ubyte.gz", download), limit);
    }
}
