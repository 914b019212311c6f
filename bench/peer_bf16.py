#!/usr/bin/env python3
"""The PyTorch peer's MoE layer in bf16 on the CPU: forward+backward throughput and peak RSS.

Used by `npm run bench -- moe --dtype bf16` (the peer's bench.py runs fp32 only). It imports
moe_ref from the peer folder (read-only, not copied), builds the layer as bench.py does (same
seed, 2 threads, default init), casts it and the input to torch.bfloat16 (its router softmax
stays fp32, as moe_ref computes it), warms up, then times fwd+bwd calls (at least `min_runs`,
about `target_s` seconds) in the given dispatch style, and prints one JSON line: the median
time, tokens/s and this process's ru_maxrss (MB).

    /usr/bin/python3 bench/peer_bf16.py <peer_dir> <config> <naive|sorted> [min_runs] [target_s]
"""
import json
import resource
import statistics
import sys
import time

from peer_rss import CONFIGS


def main() -> None:
    peer_dir, name, style = sys.argv[1:4]
    min_runs = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    target_s = float(sys.argv[5]) if len(sys.argv) > 5 else 3.0
    sys.path.insert(0, peer_dir)
    import torch
    from moe_ref import MoEConfig, MoELayer

    torch.set_num_threads(2)
    c = CONFIGS[name]
    cfg = MoEConfig(c["d_model"], c["d_ff"], c["num_experts"], c["top_k"])
    T = c["tokens"]
    torch.manual_seed(1234)
    layer = MoELayer(cfg).to(torch.bfloat16)
    x = torch.randn(T, cfg.d_model).to(torch.bfloat16)
    g = torch.randn(T, cfg.d_model).to(torch.bfloat16)
    one = torch.ones(())
    xi = x.clone().requires_grad_(True)

    def step() -> None:
        layer.zero_grad(set_to_none=True)
        xi.grad = None
        o = layer(xi, style=style)
        aux = 0.01 * o.lb_loss + 0.001 * o.z_loss
        torch.autograd.backward((o.out, aux), (g, one.to(aux.dtype)))

    step()  # warm-up
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < target_s:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
        if len(times) >= 50:
            break
    med = statistics.median(times)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(dict(config=name, style=style, dtype="bfloat16", mode="fwd+bwd", median_s=med,
                          tokens_per_s=round(T / med), runs=len(times), peak_rss_mb=round(peak / 1024))))


if __name__ == "__main__":
    main()
