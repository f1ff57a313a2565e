#!/usr/bin/env python
"""PyTorch peer for `bgen bench arbg`: the same ArBG (bin + sinusoidal position + axis + atom
embeddings, pre-RMSNorm causal layers without biases, SwiGLU, untied head over the bins), timing
one training step (cross-entropy through the clipped, binned coordinates; backward, clipping,
AdamW, EMA) and KV-cache sampling (inverse-CDF bins plus uniform offsets), on the same CPU threads.

Usage: python torch_arbg.py ATOMS WIDTH LAYERS HEAD_DIM BINS BATCH STEPS SAMPLES THREADS OUT.json
"""
import json, math, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

atoms, width, layers, head_dim, bins, batch, steps, samples, threads = map(int, sys.argv[1:10])
out_path = sys.argv[10]
torch.set_num_threads(threads)
torch.manual_seed(0)
D, R = 3 * atoms, 3.0
W = 2 * R / bins
hidden = (8 * width // 3 + 7) // 8 * 8


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.n1, self.n2 = nn.Parameter(torch.ones(width)), nn.Parameter(torch.ones(width))
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.out = nn.Linear(width, width, bias=False)
        self.gate_up = nn.Linear(width, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, width, bias=False)
        self.heads = max(width // head_dim, 1)

    def forward(self, h, cache=None):
        b, t, w = h.shape
        x = F.rms_norm(h, (w,), self.n1, 1e-6)
        qkv = self.qkv(x).view(b, t, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        causal = cache is None
        if cache is not None:
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], 2), torch.cat([cache["v"], v], 2)
            cache["k"], cache["v"] = k, v
        o = F.scaled_dot_product_attention(q, k, v, is_causal=causal and t > 1)
        h = h + self.out(o.permute(0, 2, 1, 3).reshape(b, t, w))
        g, u = self.gate_up(F.rms_norm(h, (w,), self.n2, 1e-6)).chunk(2, -1)
        return h + self.down(F.silu(g) * u)


class ArBG(nn.Module):
    def __init__(self):
        super().__init__()
        self.bin_emb = nn.Embedding(bins + 1, width)
        self.axis = nn.Parameter(torch.randn(3, width) * 0.02)
        self.atom = nn.Parameter(torch.randn(atoms, width) * 0.02)
        t = torch.arange(D, dtype=torch.float64)[:, None]
        i = torch.arange(0, width, 2, dtype=torch.float64)[None]
        f = t / 10000 ** (i / width)
        pos = torch.zeros(D, width, dtype=torch.float64)
        pos[:, 0::2], pos[:, 1::2] = f.sin(), f.cos()[:, : width // 2]
        self.register_buffer("pos", pos.float())
        self.layers = nn.ModuleList([Layer() for _ in range(layers)])
        self.norm = nn.Parameter(torch.ones(width))
        self.head = nn.Linear(width, bins)

    def context(self, start, n):
        t = torch.arange(start, start + n)
        return self.pos[start : start + n] + self.axis[t % 3] + self.atom[t // 3]

    def log_prob(self, x):
        b = ((x + R) / W).floor().clamp(0, bins - 1).long()
        inp = torch.cat([torch.full((x.shape[0], 1), bins), b[:, :-1]], 1)
        h = self.bin_emb(inp) + self.context(0, D)
        for l in self.layers:
            h = l(h)
        lp = self.head(F.rms_norm(h, (width,), self.norm, 1e-6)).log_softmax(-1)
        return lp.gather(2, b[..., None])[..., 0].sum(1) - D * math.log(W)

    def sample(self, n):
        caches = [dict() for _ in self.layers]
        prev = torch.full((n, 1), bins)
        xs, lq = [], torch.zeros(n)
        for t in range(D):
            h = self.bin_emb(prev) + self.context(t, 1)
            for l, c in zip(self.layers, caches):
                h = l(h, c)
            lp = self.head(F.rms_norm(h, (width,), self.norm, 1e-6))[:, 0].log_softmax(-1)
            cdf = lp.exp().cumsum(1)
            b = (cdf < torch.rand(n, 1)).sum(1).clamp(max=bins - 1)
            lq += lp.gather(1, b[:, None])[:, 0]
            xs.append((b.double() + torch.rand(n, dtype=torch.float64)) * W - R)
            prev = b[:, None]
        return torch.stack(xs, 1), lq - D * math.log(W)


model = ArBG()
ema = [p.detach().clone() for p in model.parameters()]
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=4e-4)
data = torch.randn(4096, D)


def augment(x):
    """Random rotation (normalised Gaussian quaternions) and CoM noise N(0, I/N), as bgen trains."""
    b, n = x.shape[0], x.shape[1] // 3
    q = torch.randn(b, 4)
    q = q / q.norm(dim=1, keepdim=True)
    w, qx, qy, qz = q.unbind(1)
    r = torch.stack([
        1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qz * w), 2 * (qx * qz + qy * w),
        2 * (qx * qy + qz * w), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qx * w),
        2 * (qx * qz - qy * w), 2 * (qy * qz + qx * w), 1 - 2 * (qx * qx + qy * qy)], 1).view(b, 3, 3)
    pts = x.view(b, n, 3) @ r.transpose(1, 2) + torch.randn(b, 1, 3) / math.sqrt(n)
    return pts.reshape(b, 3 * n)


def train_step(i):
    x = augment(data[(torch.arange(batch) * 7 + i * batch) % data.shape[0]])
    loss = -model.log_prob(x).mean() / D
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    with torch.no_grad():
        for e, p in zip(ema, model.parameters()):
            e.mul_(0.999).add_(p, alpha=0.001)


for i in range(3):
    train_step(i)
t0 = time.perf_counter()
for i in range(steps):
    train_step(i)
step_s = (time.perf_counter() - t0) / steps
with torch.no_grad():
    model.sample(8)
    sample_s = math.inf
    for _ in range(3):  # best of 3, as bgen times it
        t0 = time.perf_counter()
        model.sample(samples)
        sample_s = min(sample_s, time.perf_counter() - t0)
json.dump({"torch": torch.__version__, "train_step_s": step_s, "tokens_per_s": samples * D / sample_s}, open(out_path, "w"))
