using System.Text.Json.Nodes;
using Workbook.Tests.Runner;
using static Workbook.Tests.Runner.NotebookFixture;

namespace Workbook.Tests.Notebooks;

/// <summary>
/// Every error of the source articles that chapters 02–06 teach is shown in its chapter by two tagged code cells: one
/// that computes the articles' version (<c>errata-N-article</c>) and, after it, one that computes the correct version
/// (<c>errata-N-correct</c>). The rows are the list the chapters were written against (the other rows belong to the
/// GAN and fine-tuning chapters).
/// </summary>
public class ErrataTests
{
    /// <summary>An error of the source articles: its number in the list, the chapter that corrects it, what it is about.</summary>
    public sealed record Row(int Number, string Notebook, string Title);

    const string Pe = "02-positional-encoding.ipynb", Transformer = "03-transformer.ipynb", Training = "04-training-loop.ipynb",
        Gpt = "05-gpt2-generation.ipynb", Cnn = "06-cnn-image-classification.ipynb";

    /// <summary>The rows of chapters 02–06.</summary>
    public static readonly Row[] Rows =
    [
        new(1, Pe, "sinusoidal table: column 2·d − 1, first half sin, second half cos"),
        new(2, Transformer, "encoder as a sum of two LayerNorms, FFN on the raw attention output"),
        new(3, Transformer, "decoder as a sum of three LayerNorms, cross-attention on its own input"),
        new(4, Transformer, "pseudo-code residual x = x + x, no LayerNorm, FFN without residual"),
        new(5, Gpt, "GPT2Model (no LM head) used for logits and generate"),
        new(6, Training, "cross-entropy −log 0.8 ≈ −0.223"),
        new(8, Training, "gradient step [2, 3] − 0.01·[−2, −3] = [2.04, 2.97]"),
        new(9, Training, "backprop example without targets or weights"),
        new(10, Training, "MSE of ten differences of 0.05 = 0.025"),
        new(11, Training, "soft-target cross-entropy ≈ 0.193"),
        new(12, Training, "linear-regression step: w = 1.05, loss 0.25"),
        new(14, Training, "tanh avoids vanishing gradients"),
        new(15, Training, "hinge loss as an absolute difference"),
        new(16, Training, "Adam with [g − m] and no bias correction"),
        new(17, Training, "unflattened input, layer count, test accuracy on training data"),
        new(18, Training, "one sigmoid neuron with the squared error (correct)"),
        new(19, Training, "reported run: 2.358 at epoch 1, 1.00 at 98.2 %"),
        new(21, Cnn, "SimpleCNN's fc1 of 128·56·56 × 512 weights"),
    ];

    static string Notebooks => Path.Combine(TestSetup.RepoRoot, "notebooks");

    static List<JsonObject> Cells(JsonObject nb) => nb["cells"]!.AsArray().OfType<JsonObject>().ToList();

    static IEnumerable<string> Tags(JsonObject cell) =>
        (cell["metadata"]?["tags"] as JsonArray ?? new JsonArray()).Select(t => t!.GetValue<string>());

    static int Index(List<JsonObject> cells, string tag) => cells.FindIndex(c => Tags(c).Contains(tag));

