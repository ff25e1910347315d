#!/usr/bin/python3
"""PyTorch side of the Workbook bench (tools/Workbook.Bench): the same workloads as the C# classes, run with the
parameters the C# side passes (--params JSON), float32, --threads intra-op threads.

    pytorch_bench.py --info [--threads N]
    pytorch_bench.py --workload NAME --params JSON [--threads N]

The last line of stdout is "BENCH_RESULT " + JSON: {"rows": [{"name", "samples", "extra"}]} or the --info object.
Exit code 3 when torch cannot be imported.
"""
import argparse
import gc
import itertools
import json
import math
import os
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # the C# side reports "python has no torch"
    print(f"torch not importable: {e}", file=sys.stderr)
    sys.exit(3)


def emit(obj):
    print("BENCH_RESULT " + json.dumps(obj), flush=True)


def time_reps(reps, warmup, fn):
    """Seconds per measured call of fn, after `warmup` unmeasured calls (like Stats.TimeReps in C#)."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def rss_breakdown(top=12):
    """MiB of resident memory per mapped file and for anonymous memory, from /proc/self/smaps (as Stats.RssBreakdown)."""
    by_name, current = {}, "[anonymous]"
    with open("/proc/self/smaps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and "-" in parts[0] and not line.rstrip().endswith(":"):
                current = (parts[5] if parts[5].startswith("[") else os.path.basename(" ".join(parts[5:]))) if len(parts) >= 6 else "[anonymous]"
                continue
            if len(parts) >= 2 and parts[0] == "Rss:":
                by_name[current] = by_name.get(current, 0.0) + int(parts[1]) / 1024.0
    items = sorted(by_name.items(), key=lambda kv: -kv[1])
    out = {"total_mib": round(sum(by_name.values()), 1)}
    out.update({k: round(v, 1) for k, v in items[:top]})
    out["other_mib"] = round(sum(v for _, v in items[top:]), 1)
    return out


def live_tensors():
    return sum(1 for o in gc.get_objects() if torch.is_tensor(o))


def blas_loaded():
    """The BLAS/LAPACK shared objects this process has mapped (after a matmul has forced them in)."""
    a = torch.randn(64, 64)
    (a @ a).sum().item()
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            name = os.path.basename(path)
            if any(k in name for k in ("blas", "lapack", "mkl", "blis")):
                libs.add(os.path.realpath(path))
    return sorted(libs)


# ----------------------------------------------------------------------------------------------- models (same as C#)

def mlp(sizes):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i + 2 < len(sizes):
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class SimpleCNN(nn.Module):
    """Notebook 06's CNN: conv 1->8 -> relu -> pool -> conv 8->16 -> relu -> pool -> linear 784->10."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        return self.fc(h.flatten(1))


def sdpa(q, k, v, causal):
    """Attention as torch 1.13 can do it: explicit math (F.scaled_dot_product_attention arrived in 2.0)."""
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.size(-1)))
    if causal:
        T, S = q.size(-2), k.size(-2)
        mask = torch.ones(T, S, dtype=torch.bool).tril(diagonal=S - T)
        att = att.masked_fill(~mask, float("-inf"))
    return att.softmax(-1) @ v


class CausalSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_head, self.n_embd = c["n_head"], c["n_embd"]
        self.c_attn = nn.Linear(self.n_embd, 3 * self.n_embd)
        self.c_proj = nn.Linear(self.n_embd, self.n_embd)

    def forward(self, x, cache=None, layer=0):
        B, T, E = x.shape
        hd = E // self.n_head
        q, k, v = self.c_attn(x).split(E, dim=2)
        q = q.view(B, T, self.n_head, hd).transpose(1, 2)
        k = k.view(B, T, self.n_head, hd).transpose(1, 2)
        v = v.view(B, T, self.n_head, hd).transpose(1, 2)
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.append(layer, k, v)
        y = sdpa(q, k, v, causal=not (past > 0 and T == 1))
        y = y.transpose(1, 2).contiguous().view(B, T, E)
        return self.c_proj(y)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c["n_embd"])
        self.attn = CausalSelfAttention(c)
        self.ln_2 = nn.LayerNorm(c["n_embd"])
        self.c_fc = nn.Linear(c["n_embd"], 4 * c["n_embd"])
        self.c_proj = nn.Linear(4 * c["n_embd"], c["n_embd"])

    def forward(self, x, cache=None, layer=0):
        x = x + self.attn(self.ln_1(x), cache, layer)
        return x + self.c_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class KvCache:
    """Preallocated keys/values, written in place (as Workbook.Gpt.KvCache)."""

    def __init__(self, c, batch, capacity, dtype=torch.float32):
        hd = c["n_embd"] // c["n_head"]
        self.k = [torch.zeros(batch, c["n_head"], capacity, hd, dtype=dtype) for _ in range(c["n_layer"])]
        self.v = [torch.zeros(batch, c["n_head"], capacity, hd, dtype=dtype) for _ in range(c["n_layer"])]
        self.length = 0

    def append(self, layer, k, v):
        t = k.size(2)
        self.k[layer][:, :, self.length:self.length + t].copy_(k)
        self.v[layer][:, :, self.length:self.length + t].copy_(v)
        return self.k[layer][:, :, :self.length + t], self.v[layer][:, :, :self.length + t]


