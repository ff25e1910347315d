using System.Reflection;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Workbook.Runtime.Kernels;

/// <summary>
/// Replaces the <c>nn.Linear</c> layers of a model by other modules in place, as PyTorch's <c>setattr(parent, name, new)</c>
/// does for <c>torch.ao.quantization.quantize_dynamic</c>: the parent's field and its registered child of that name
/// both point to the replacement afterwards, at the same position among the children (so <c>named_parameters</c> and
/// <c>state_dict</c> keep their order). A layer is replaced only where its parent holds it in a field whose type
/// accepts the replacement (e.g. <c>Module&lt;Tensor, Tensor&gt;</c>, as in <see cref="Gpt.GptModel"/>); layers held
/// as <c>Linear</c> or inside containers are left alone and counted in <see cref="Swapped.Skipped"/>.
/// </summary>
public static class LayerSwap
{
    /// <summary>One replaced layer: where it was, the original and what took its place.</summary>
    public sealed record Replacement(nn.Module Parent, string Name, string Path, Linear Original, nn.Module<Tensor, Tensor> Module);

    /// <summary>The layers replaced by one <see cref="ReplaceLinears"/> call; <see cref="Restore"/> puts the originals back.</summary>
    public sealed class Swapped
    {
        internal Swapped(List<Replacement> layers, List<string> skipped) { Layers = layers; Skipped = skipped; }

        /// <summary>The replaced layers, in model order.</summary>
        public IReadOnlyList<Replacement> Layers { get; }

        /// <summary>Paths of the Linear layers that could not be replaced (their parent's field does not accept the replacement).</summary>
        public IReadOnlyList<string> Skipped { get; }

        /// <summary>Puts every original layer back (the replacements are returned to the caller's care, not disposed).</summary>
        public void Restore()
        {
            foreach (var r in Layers.Reverse()) Set(r.Parent, r.Name, r.Module, r.Original);
        }
    }

    /// <summary>
    /// Walks <paramref name="model"/> and replaces each <c>Linear</c> for which <paramref name="replacement"/> returns a
    /// module (null keeps the layer). The function gets the layer's dotted path (e.g. <c>h.0.attn.c_attn</c>) and the layer.
    /// </summary>
    public static Swapped ReplaceLinears(nn.Module model, Func<string, Linear, nn.Module<Tensor, Tensor>?> replacement)
    {
        var done = new List<Replacement>();
        var skipped = new List<string>();
        Walk(model, "", replacement, done, skipped);
        return new Swapped(done, skipped);
    }

    static void Walk(nn.Module parent, string prefix, Func<string, Linear, nn.Module<Tensor, Tensor>?> replacement, List<Replacement> done, List<string> skipped)
    {
        foreach (var (name, child) in parent.named_children().ToList())
        {
            string path = prefix.Length == 0 ? name : $"{prefix}.{name}";
            if (child is not Linear linear) { Walk(child, path, replacement, done, skipped); continue; }
            var field = FieldOf(parent, name, child);
            if (field is null) { skipped.Add(path); continue; }
            var module = replacement(path, linear);
            if (module is null) continue;
            if (!field.FieldType.IsInstanceOfType(module)) { skipped.Add(path); continue; }
            Set(parent, name, linear, module);
            done.Add(new Replacement(parent, name, path, linear, module));
        }
    }

    static FieldInfo? FieldOf(nn.Module parent, string name, nn.Module child)
    {
        for (var t = parent.GetType(); t is not null && t != typeof(nn.Module); t = t.BaseType)
            foreach (var f in t.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
                if (f.ComponentName() == name && ReferenceEquals(f.GetValue(parent), child) && !f.IsInitOnly) return f;
        return null;
    }

    static void Set(nn.Module parent, string name, nn.Module current, nn.Module replacement)
    {
        var field = FieldOf(parent, name, current) ?? throw new InvalidOperationException($"'{name}' of {parent.GetType().Name} is no longer the layer that was swapped.");
        field.SetValue(parent, replacement);
        // The registered children are TorchSharp's OrderedDict, returned as is by named_children(); its indexer replaces in
        // place. Should a later TorchSharp return a copy, re-register (the child then moves to the end of the order).
        if (parent.named_children() is OrderedDict<string, nn.Module> children) children[name] = replacement;
        else
        {
            parent.register_module(name, null!);
            parent.register_module(name, replacement);
        }
    }
}
