#!/usr/bin/env python3
"""PyTorch peer of `npm run bench -- gemm|moe --backend webgpu`: on the GPU when
torch.cuda.is_available(), else on the CPU (the caller says so next to its numbers).

    python3 bench/peer_gpu.py gemm '[[m, k, n], ...]'
    python3 bench/peer_gpu.py moe <peer_dir> '[{"name":..,"d_model":..,"d_ff":..,"experts":..,"top_k":..,"tokens":..}, ...]'

GEMM: torch.mm in fp32 with TF32 off (a true fp32 product, as the WGSL kernel computes).
MoE: the peer's moe_ref.MoELayer (shared/peers/torch-moe, imported read-only), eager fp32, its
two dispatch styles, fwd under no_grad and fwd+bwd with the aux losses as bench.py times them;
the best style per mode. Every timed call ends with torch.cuda.synchronize() on the GPU.
Prints one JSON line: {"device": ..., "device_name": ..., "torch": ..., "results": [...]}.
"""
import json
import statistics
import sys
import time


def timed(fn, sync, warmup=3, min_runs=7, max_runs=50, seconds=1.0):
    for _ in range(warmup):
        fn()
    sync()
    ts = []
    end = time.perf_counter() + seconds
    while len(ts) < min_runs or (time.perf_counter() < end and len(ts) < max_runs):
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main() -> None:
    import torch

    cuda = torch.cuda.is_available()
    dev = torch.device("cuda" if cuda else "cpu")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    name = torch.cuda.get_device_name(0) if cuda else "cpu"
    results = []
    if sys.argv[1] == "gemm":
        for m, k, n in json.loads(sys.argv[2]):
            a = torch.randn(m, k, device=dev)
            b = torch.randn(k, n, device=dev)
            c = torch.empty(m, n, device=dev)
            s = timed(lambda: torch.mm(a, b, out=c), sync)
            results.append({"m": m, "k": k, "n": n, "gflops": 2 * m * k * n / s / 1e9})
    elif sys.argv[1] == "moe":
        sys.path.insert(0, sys.argv[2])
        from moe_ref import MoEConfig, MoELayer

        for c in json.loads(sys.argv[3]):
            torch.manual_seed(1234)
            layer = MoELayer(MoEConfig(c["d_model"], c["d_ff"], c["experts"], c["top_k"])).to(dev)
            x = torch.randn(c["tokens"], c["d_model"], device=dev)
            g = torch.randn(c["tokens"], c["d_model"], device=dev)
            one = torch.ones((), device=dev)
            xi = x.clone().requires_grad_(True)
            for mode in ("fwd", "fwd+bwd"):
                best = None
                for style in MoELayer.STYLES:
                    def fwd(style=style):
                        with torch.no_grad():
                            layer(x, style=style)

                    def fwd_bwd(style=style):
                        layer.zero_grad(set_to_none=True)
                        xi.grad = None
                        o = layer(xi, style=style)
                        torch.autograd.backward((o.out, 0.01 * o.lb_loss + 0.001 * o.z_loss), (g, one))

                    s = timed(fwd if mode == "fwd" else fwd_bwd, sync)
                    if best is None or s < best[0]:
                        best = (s, style)
                results.append({"config": c["name"], "mode": mode, "tokens_per_s": c["tokens"] / best[0], "style": best[1]})
            del layer
            if cuda:
                torch.cuda.empty_cache()
    else:
        raise SystemExit(f"peer_gpu.py: unknown bench '{sys.argv[1]}' (allowed: gemm, moe)")
    print(json.dumps({"device": dev.type, "device_name": name, "torch": torch.__version__, "results": results}))


if __name__ == "__main__":
    main()