    [Fact]
    public void TheRowsCoverEveryErrataTagOfChaptersTwoToSix()
    {
        var rowsByChapter = Rows.GroupBy(r => r.Notebook).ToDictionary(g => g.Key, g => g.Select(r => r.Number).ToHashSet());
        foreach (var path in Directory.GetFiles(Notebooks, "*.ipynb", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(Notebooks, path).Replace('\\', '/');
            foreach (var tag in Cells(Load(path)).SelectMany(Tags).Where(t => t.StartsWith("errata-", StringComparison.Ordinal)))
            {
                var parts = tag.Split('-');
                Assert.True(parts.Length == 3 && int.TryParse(parts[1], out _) && parts[2] is "article" or "correct",
                    $"{relative}: tag '{tag}' is not errata-N-article or errata-N-correct");
                int number = int.Parse(parts[1]);
                var expected = Rows.FirstOrDefault(r => r.Number == number);
                // Rows of chapters outside 02–06 (the GAN and fine-tuning chapters) may tag their own notebooks.
                if (expected is null) Assert.False(rowsByChapter.ContainsKey(relative), $"{relative} tags row {number}, which is not one of its rows");
                else Assert.True(expected.Notebook == relative, $"{tag} is in {relative}, but row {number} ('{expected.Title}') belongs to {expected.Notebook}");
            }
        }
    }

    [Fact]
    public void EveryRowHasAnArticleCellThenACorrectCellInItsChapter()
    {
        foreach (var row in Rows)
        {
            var cells = Cells(Load(Path.Combine(Notebooks, row.Notebook)));
            string article = $"errata-{row.Number}-article", correct = $"errata-{row.Number}-correct";
            foreach (var tag in new[] { article, correct })
            {
                var tagged = cells.Where(c => Tags(c).Contains(tag)).ToList();
                Assert.True(tagged.Count == 1, $"{row.Notebook}: {tagged.Count} cells tagged {tag} (row {row.Number}, '{row.Title}'); expected exactly one");
                Assert.True(tagged[0]["cell_type"]!.GetValue<string>() == "code", $"{row.Notebook}: {tag} must be a code cell: it computes, it does not only state");
                Assert.False(string.IsNullOrWhiteSpace(Join(tagged[0]["source"])), $"{row.Notebook}: {tag} is empty");
            }
            int a = Index(cells, article), c = Index(cells, correct);
            Assert.True(a < c, $"{row.Notebook}: row {row.Number}'s article cell (cell {a}) must come before its correct cell (cell {c})");
            // The reader is told whose claim the first cell computes: the markdown just before it names the source articles.
            var intro = cells.Take(a).LastOrDefault(x => x["cell_type"]!.GetValue<string>() == "markdown");
            Assert.True(intro is not null && Join(intro["source"]).Contains("source articles", StringComparison.Ordinal),
                $"{row.Notebook}: the markdown before {article} does not say that the claim is the source articles'");
        }
    }

    [Fact]
    public void ReaderFacingTextNeverSpeaksOfTheSeed()
    {
        foreach (var path in Directory.GetFiles(Notebooks, "*.ipynb", SearchOption.AllDirectories))
            foreach (var cell in Cells(Load(path)))
            {
                var text = Join(cell["source"]);
                foreach (var word in new[] { "seed project", "seed text", "seed's", "the seed " })
                    Assert.False(text.Contains(word, StringComparison.OrdinalIgnoreCase), $"{Path.GetFileName(path)} says '{word}': call them the source articles\n{text}");
            }
    }

    /// <summary>On the real kernel (the shared Quick run of the whole workbook): both cells of every row ran, without an
    /// error, and each shows at least one checked claim, so the numbers it shows are guarded.</summary>
    [Fact]
    public void BothCellsOfEveryRowRanOnTheRealKernel()
    {
        var run = QuickWorkbookRun.Get();
        foreach (var chapter in Rows.GroupBy(r => r.Notebook))
        {
            var entry = ReportOf(run.Report, chapter.Key);
            Assert.True(entry["ok"]!.GetValue<bool>(), $"{chapter.Key} failed in the Quick run:\n{Pretty(entry)}");
            var executed = run.Executed(chapter.Key);
            var cells = Cells(executed);
            foreach (var row in chapter)
                foreach (var tag in new[] { $"errata-{row.Number}-article", $"errata-{row.Number}-correct" })
                {
                    int i = Index(cells, tag);
                    Assert.True(i >= 0, $"{chapter.Key}: the executed notebook has no cell tagged {tag}");
                    Assert.True(cells[i]["execution_count"]?.GetValue<int?>() is not null, $"{chapter.Key}: {tag} did not run");
                    var outputs = Outputs(executed, i);
                    Assert.DoesNotContain(outputs, o => o["output_type"]?.GetValue<string>() == "error");
                    var text = AllText(executed, i);
                    Assert.True(text.Contains('✓'), $"{chapter.Key}: {tag} shows no checked claim:\n{text}");
                    Assert.DoesNotContain("✗", text);
                }
        }
    }
}