class GPT(nn.Module):
    """GPT-2 as Workbook.Gpt.GptModel: learned positions, pre-LN blocks, tanh GELU, LM head tied to wte."""

    def __init__(self, c):
        super().__init__()
        self.wte = nn.Embedding(c["vocab"], c["n_embd"])
        self.wpe = nn.Embedding(c["n_positions"], c["n_embd"])
        self.h = nn.ModuleList(Block(c) for _ in range(c["n_layer"]))
        self.ln_f = nn.LayerNorm(c["n_embd"])
        self.lm_head = nn.Linear(c["n_embd"], c["vocab"], bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying, as nanoGPT and Hugging Face write it
        for name, p in self.named_parameters():
            if name.endswith(".bias"):
                nn.init.zeros_(p)
            elif "ln_" in name:
                nn.init.ones_(p)
            else:
                nn.init.normal_(p, 0.0, 0.02)

    def forward(self, idx, cache=None, last_only=False):
        past = cache.length if cache is not None else 0
        T = idx.size(1)
        pos = torch.arange(past, past + T).unsqueeze(0)
        x = self.wte(idx) + self.wpe(pos)
        for i, block in enumerate(self.h):
            x = block(x, cache, i)
        if cache is not None:
            cache.length += T
        x = self.ln_f(x)
        if last_only:  # generation needs the last position's logits only (nanoGPT's inference path)
            x = x[:, -1:, :]
        return self.lm_head(x)


def greedy(model, prompt, new_tokens, use_cache):
    out = []
    with torch.no_grad():
        if use_cache:
            # The cache holds what the model computes: bf16 keys and values for model.bfloat16().
            cache = KvCache(model.c, 1, prompt.size(1) + new_tokens, next(model.parameters()).dtype)
            nxt = prompt
            for _ in range(new_tokens):
                nxt = model(nxt, cache, last_only=True)[:, -1, :].argmax(-1, keepdim=True)
                out.append(nxt.item())
        else:
            seq = prompt
            for _ in range(new_tokens):
                nxt = model(seq, last_only=True)[:, -1, :].argmax(-1, keepdim=True)
                out.append(nxt.item())
                seq = torch.cat([seq, nxt], 1)
    return out


def gpt_config(p, block_key="n_positions"):
    return {"vocab": p["vocab"], "n_positions": p[block_key], "n_layer": p["n_layer"], "n_head": p["n_head"], "n_embd": p["n_embd"]}


def make_gpt(c):
    m = GPT(c)
    m.c = c
    return m


# ----------------------------------------------------------------------------------------------------- workloads

def train_samples_per_s(model, x, y, batch, steps, reps):
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def run():
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
    return [batch * steps / s for s in time_reps(reps, 2, run)]  # two warm-ups, as on the C# side


def w_mlp(p):
    torch.manual_seed(0)
    model = mlp(p["sizes"])
    x, y = torch.randn(p["batch"], p["sizes"][0]), torch.randint(p["sizes"][-1], (p["batch"],))
    return [{"name": "mlp_train", "samples": train_samples_per_s(model, x, y, p["batch"], p["steps"], p["reps"])}]


def w_cnn(p):
    torch.manual_seed(0)
    model = SimpleCNN()
    x, y = torch.rand(p["batch"], 1, 28, 28), torch.randint(10, (p["batch"],))
    return [{"name": "cnn_train", "samples": train_samples_per_s(model, x, y, p["batch"], p["steps"], p["reps"])}]


def w_attention(p):
    torch.manual_seed(0)
    q, k, v = (torch.randn(*p["shape"]) for _ in range(3))
    iters, reps = p["iters"], p["reps"]

    def ms(fn):
        def run():
            for _ in range(iters):
                fn()
        return [s * 1000 / iters for s in time_reps(reps, 1, run)]
    rows = []
    with torch.no_grad():
        rows.append({"name": "attn_explicit", "samples": ms(lambda: sdpa(q, k, v, False))})
        # torch 1.13 has only a private, unfused math version (the fused kernels arrived in 2.0).
        private = getattr(F, "_scaled_dot_product_attention", None)
        public = getattr(F, "scaled_dot_product_attention", None)
        if public is not None:
            rows.append({"name": "attn_fused", "samples": ms(lambda: public(q, k, v)), "extra": {"impl": "F.scaled_dot_product_attention"}})
        elif private is not None:
            rows.append({"name": "attn_fused", "samples": ms(lambda: private(q, k, v, None, 0.0, False, False)),
                         "extra": {"impl": "F._scaled_dot_product_attention (torch 1.13, math path, not fused)"}})
    return rows


def copy_gbs(numel, iters, reps):
    src, dst = torch.randn(numel), torch.empty(numel)

    def run():
        for _ in range(iters):
            dst.copy_(src)
    return [2.0 * numel * 4 * iters / s / 1e9 for s in time_reps(reps, 1, run)]


def read_gbs(numel, iters, reps):
    src = torch.randn(numel)

    def run():
        for _ in range(iters):
            src.sum()
    return [numel * 4 * iters / s / 1e9 for s in time_reps(reps, 1, run)]


def w_bandwidth(p):
    numel, iters, reps = p["numel"], p["iters"], p["reps"]
    return [{"name": "copy_bandwidth", "samples": copy_gbs(numel, iters, reps)},
            {"name": "read_bandwidth", "samples": read_gbs(numel, iters, reps)}]


def w_chargpt(p):
    torch.manual_seed(0)
    c = gpt_config(p, "block")
    model = make_gpt(c)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=p["lr"], betas=(0.9, 0.99), weight_decay=p["weight_decay"])
    B, T, steps = p["batch"], p["block"], p["steps"]
    batches = []
    for _ in range(4):
        seq = torch.randint(c["vocab"], (B, T + 1))
        batches.append((seq[:, :T].contiguous(), seq[:, 1:].contiguous()))
    state = {"step": 0}

    def run():
        for _ in range(steps):
            x, y = batches[state["step"] % len(batches)]
            state["step"] += 1
            opt.zero_grad(set_to_none=True)
            logits = model(x)
            F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1)).backward()
            opt.step()
    secs = time_reps(p["reps"], 2, run)
    # Where a step's time goes (one more pass, phases timed apart), as on the C# side.
    fwd = bwd = step = 0.0
    for s in range(steps):
        x, y = batches[s % len(batches)]
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        fwd, bwd, step = fwd + (t1 - t0) * 1000, bwd + (t2 - t1) * 1000, step + (t3 - t2) * 1000
    n = sum(q.numel() for q in model.parameters())
    return [{"name": "chargpt_train", "samples": [B * T * steps / s for s in secs],
             "extra": {"parameters": n, "attention": "explicit (torch 1.13 has no fused sdpa)",
                       "forward_ms_per_step": fwd / steps, "backward_ms_per_step": bwd / steps, "optimizer_ms_per_step": step / steps}}]


