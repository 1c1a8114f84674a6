#!/usr/bin/env python3
"""The PyTorch peer of `mlxn bench model`: the same model shape built with
Hugging Face transformers from a config.json (the one `mlxn convert
--random PRESET` writes), random bf16 weights, timed like llama-bench on
the GPU:

  ppN  one N-token forward pass into an empty static KV cache, logits of
       the last token only (eager: prompt processing is bound by matrix
       products, where CUDA graphs change little);
  tgN  N one-token forward passes from an empty static cache, each with
       the last token's logits, through torch.compile(mode="reduce-overhead")
       (CUDA graphs); eager when compiling fails, and the output says so.

Every run is bracketed by torch.cuda.synchronize() and a host clock; the
figure is the median of --reps runs after --warmup untimed ones (the first
compiled runs compile and record the graphs). Beside each decode figure:
ms per token, the weight bytes one step reads (every parameter once, but
one row of an untied input embedding) times tok/s, and its percentage of a
device-to-device copy measured in this process (bytes read + written).
Nothing is downloaded: the model is built from the config alone.

  python3 bench/peer_torch_model.py --config MODEL_DIR [-p 512] [-n 128]
      [-r 5] [--warmup 2] [--no-compile] [--json]
"""
import argparse
import json
import os
import statistics
import sys
import time


def load_config(path):
    """transformers config from our config.json (quantization dropped: the
    peer runs bf16 weights)."""
    from transformers import AutoConfig

    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
    with open(path) as f:
        raw = json.load(f)
    raw.pop("quantization", None)
    raw.pop("quantization_config", None)
    model_type = raw.pop("model_type")
    raw["torch_dtype"] = "bfloat16"
    cfg = AutoConfig.for_model(model_type, **raw)
    return model_type, cfg


def copy_bandwidth(torch, nbytes=1 << 30, reps=20):
    """Median device-to-device copy bandwidth, bytes read + written, GB/s."""
    a = torch.empty(nbytes, dtype=torch.uint8, device="cuda").random_(0, 255)
    b = torch.empty_like(a)
    b.copy_(a)
    times = []
    for _ in range(reps):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        b.copy_(a)
        e1.record()
        e1.synchronize()
        times.append(e0.elapsed_time(e1) * 1e-3)
    del a, b
    torch.cuda.empty_cache()
    return 2 * nbytes / statistics.median(times) / 1e9


