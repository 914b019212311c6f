#!/usr/bin/env python3
"""PyTorch peer of `npm run bench -- ctmoe-train`: the CT-MoE language model trained eagerly in fp32.

Written from the description of pingBenM/CT-MoE (its README and /work/shared/spec), not from
moekit's code: a pre-LN GPT (token + learned position embeddings, dropout after them, causal
self-attention with bias-free qkv / proj and dropout on the attention weights only, final
LayerNorm, LM head tied to the token embedding) whose every FFN is a CT-MoE layer:

    S       = softmax(mask_diag((S_raw + S_raw^T) / 2) / s_temp, dim=-1)     (row-stochastic, 0 diagonal)
    logits  = x W_r^T + routing_scale * S.sum(dim=0)                         (column sums; routing bias)
    w       = softmax(logits); top-k of w, not renormalised
    out_k   = gelu(x W1[e_k]) W2[e_k]                                         (W [N, D, D], x @ W layout)
    S_sub   = S[e_i, e_j] over the k selected, rows renormalised (+1e-9)
    out     = out + collab_scale * S_sub @ out                                (message passing)
    y       = sum_k w_k out_k
    lb      = N * sum_e f_e p_e,  f_e = slots routed to e / tokens,  p = mean over tokens of w
    loss    = CE + lb_weight * sum(lb over layers) / n_layers

trained with AdamW in two groups (S_raw at lr * s_lr_scale without weight decay; everything
else at lr with weight decay) and gradient-norm clipping. The experts run sparsely: slots
sorted by expert, one GEMM pair per expert segment.

    speed <config.json> <batches.i32> <warmup> <steps>
        trains from a random init on the given batches; prints one JSON line: median step
        seconds, tokens/s, peak RSS (MB).
    check <config.json> <batches.i32> <weights.bin> <weights.json>
        loads moekit's initial weights (float32, in the order and shapes of weights.json) into
        the peer, then: loss of batch 0, backward, clip, AdamW step, loss of batch 1. Prints
        one JSON line with both losses and the gradient norm.

The config is moekit's CtMoeExperimentConfig as JSON plus `flags` (useTopology,
useGraphRouting, useGraphCollab); batches.i32 holds int32 windows [n, batchSize, seqLen + 1].
Threads: 2 (torch.set_num_threads), the bench's setting for both sides.
"""
import json
import math
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Topology(nn.Module):
    def __init__(self, n, s_temp):
        super().__init__()
        self.sRaw = nn.Parameter(torch.zeros(n, n))
        self.s_temp = s_temp
        diag = torch.zeros(n, n)
        diag.fill_diagonal_(float("-inf"))
        self.register_buffer("diag", diag, persistent=False)

    def forward(self):
        sym = (self.sRaw + self.sRaw.t()) / 2
        return torch.softmax((sym + self.diag) / self.s_temp, dim=-1)


# moekit's MoELayer names its CT-MoE block's parameters this way (the same layouts: x @ W)
MOEKIT_TO_PEER = {"ffn.routerWeight": "ffn.router.weight", "ffn.experts.upProj": "ffn.w1", "ffn.experts.downProj": "ffn.w2"}


def peer_name(name):
    for ours, peer in MOEKIT_TO_PEER.items():
        if name.endswith(ours):
            return name[: -len(ours)] + peer
    return name


class CtMoELayer(nn.Module):
    def __init__(self, c, flags):
        super().__init__()
        d, n = c["dModel"], c["numExperts"]
        self.n, self.k = n, c["topK"]
        self.routing_scale, self.collab_scale = c["routingScale"], c["collabScale"]
        self.use_routing = flags["useTopology"] and flags["useGraphRouting"]
        self.use_collab = flags["useTopology"] and flags["useGraphCollab"]
        self.router = nn.Linear(d, n, bias=False)
        nn.init.normal_(self.router.weight, 0.0, 0.02)
        self.w1 = nn.Parameter(torch.randn(n, d, d) / math.sqrt(d))
        self.w2 = nn.Parameter(torch.randn(n, d, d) / math.sqrt(d))
        self.topology = Topology(n, c["sTemp"]) if flags["useTopology"] else None

    def forward(self, x):
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        tokens = x2.shape[0]
        s = self.topology() if self.topology is not None else None
        logits = self.router(x2)
        if s is not None and self.use_routing:
            logits = logits + self.routing_scale * s.sum(dim=0)
        weights = torch.softmax(logits, dim=-1)
        top_w, top_i = weights.topk(self.k, dim=-1)
        flat = top_i.reshape(-1)
        counts = torch.bincount(flat, minlength=self.n)
        # sparse experts: slots sorted by expert (stable), one GEMM pair per expert segment
        order = torch.argsort(flat, stable=True)
        rows = x2.index_select(0, torch.div(order, self.k, rounding_mode="floor"))
        outs = []
        start = 0
        for e, cnt in enumerate(counts.tolist()):
            if cnt == 0:
                continue
            seg = rows[start:start + cnt]
            outs.append(F.gelu(seg @ self.w1[e]) @ self.w2[e])
            start += cnt
        sorted_out = torch.cat(outs, dim=0)
        slot_out = torch.zeros_like(sorted_out).index_copy(0, order, sorted_out)
        out = slot_out.view(tokens, self.k, -1)
        if s is not None and self.use_collab:
            sub = s[top_i.unsqueeze(2), top_i.unsqueeze(1)]  # [T, k, k]
            sub = sub / (sub.sum(dim=-1, keepdim=True) + 1e-9)
            out = out + self.collab_scale * (sub @ out)
        y = (top_w.unsqueeze(1) @ out).squeeze(1)
        f = counts.to(x.dtype) / tokens
        lb = self.n * (f * weights.mean(dim=0)).sum()
        return y.view(shape), lb


