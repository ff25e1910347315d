#!/usr/bin/python3
"""Recomputes the PyTorch golden tensors in tests/Workbook.Tests/Fixtures/golden from their stored inputs.

Every golden file holds inputs (`input.*`), parameters (PyTorch `state_dict` names) and expected outputs
(`expected.*`). The inputs and parameters were drawn once from seeded generators and are kept as they are; this
script recomputes every expected tensor from them with stock PyTorch (Debian's python3-torch, 1.13) in float64,
rounds once to float32, as the fixtures' README describes, and compares with the committed files.

    /usr/bin/python3 tests/golden/make_golden.py            # check: recompute everything, compare, exit 1 on a difference
    /usr/bin/python3 tests/golden/make_golden.py --write    # rewrite the expected tensors (after changing a case here)

`--write` keeps inputs, parameters, metadata and the file layout (I64 tensors first, then F32, each group by name;
header padded with spaces to a multiple of 8), so rewriting unchanged cases gives byte-identical files. It also
rewrites gpt2_tiny/model.safetensors (the same weights in Hugging Face's hub layout, plus the causal-mask buffers
`h.i.attn.bias` a loader must ignore).

Needs: python3-torch (apt install python3-torch). No other packages: safetensors is read and written here.
"""
import argparse
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "Workbook.Tests", "Fixtures", "golden")
DTYPES = {"F32": torch.float32, "I64": torch.int64}
NAMES = {v: k for k, v in DTYPES.items()}


# ---------------------------------------------------------------------------------------------------- safetensors

def read(path):
    """(tensors by name, metadata) of a safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    body = data[8 + n:]
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dtype = DTYPES[info["dtype"]]
        t = torch.frombuffer(bytearray(body[begin:end]), dtype=dtype) if end > begin else torch.empty(0, dtype=dtype)
        tensors[name] = t.reshape(info["shape"]).clone()
    return tensors, meta


def encode(tensors, meta):
    """The bytes of a safetensors file in the fixtures' layout: I64 first, then F32, each by name."""
    order = sorted(tensors, key=lambda k: (0 if tensors[k].dtype == torch.int64 else 1, k))
    header, chunks, offset = {}, [], 0
    for name in order:
        t = tensors[name].contiguous()
        raw = t.numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    header["__metadata__"] = meta
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def f64(t):
    return t.to(torch.float64)


def f32(t):
    return t.to(torch.float32) if t.is_floating_point() else t


# ---------------------------------------------------------------------------------------------------- the cases

def sdpa(g):
    q, k, v = f64(g["input.q"]), f64(g["input.k"]), f64(g["input.v"])
    causal = f64(g["input.causal_mask_additive"])
    padding = torch.zeros(g["input.key_padding_mask"].shape, dtype=torch.float64).masked_fill(g["input.key_padding_mask"].bool(), -math.inf)
    padding = padding[:, None, None, :]
    out = {}
    for variant, mask in [("none", 0.0), ("causal", causal), ("key_padding", padding), ("causal_key_padding", causal + padding)]:
        w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + mask, dim=-1)
        out[f"expected.{variant}.weights"] = w
        out[f"expected.{variant}.out"] = w @ v
    return out


def load(module, g):
    names = dict(module.state_dict())
    module.load_state_dict({k: g[k] for k in names}, strict=True)
    return module.double()


def mha(g, meta):
    m = load(torch.nn.MultiheadAttention(int(meta["embed_dim"]), int(meta["num_heads"]), batch_first=True, dropout=0.0), g)
    x = f64(g["input.x"])
    out = {}
    for variant, mask in [("none", None), ("causal", g["input.attn_mask"].bool())]:
        y, w = m(x, x, x, attn_mask=mask, need_weights=True, average_attn_weights=True)
        _, wh = m(x, x, x, attn_mask=mask, need_weights=True, average_attn_weights=False)
        out[f"expected.{variant}.out"] = y
        out[f"expected.{variant}.attn_weights"] = w
        out[f"expected.{variant}.attn_weights_per_head"] = wh
    return out


def positional_encoding(g, meta):
    def table(length, d):
        pos = torch.arange(length, dtype=torch.float64)[:, None]
        j = torch.arange(d, dtype=torch.float64)
        angle = pos * torch.pow(10000.0, -(j - j % 2) / d)
        return torch.where(j % 2 == 0, torch.sin(angle), torch.cos(angle))
    n = int(meta["max_len"])
    return {"expected.pe_even": table(n, int(meta["d_even"])), "expected.pe_odd": table(n, int(meta["d_odd"]))}


