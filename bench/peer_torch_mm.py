"""Peer figure for the CUDA quantized mat-mat: PyTorch's dense bf16 matmul of
the same shape (out = x @ W^T, x [n, K], W [N, K], both bf16), timed with
CUDA events, median over calls that rotate through enough weight copies to
exceed 3x the L2 cache (as `mlxn bench qmm --device cuda` does). Prints one
JSON object per n.

    python3 bench/peer_torch_mm.py [--rows 4096] [--cols 14336] [--n 16 64 512]
"""
import argparse
import json
import statistics

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=4096, help="N: output features (rows of W)")
    ap.add_argument("--cols", type=int, default=14336, help="K: input features")
    ap.add_argument("--n", type=int, nargs="+", default=[16, 64, 512], help="rows of x")
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=30)
    a = ap.parse_args()
    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(dev)
    l2 = getattr(props, "L2_cache_size", 50 << 20)
    wbytes = a.rows * a.cols * 2
    nsets = max(1, min(64, -(-3 * l2 // wbytes)))
    g = torch.Generator(device=dev).manual_seed(1234)
    ws = [torch.randn(a.rows, a.cols, device=dev, dtype=torch.bfloat16, generator=g) for _ in range(nsets)]
    for n in a.n:
        x = torch.randn(n, a.cols, device=dev, dtype=torch.bfloat16, generator=g)
        for i in range(a.warmup):
            torch.matmul(x, ws[i % nsets].t())
        torch.cuda.synchronize()
        ev = [torch.cuda.Event(enable_timing=True) for _ in range(a.reps + 1)]
        ev[0].record()
        for i in range(a.reps):
            torch.matmul(x, ws[i % nsets].t())
            ev[i + 1].record()
        torch.cuda.synchronize()
        t = [ev[i].elapsed_time(ev[i + 1]) * 1e3 for i in range(a.reps)]
        med = statistics.median(t)
        print(json.dumps({"bench": "torch.matmul bf16", "device": props.name, "torch": torch.__version__,
                          "cuda": torch.version.cuda, "rows": a.rows, "cols": a.cols, "n": n, "reps": a.reps,
                          "median_us": med, "min_us": min(t), "weight_sets": nsets,
                          "tflop_s": 2.0 * n * a.rows * a.cols / (med * 1e-6) / 1e12}))


if __name__ == "__main__":
    main()