def decode_weight_bytes(model, cfg):
    """Bytes of parameters one decode step reads."""
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    emb = model.get_input_embeddings().weight
    tied = model.get_output_embeddings() is not None and model.get_output_embeddings().weight is emb
    if not tied:
        eb = emb.numel() * emb.element_size()
        total -= eb - eb // emb.shape[0]
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="model directory or config.json")
    ap.add_argument("--name", help="label for the output (default: the directory name)")
    ap.add_argument("-p", "--n-prompt", type=int, default=512)
    ap.add_argument("-n", "--n-gen", type=int, default=128)
    ap.add_argument("-r", "--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--no-compile", action="store_true", help="decode eagerly (no torch.compile)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="one JSON object per test, one per line")
    a = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the network
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, StaticCache

    if not torch.cuda.is_available():
        print("peer_torch_model: skipped: no CUDA device", file=sys.stderr)
        return 77
    name = a.name or os.path.basename(os.path.normpath(a.config))
    model_type, cfg = load_config(a.config)
    torch.manual_seed(a.seed)
    torch.set_grad_enabled(False)
    t0 = time.perf_counter()
    # built on the GPU directly: initialising an 8B model's random weights on the host takes minutes
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
    model = model.to(torch.bfloat16).eval()
    build_s = time.perf_counter() - t0
    wbytes = decode_weight_bytes(model, cfg)
    copy_gbs = copy_bandwidth(torch)
    dev = torch.cuda.get_device_name()
    longest = max(a.n_prompt, a.n_gen, 1)
    cache = StaticCache(config=model.config, max_cache_len=longest)
    g = torch.Generator(device="cuda").manual_seed(a.seed)
    ids = torch.randint(0, cfg.vocab_size, (1, longest), device="cuda", generator=g)

    def forward(tok, pos):
        return model(input_ids=tok, position_ids=pos.unsqueeze(0), cache_position=pos, past_key_values=cache,
                     use_cache=True, logits_to_keep=1).logits

    # the static cache allocates its tensors at the first update: make that happen eagerly, so they
    # live outside the CUDA graphs' memory pool (a graph replay would otherwise own them)
    forward(ids[:, :1], torch.arange(1, device="cuda"))
    cache.reset()
    step, mode = forward, "eager, static cache"

    def compile_decode():
        nonlocal step, mode
        if a.no_compile:
            return
        try:
            compiled = torch.compile(forward, mode="reduce-overhead", fullgraph=True)

            def graphed(tok, pos):
                torch.compiler.cudagraph_mark_step_begin()  # each call is a new step: outputs may be reused
                return compiled(tok, pos)

            cache.reset()
            for i in range(3):  # compile and record now, so a failure falls back before timing
                graphed(ids[:, i:i + 1], torch.tensor([i], device="cuda"))
            torch.cuda.synchronize()
            step, mode = graphed, "torch.compile reduce-overhead (CUDA graphs), static cache"
        except Exception as e:  # noqa: BLE001 - any compile failure falls back, and says so
            print(f"peer_torch_model: torch.compile failed ({type(e).__name__}: {str(e)[:300]}); decoding eagerly",
                  file=sys.stderr)
            step, mode = forward, "eager (torch.compile failed), static cache"

    positions = [torch.tensor([i], device="cuda") for i in range(longest)]

    def run_pp(n):
        cache.reset()
        torch.cuda.synchronize()
        t = time.perf_counter()
        forward(ids[:, :n], torch.arange(n, device="cuda"))
        torch.cuda.synchronize()
        return n / (time.perf_counter() - t)

    def run_tg(n):
        cache.reset()
        torch.cuda.synchronize()
        t = time.perf_counter()
        for i in range(n):
            step(ids[:, i:i + 1], positions[i])
        torch.cuda.synchronize()
        return n / (time.perf_counter() - t)

    rows = []
    tests = ([("pp", a.n_prompt)] if a.n_prompt > 0 else []) + ([("tg", a.n_gen)] if a.n_gen > 0 else [])
    for kind, n in tests:  # prompts first (eager), then decode (compiled once, here)
        if kind == "tg":
            compile_decode()
        fn = run_pp if kind == "pp" else run_tg
        for _ in range(a.warmup):
            fn(n)
        samples = [fn(n) for _ in range(a.reps)]
        med = statistics.median(samples)
        gen = kind == "tg"
        gbs = wbytes * med / 1e9 if gen else None
        rows.append({
            "peer": "pytorch", "model": name, "model_type": model_type, "device": dev, "test": f"{kind}{n}",
            "n_prompt": 0 if gen else n, "n_gen": n if gen else 0, "reps": a.reps, "samples_ts": samples,
            "median_ts": med, "min_ts": min(samples), "max_ts": max(samples), "ms_per_token": 1e3 / med,
            "decode_weight_bytes": wbytes, "gb_s": gbs, "copy_gb_s": copy_gbs,
            "pct_of_copy": 100 * gbs / copy_gbs if gen else None, "dtype": "bfloat16", "kv_dtype": "bfloat16",
            "mode": mode if gen else "eager, static cache", "torch": torch.__version__,
            "transformers": transformers.__version__, "build_s": build_s,
        })
    if a.json:
        for r in rows:
            print(json.dumps(r))
    else:
        print(f"model: {name} ({model_type}, bf16, {wbytes / 1e6:.1f} MB read per decode step), device: {dev}, "
              f"torch {torch.__version__}, transformers {transformers.__version__}")
        print(f"decode: {mode}; device-to-device copy: {copy_gbs:.1f} GB/s")
        print("| test   | t/s (median) |      min |      max | ms/token |    GB/s | % copy |")
        for r in rows:
            gb = f"{r['gb_s']:.1f}" if r["gb_s"] else ""
            pc = f"{r['pct_of_copy']:.0f}%" if r["pct_of_copy"] else ""
            print(f"| {r['test']:6} | {r['median_ts']:12.2f} | {r['min_ts']:8.2f} | {r['max_ts']:8.2f} | "
                  f"{r['ms_per_token']:8.3f} | {gb:>7} | {pc:>6} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