def encoder_layer(g, meta):
    m = load(torch.nn.TransformerEncoderLayer(int(meta["d_model"]), int(meta["nhead"]), int(meta["dim_feedforward"]), dropout=0.0,
                                              activation=meta["activation"], layer_norm_eps=float(meta["layer_norm_eps"]),
                                              batch_first=True, norm_first=meta["norm_first"] == "true"), g)
    m.eval()  # parameters require grad: PyTorch takes the standard (slow) path, which does not zero padded positions
    src = f64(g["input.src"])
    return {
        "expected.none.out": m(src),
        "expected.causal.out": m(src, src_mask=g["input.src_mask"].bool()),
        "expected.key_padding.out": m(src, src_key_padding_mask=g["input.src_key_padding_mask"].bool()),
    }


def decoder_layer(g, meta):
    m = load(torch.nn.TransformerDecoderLayer(int(meta["d_model"]), int(meta["nhead"]), int(meta["dim_feedforward"]), dropout=0.0,
                                              activation=meta["activation"], layer_norm_eps=float(meta["layer_norm_eps"]),
                                              batch_first=True, norm_first=meta["norm_first"] == "true"), g)
    m.eval()
    tgt, memory = f64(g["input.tgt"]), f64(g["input.memory"])
    return {"expected.none.out": m(tgt, memory), "expected.causal.out": m(tgt, memory, tgt_mask=g["input.tgt_mask"].bool())}


def losses(g, meta):
    out = {}
    pred = f64(g["input.mse.pred"]).requires_grad_()
    mse = F.mse_loss(pred, f64(g["input.mse.target"]))
    mse.backward()
    out.update({"expected.mse.mean": mse, "expected.mse.sum": F.mse_loss(pred, f64(g["input.mse.target"]), reduction="sum"),
                "expected.mse.grad_pred": pred.grad})
    eps, ignore = float(meta["label_smoothing"]), int(meta["ignore_index"])
    for variant, smoothing, target in [("ce", 0.0, "input.ce.target"), ("ce_ls", eps, "input.ce.target"),
                                       ("ce_ignore", 0.0, "input.ce.target_ignore"), ("ce_ls_ignore", eps, "input.ce.target_ignore")]:
        logits = f64(g["input.ce.logits"]).requires_grad_()
        mean = F.cross_entropy(logits, g[target], ignore_index=ignore, label_smoothing=smoothing)
        mean.backward()
        out[f"expected.{variant}.mean"] = mean
        out[f"expected.{variant}.none"] = F.cross_entropy(logits, g[target], ignore_index=ignore, label_smoothing=smoothing, reduction="none")
        out[f"expected.{variant}.grad_logits"] = logits.grad
    for variant in ["bce", "bce_extreme"]:
        logits = f64(g[f"input.{variant}.logits"]).requires_grad_()
        y = f64(g[f"input.{variant}.target"])
        mean = F.binary_cross_entropy_with_logits(logits, y)
        out[f"expected.{variant}.mean"] = mean
        out[f"expected.{variant}.none"] = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
        if variant == "bce":
            mean.backward()
            out["expected.bce.grad_logits"] = logits.grad
    s = f64(g["input.hinge.scores"]).requires_grad_()
    y = f64(g["input.hinge.target"])
    none = (1 - y * s).clamp_min(0)
    none.mean().backward()
    out.update({"expected.hinge.none": none, "expected.hinge.mean": none.mean(), "expected.hinge.grad_scores": s.grad,
                "expected.hinge_embedding.mean": F.hinge_embedding_loss(f64(g["input.hinge.scores"]), y, margin=1.0)})
    logits = f64(g["input.multimargin.logits"]).requires_grad_()
    mm = F.multi_margin_loss(logits, g["input.multimargin.target"])
    mm.backward()
    out.update({"expected.multimargin.mean": mm, "expected.multimargin.grad_logits": logits.grad,
                "expected.multimargin.none": F.multi_margin_loss(logits, g["input.multimargin.target"], reduction="none")})
    return out


OPTIMIZERS = {
    "sgd": lambda ps: torch.optim.SGD(ps, lr=0.1),
    "sgd_momentum": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
    "adam": lambda ps: torch.optim.Adam(ps, lr=0.01),
    "adam_l2": lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1),
}


def optimizer_runs(names, initial, loss_of, steps):
    """Per optimizer: the loss before each of `steps` steps and the parameters after each."""
    out = {}
    params = {n: f64(initial[n]).requires_grad_() for n in names}
    loss = loss_of(params)
    loss.backward()
    out["expected.initial_loss"] = loss
    for n in names:
        out[f"expected.initial_grad.{n}"] = params[n].grad
    for opt_name, make in OPTIMIZERS.items():
        params = {n: f64(initial[n]).requires_grad_() for n in names}
        opt = make([params[n] for n in names])
        losses_before = []
        for k in range(1, steps + 1):
            opt.zero_grad()
            loss = loss_of(params)
            loss.backward()
            opt.step()
            losses_before.append(loss.detach())
            for n in names:
                out[f"expected.{opt_name}.step_{k}.{n}"] = params[n].detach().clone()
        out[f"expected.{opt_name}.loss"] = torch.stack(losses_before)
    return out