class Attention(nn.Module):
    def __init__(self, d, h, p):
        super().__init__()
        self.h, self.p = h, p
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.h, d // self.h).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.h)
        mask = torch.ones(t, t, dtype=torch.bool).tril()
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        att = F.dropout(att, self.p, self.training)
        return self.proj((att @ v).transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, c, flags):
        super().__init__()
        d = c["dModel"]
        self.ln1 = nn.LayerNorm(d)
        self.attn = Attention(d, c["nHead"], c["dropout"])
        self.ln2 = nn.LayerNorm(d)
        self.ffn = CtMoELayer(c, flags)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        y, lb = self.ffn(self.ln2(x))
        return x + y, lb


class GPT(nn.Module):
    def __init__(self, c, flags):
        super().__init__()
        self.wte = nn.Embedding(c["vocabSize"], c["dModel"])
        self.wpe = nn.Embedding(c["seqLen"], c["dModel"])
        self.drop = nn.Dropout(c["dropout"])
        self.blocks = nn.ModuleList([Block(c, flags) for _ in range(c["nLayer"])])
        self.lnF = nn.LayerNorm(c["dModel"])
        for m in self.modules():  # GPT init; the MoE layers keep their own
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)


class CtMoEGPT(nn.Module):
    def __init__(self, c, flags):
        super().__init__()
        self.gpt = GPT(c, flags)
        self.lb_weight = c["lbWeight"]

    def loss(self, ids, targets):
        g = self.gpt
        t = ids.shape[1]
        x = g.drop(g.wte(ids) + g.wpe(torch.arange(t)))
        lbs = []
        for blk in g.blocks:
            x, lb = blk(x)
            lbs.append(lb)
        logits = g.lnF(x) @ g.wte.weight.t()
        ce = F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))
        return ce + self.lb_weight * torch.stack(lbs).sum() / len(lbs)


def optimiser(model, c):
    topo = [p for n, p in model.named_parameters() if n.endswith("topology.sRaw")]
    ids = {id(p) for p in topo}
    other = [p for p in model.parameters() if id(p) not in ids]
    groups = [dict(params=other, lr=c["lr"], weight_decay=c["weightDecay"])]
    if topo:
        groups.append(dict(params=topo, lr=c["lr"] * c["sLrScale"], weight_decay=0.0))
    return torch.optim.AdamW(groups, lr=c["lr"], betas=tuple(c["betas"]), eps=1e-8)


def batches(path, c):
    b, t = c["batchSize"], c["seqLen"]
    raw = torch.frombuffer(bytearray(open(path, "rb").read()), dtype=torch.int32).view(-1, b, t + 1).long()
    return [(w[:, :-1].contiguous(), w[:, 1:].contiguous()) for w in raw]


def train_step(model, opt, c, ids, targets):
    opt.zero_grad(set_to_none=True)
    loss = model.loss(ids, targets)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), c["gradClip"])
    opt.step()
    return loss.item(), float(norm)


def main():
    mode, cfg_path, batch_path = sys.argv[1:4]
    torch.set_num_threads(2)
    c = json.load(open(cfg_path))
    flags = c["flags"]
    data = batches(batch_path, c)
    torch.manual_seed(c["seed"])
    model = CtMoEGPT(c, flags)
    model.train()
    if mode == "speed":
        warmup, steps = int(sys.argv[4]), int(sys.argv[5])
        opt = optimiser(model, c)
        times = []
        for i in range(warmup + steps):
            ids, targets = data[i % len(data)]
            t0 = time.perf_counter()
            train_step(model, opt, c, ids, targets)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        times.sort()
        med = times[len(times) // 2]
        print(json.dumps(dict(step_s=med, tokens_per_s=c["batchSize"] * c["seqLen"] / med,
                              peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                              threads=torch.get_num_threads(), torch=torch.__version__)))
    elif mode == "check":
        weights_bin, weights_json = sys.argv[4:6]
        index = json.load(open(weights_json))
        for e in index:
            e["name"] = peer_name(e["name"])
        flat = torch.frombuffer(bytearray(open(weights_bin, "rb").read()), dtype=torch.float32)
        params = dict(model.named_parameters())
        if sorted(params) != sorted(e["name"] for e in index):
            missing = sorted(set(e["name"] for e in index) ^ set(params))
            raise SystemExit(f"parameter names differ between moekit and the peer: {missing}")
        with torch.no_grad():
            off = 0
            for e in index:
                n = math.prod(e["shape"])
                params[e["name"]].copy_(flat[off:off + n].view(e["shape"]))
                off += n
        opt = optimiser(model, c)
        loss1, norm = train_step(model, opt, c, *data[0])
        with torch.no_grad():
            loss2 = model.loss(*data[1]).item()
        print(json.dumps(dict(loss1=loss1, loss2=loss2, grad_norm=norm)))
    else:
        raise SystemExit(f"unknown mode {mode!r}: speed or check")


if __name__ == "__main__":
    main()
