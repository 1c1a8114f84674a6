#!/usr/bin/env python3
"""Peer timing for `mlxn bench sdpa`: PyTorch's F.scaled_dot_product_attention
on the same shapes, bf16 q/K/V (q is f32 in mlxn; here bf16, PyTorch's own
fast path), grouped-query attention through enable_gqa (K/V not repeated),
causal lower-right aligned as mlxn (an explicit bool mask when Tq < Tk and
causal, since is_causal aligns upper-left). Timed with CUDA events per call
after 300 ms of warm-up, rotating through enough K/V copies to exceed 3x
the L2 cache; prints one JSON line per shape with the median and min.

  python3 bench/peer_torch_sdpa.py --shape D,HQ,HKV,TQ,TK [--shape ...] [--reps 200]
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def bench(D, hq, hkv, tq, tk, reps):
    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(dev)
    l2 = getattr(props, "L2_cache_size", 50 << 20)
    kv_bytes = 2 * hkv * tk * D * 2
    nsets = max(1, min(64, -(-3 * l2 // kv_bytes)))
    g = torch.Generator(device=dev).manual_seed(0)
    q = torch.randn(1, hq, tq, D, device=dev, dtype=torch.bfloat16, generator=g)
    ks = [torch.randn(1, hkv, tk, D, device=dev, dtype=torch.bfloat16, generator=g) for _ in range(nsets)]
    vs = [torch.randn(1, hkv, tk, D, device=dev, dtype=torch.bfloat16, generator=g) for _ in range(nsets)]
    kwargs = {"scale": D ** -0.5, "enable_gqa": hkv != hq}
    if tq == tk:
        kwargs["is_causal"] = True
    elif tq > 1:  # lower-right causal
        i = torch.arange(tq, device=dev)[:, None] + (tk - tq)
        kwargs["attn_mask"] = torch.arange(tk, device=dev)[None, :] <= i
    # Tq = 1 with causal lower-right sees every key: no mask

    def call(i):
        return F.scaled_dot_product_attention(q, ks[i % nsets], vs[i % nsets], **kwargs)

    t0 = time.time()
    i = 0
    while time.time() - t0 < 0.3 or i < 10:
        call(i)
        i += 1
    torch.cuda.synchronize()
    ev = [torch.cuda.Event(enable_timing=True) for _ in range(reps + 1)]
    ev[0].record()
    for r in range(reps):
        call(r)
        ev[r + 1].record()
    torch.cuda.synchronize()
    us = [ev[r].elapsed_time(ev[r + 1]) * 1000.0 for r in range(reps)]
    return {
        "peer": "torch_sdpa",
        "torch": torch.__version__,
        "device": props.name,
        "head_dim": D,
        "q_heads": hq,
        "kv_heads": hkv,
        "tq": tq,
        "tk": tk,
        "median_us": statistics.median(us),
        "min_us": min(us),
        "kv_sets": nsets,
        "backend": "enable_gqa",
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", action="append", required=True, help="D,HQ,HKV,TQ,TK")
    ap.add_argument("--reps", type=int, default=200)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("peer_torch_sdpa: no CUDA device", file=sys.stderr)
        return 1
    for s in a.shape:
        D, hq, hkv, tq, tk = (int(x) for x in s.split(","))
        try:
            print(json.dumps(bench(D, hq, hkv, tq, tk, a.reps)), flush=True)
        except Exception as e:  # report and go on with the next shape
            print(json.dumps({"peer": "torch_sdpa", "shape": s, "error": str(e)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