def optim_mlp(g, meta):
    names = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    x, y = f64(g["input.x"]), f64(g["input.y"])
    def loss_of(p):
        h = torch.tanh(x @ p["fc1.weight"].T + p["fc1.bias"])
        return F.mse_loss(h @ p["fc2.weight"].T + p["fc2.bias"], y)
    return optimizer_runs(names, g, loss_of, int(meta["steps"]))


def optim_quadratic(g, meta):
    a, c = f64(g["input.a"]), f64(g["input.c"])
    return optimizer_runs(["w"], g, lambda p: 0.5 * (a * (p["w"] - c) ** 2).sum(), int(meta["steps"]))


def simple_cnn(g, meta):
    names = ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc.weight", "fc.bias"]
    p = {n: f64(g[n]).requires_grad_() for n in names}
    x = f64(g["input.x"])
    pool1 = F.max_pool2d(F.relu(F.conv2d(x, p["conv1.weight"], p["conv1.bias"], padding=1)), 2)
    pool2 = F.max_pool2d(F.relu(F.conv2d(pool1, p["conv2.weight"], p["conv2.bias"], padding=1)), 2)
    logits = pool2.flatten(1) @ p["fc.weight"].T + p["fc.bias"]
    loss = F.cross_entropy(logits, g["input.target"])
    loss.backward()
    out = {"expected.pool1": pool1, "expected.pool2": pool2, "expected.logits": logits, "expected.loss": loss}
    out.update({f"expected.grad.{n}": p[n].grad for n in names})
    return out


