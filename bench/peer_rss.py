#!/usr/bin/env python3
"""Peak RSS of the PyTorch peer's MoE layer for one (config, mode, style), in a fresh process.

Used by bench/moe.ts (the peer's bench.py does not report memory). It imports moe_ref from the
peer folder (read-only, not copied), builds the layer exactly as bench.py does (same seed,
threads, default init, contiguous fp32 input), runs a few calls of `mode` the way bench.py
times them, and prints one JSON line with ru_maxrss of this process (MB).

    LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp \
      /usr/bin/python3 bench/peer_rss.py <peer_dir> <config> <fwd|fwd+bwd> <naive|sorted> [calls]
"""
import json
import resource
import sys

CONFIGS = {  # bench.py's CONFIGS
    "small": dict(d_model=128, d_ff=256, num_experts=8, top_k=2, tokens=2048),
    "ct-moe-paper": dict(d_model=512, d_ff=2048, num_experts=16, top_k=2, tokens=4096),
    "olmoe-like": dict(d_model=2048, d_ff=1024, num_experts=64, top_k=8, tokens=512),
    "mixtral-like": dict(d_model=1024, d_ff=3584, num_experts=8, top_k=2, tokens=1024),
}


def main() -> None:
    peer_dir, name, mode, style = sys.argv[1:5]
    calls = int(sys.argv[5]) if len(sys.argv) > 5 else 3
    sys.path.insert(0, peer_dir)
    import torch
    from moe_ref import MoEConfig, MoELayer

    torch.set_num_threads(2)
    torch.set_grad_enabled(True)
    c = CONFIGS[name]
    cfg = MoEConfig(c["d_model"], c["d_ff"], c["num_experts"], c["top_k"])
    T = c["tokens"]
    torch.manual_seed(1234)
    layer = MoELayer(cfg)
    x = torch.randn(T, cfg.d_model)
    g = torch.randn(T, cfg.d_model)
    one = torch.ones(())
    with torch.no_grad():
        layer(x)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    xi = x.clone().requires_grad_(True)
    for _ in range(calls):
        if mode == "fwd":
            with torch.no_grad():
                layer(x, style=style)
        else:
            layer.zero_grad(set_to_none=True)
            xi.grad = None
            o = layer(xi, style=style)
            aux = 0.01 * o.lb_loss + 0.001 * o.z_loss
            torch.autograd.backward((o.out, aux), (g, one))
            del o, aux
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(dict(config=name, mode=mode, style=style, peak_rss_mb=round(peak / 1024),
                          after_setup_rss_mb=round(base / 1024))))


if __name__ == "__main__":
    main()