def w_decode(prefix):
    """GPT-2 at the given shape: float32 cached and uncached greedy decode, bf16 (model.bfloat16(): bf16 weights and
    activations) and int8 (quantize_dynamic: PyTorch's CPU int8 path, weights and activations int8), forward [1,T]
    with all logits and with the last position's only. The plain rows repeat the float32 figures: PyTorch has one path."""
    def run(p):
        torch.manual_seed(0)
        c = gpt_config(p)
        model = make_gpt(c)
        model.eval()
        reps, new = p["reps"], p["new_tokens"]
        prompt = torch.randint(c["vocab"], (1, p["prompt"]))
        res = {}

        def decode(m, key):
            greedy(m, prompt, min(4, new), True)  # warm-up on a few tokens only, as on the C# side
            return [new / s for s in time_reps(p["reps_fast"], 1, lambda: res.__setitem__(key, greedy(m, prompt, new, True)))]
        cached = decode(model, "a")
        n = sum(q.numel() for q in model.parameters())
        bw = copy_gbs(p["copy_numel"], 5, 3)  # right after the decode, as on the C# side
        rbw = read_gbs(p["copy_numel"], 5, 3)
        bound = [g * 1e9 / (n * 4) for g in bw]
        greedy(model, prompt, min(4, new), False)
        recompute = [new / s for s in time_reps(reps, 0, lambda: res.__setitem__("b", greedy(model, prompt, new, False)))]
        x = torch.randint(c["vocab"], (1, p["forward_T"]))

        def fwd(last_only):
            def f():
                with torch.no_grad():
                    model(x, last_only=last_only)
            return [s * 1000 for s in time_reps(p["reps_fast"], 2, f)]
        forward, prefill = fwd(False), fwd(True)
        bf16_model = make_gpt(c)
        bf16_model.load_state_dict(model.state_dict())
        bf16_model = bf16_model.bfloat16().eval()
        bf16_model.c = c
        bf16 = decode(bf16_model, "bf16")
        int8_model = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
        int8_model.c = c
        int8 = decode(int8_model, "int8")
        med = lambda xs: sorted(xs)[len(xs) // 2]
        agree = lambda key: sum(1 for _ in itertools.takewhile(lambda t: t[0] == t[1], zip(res[key], res["a"])))
        extra = {"parameters": n, "weight_bytes_per_token": n * 4, "copy_bandwidth_gbs": med(bw),
                 "fraction_of_bound": med(cached) / med(bound), "cache_speedup": med(cached) / med(recompute),
                 "read_bandwidth_gbs": med(rbw), "fraction_of_read_bound": med(cached) * n * 4 / (med(rbw) * 1e9),
                 "cache_and_recompute_agree": res["a"] == res["b"],
                 "bf16": "model.bfloat16(): bf16 weights and activations", "int8": "torch.ao.quantization.quantize_dynamic(Linear, qint8): int8 weights and activations (fbgemm)",
                 "int8_speedup_over_fp32": med(int8) / med(cached), "bf16_speedup_over_fp32": med(bf16) / med(cached),
                 "bf16_greedy_tokens_equal_fp32": f"{agree('bf16')} of {new}", "int8_greedy_tokens_equal_fp32": f"{agree('int8')} of {new}"}
        return [{"name": f"{prefix}_decode_cache", "samples": cached, "extra": extra},
                {"name": f"{prefix}_decode_plain", "samples": cached},
                {"name": f"{prefix}_decode_bf16", "samples": bf16},
                {"name": f"{prefix}_decode_int8", "samples": int8},
                {"name": f"{prefix}_decode_nocache", "samples": recompute},
                {"name": f"{prefix}_decode_bound", "samples": bound},
                {"name": f"{prefix}_forward_128", "samples": forward},
                {"name": f"{prefix}_forward_128_plain", "samples": forward},
                {"name": f"{prefix}_prefill_128", "samples": prefill}]
    return run


def series(name, xs, more=None):
    kept = xs[max(1, len(xs) // 10):]
    extra = {"growth": kept[-1] - kept[0], "growth_pct": (kept[-1] - kept[0]) / kept[0] * 100 if kept[0] else 0.0,
             "series": [round(v, 2) for v in xs]}
    extra.update(more or {})
    return {"name": name, "samples": kept, "extra": extra}


def w_memory(p):
    steps, tokens, samples, batch = p["train_steps"], p["generate_tokens"], p["samples"], p["batch"]
    torch.manual_seed(0)
    model = mlp(p["sizes"])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(batch, p["sizes"][0]), torch.randint(p["sizes"][-1], (batch,))
    tr_rss, tr_live = [], []
    every = max(1, steps // samples)
    for s in range(1, steps + 1):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if s % every == 0:
            tr_rss.append(rss_mib())
            tr_live.append(live_tensors())
    tr_breakdown = rss_breakdown(10)
    del model, opt
    c = gpt_config(p)
    g = make_gpt(c)
    g.eval()
    cache = KvCache(c, 1, p["prompt"] + tokens)
    nxt = torch.randint(c["vocab"], (1, p["prompt"]))
    ge_rss, ge_live = [], []
    every = max(1, tokens // samples)
    with torch.no_grad():
        for i in range(1, tokens + 1):
            nxt = g(nxt, cache, last_only=True)[:, -1, :].argmax(-1, keepdim=True)
            if i % every == 0:
                ge_rss.append(rss_mib())
                ge_live.append(live_tensors())
    return [series("memory_train_rss", tr_rss, {"rss_breakdown": tr_breakdown}), series("memory_train_live_tensors", tr_live),
            series("memory_generate_rss", ge_rss, {"rss_breakdown": rss_breakdown(10)}), series("memory_generate_live_tensors", ge_live)]


def w_linear(p):
    torch.manual_seed(0)
    shape, out, iters, reps = p["shape"], p["out"], p["iters"], p["reps"]
    layer = nn.Linear(shape[-1], out)
    x = torch.randn(*shape, requires_grad=True)

    def ms(fn):
        def run():
            for _ in range(iters):
                fn().sum().backward()
        return [s * 1000 / iters for s in time_reps(reps, 1, run)]

    def folded():
        return torch.addmm(layer.bias, x.reshape(-1, shape[-1]), layer.weight.t()).view(*shape[:-1], out)
    return [{"name": "linear3d_module", "samples": ms(lambda: layer(x))}, {"name": "linear3d_addmm", "samples": ms(folded)}]


WORKLOADS = {"linear": w_linear, "mlp": w_mlp, "cnn": w_cnn, "attention": w_attention, "bandwidth": w_bandwidth,
             "chargpt": w_chargpt, "gpt2": w_decode("gpt2"), "shipped": w_decode("shipped"), "memory": w_memory}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--info", action="store_true")
    ap.add_argument("--workload")
    ap.add_argument("--params", default="{}")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.info:
        emit({"torch": torch.__version__, "python": sys.version.split()[0], "threads": torch.get_num_threads(),
              "blas": ", ".join(blas_loaded()) or "none found in /proc/self/maps",
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
              "config": torch.__config__.show().strip().splitlines()[:8]})
        return
    if a.workload not in WORKLOADS:
        print(f"unknown workload '{a.workload}'; expected one of {', '.join(WORKLOADS)}", file=sys.stderr)
        sys.exit(2)
    emit({"rows": WORKLOADS[a.workload](json.loads(a.params))})


if __name__ == "__main__":
    main()