def gpt2_forward(p, cfg, ids, past=None):
    """GPT-2 (pre-LN, tanh GELU, tied head) in float64; returns logits, hidden states and the new cache."""
    E, H, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    eps = cfg["layer_norm_epsilon"]
    B, T = ids.shape
    past_len = 0 if past is None else past[0][0].shape[2]
    pos = torch.arange(past_len, past_len + T)

    def ln(x, name):
        return F.layer_norm(x, (E,), p[name + ".weight"], p[name + ".bias"], eps)

    def gelu_new(x):
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))

    h = p["wte.weight"][ids] + p["wpe.weight"][pos]
    hidden = [h]
    cache = []
    for i in range(L):
        pre = f"h.{i}."
        qkv = ln(h, pre + "ln_1") @ p[pre + "attn.c_attn.weight"] + p[pre + "attn.c_attn.bias"]
        q, k, v = (t.view(B, T, H, E // H).transpose(1, 2) for t in qkv.split(E, dim=-1))
        if past is not None:
            k = torch.cat([past[i][0], k], dim=2)
            v = torch.cat([past[i][1], v], dim=2)
        cache.append((k, v))
        scores = q @ k.transpose(-1, -2) / math.sqrt(E // H)
        allowed = torch.arange(k.shape[2])[None, :] <= pos[:, None]
        att = torch.softmax(scores.masked_fill(~allowed, -math.inf), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, E)
        h = h + y @ p[pre + "attn.c_proj.weight"] + p[pre + "attn.c_proj.bias"]
        m = gelu_new(ln(h, pre + "ln_2") @ p[pre + "mlp.c_fc.weight"] + p[pre + "mlp.c_fc.bias"])
        h = h + m @ p[pre + "mlp.c_proj.weight"] + p[pre + "mlp.c_proj.bias"]
        hidden.append(h)
    final = ln(h, "ln_f")
    return final @ p["wte.weight"].T, hidden, final, cache


def gpt2_tiny(g, meta):
    cfg = json.loads(meta["config"])
    p = {k: f64(v) for k, v in g.items() if not k.startswith(("input.", "expected."))}
    ids = g["input.input_ids"]
    logits, hidden, final, _ = gpt2_forward(p, cfg, ids)
    out = {"expected.logits": logits, "expected.hidden.embeddings": hidden[0], "expected.hidden.ln_f": final}
    for i in range(cfg["n_layer"]):
        out[f"expected.hidden.block_{i}"] = hidden[i + 1]
    # Feeding the input in two halves through the cache gives the same logits.
    half = ids.shape[1] // 2
    first, _, _, cache = gpt2_forward(p, cfg, ids[:, :half])
    second, _, _, _ = gpt2_forward(p, cfg, ids[:, half:], cache)
    assert (torch.cat([first, second], 1) - logits).abs().max() < 1e-12, "cached halves differ from the full pass"

    prompt = g["input.prompt_ids"]
    _, _, _, cache = gpt2_forward(p, cfg, prompt)
    for i, (k, v) in enumerate(cache):
        out[f"expected.kv_cache.prompt.h.{i}.key"] = k
        out[f"expected.kv_cache.prompt.h.{i}.value"] = v
    sequence, step_logits, margins = prompt, [], []
    for _ in range(12):
        last = gpt2_forward(p, cfg, sequence)[0][:, -1]          # full recompute each step
        step_logits.append(last)
        top = last.topk(2, dim=-1).values
        margins.append(float(top[0, 0] - top[0, 1]))
        sequence = torch.cat([sequence, last.argmax(-1, keepdim=True)], dim=1)
    out["expected.greedy.step_logits"] = torch.stack(step_logits, dim=1)
    out["expected.greedy.sequence"] = sequence
    out["expected.greedy.new_tokens"] = sequence[:, prompt.shape[1]:]
    out["expected.greedy.full_logits"] = gpt2_forward(p, cfg, sequence[:, :-1])[0]
    assert min(margins) >= 2e-3, f"a greedy step is too close to a tie (margin {min(margins)})"
    return out


CASES = {
    "sdpa": lambda g, meta: sdpa(g),
    "mha": mha,
    "positional_encoding": positional_encoding,
    "transformer_encoder_layer_post_ln": encoder_layer,
    "transformer_encoder_layer_pre_ln": encoder_layer,
    "transformer_decoder_layer": decoder_layer,
    "losses": losses,
    "optim_mlp": optim_mlp,
    "optim_quadratic": optim_quadratic,
    "simple_cnn": simple_cnn,
    "gpt2_tiny": gpt2_tiny,
}


def hub_checkpoint(g, meta):
    """gpt2_tiny/model.safetensors: the weights without inputs and outputs, plus HF's causal-mask buffers."""
    cfg = json.loads(meta["config"])
    weights = {k: v for k, v in g.items() if not k.startswith(("input.", "expected."))}
    P = cfg["n_positions"]
    for i in range(cfg["n_layer"]):
        weights[f"h.{i}.attn.bias"] = torch.tril(torch.ones(P, P)).view(1, 1, P, P)
    return weights


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the expected tensors instead of only comparing")
    parser.add_argument("--folder", default=GOLDEN, help="the golden folder (default: the test fixtures)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the same reductions in the same order on every machine
    failures = 0
    for case, compute in CASES.items():
        path = os.path.join(args.folder, case + ".safetensors")
        g, meta = read(path)
        computed = {k: f32(v.detach()) for k, v in compute(g, meta).items()}
        expected = sorted(k for k in g if k.startswith("expected."))
        missing = sorted(set(expected) ^ set(computed))
        worst, identical = 0.0, 0
        for name in expected:
            if name not in computed:
                continue
            a, b = computed[name], g[name]
            if a.shape != b.shape or a.dtype != b.dtype:
                missing.append(f"{name} {list(a.shape)} {a.dtype} vs {list(b.shape)} {b.dtype}")
                continue
            if torch.equal(a, b):
                identical += 1
                continue
            diff = (f64(a) - f64(b)).abs()
            finite = torch.isfinite(f64(b))
            worst = max(worst, float(diff[finite].max()) if finite.any() else 0.0)
            if not torch.equal(torch.isfinite(a), finite):
                missing.append(f"{name}: non-finite entries differ")
        ok = not missing and worst <= 1e-6
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {case}: {identical}/{len(expected)} expected tensors bit-identical, "
              f"max |diff| of the others {worst:.2e}" + (f"; mismatched: {', '.join(missing)}" if missing else ""))
        if args.write:
            g.update(computed)
            data = encode(g, meta)
            with open(path, "wb") as f:
                f.write(data)
    hub = os.path.join(args.folder, "gpt2_tiny", "model.safetensors")
    g, meta = read(os.path.join(args.folder, "gpt2_tiny.safetensors"))
    weights = hub_checkpoint(g, meta)
    stored, hub_meta = read(hub)
    same = set(weights) == set(stored) and all(torch.equal(weights[k], stored[k]) for k in weights)
    failures += not same
    print(f"{'ok  ' if same else 'FAIL'} gpt2_tiny/model.safetensors: {'the same weights and mask buffers' if same else 'differs'}")
    if args.write:
        with open(hub, "wb") as f:
            f.write(encode(weights, hub_meta))
    return 1 if failures and not args.write else 0


if __name__ == "__main__":
    sys.exit(main())
