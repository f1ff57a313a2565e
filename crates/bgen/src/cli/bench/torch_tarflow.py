#!/usr/bin/env python
"""PyTorch peer for `bgen bench tarflow`: the same TarFlow (pre-LN causal Transformer blocks,
alternating token order, zero-initialised shifted affine head, KV-cache inverse), timing one
training step (augmentation, NLL, backward, clipping, AdamW, EMA) and sampling, on the same CPU threads.

Usage: python torch_tarflow.py TOKENS WIDTH BLOCKS LAYERS HEAD_DIM BATCH STEPS SAMPLES THREADS OUT.json
"""
import json, math, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

tokens, width, blocks, layers, head_dim, batch, steps, samples, threads = map(int, sys.argv[1:10])
out_path = sys.argv[10]
torch.set_num_threads(threads)
torch.manual_seed(0)


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.fc1, self.fc2 = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)
        self.heads = max(width // head_dim, 1)

    def forward(self, h, cache=None):
        b, t, w = h.shape
        qkv = self.qkv(self.ln1(h)).view(b, t, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        causal = cache is None
        if cache is not None:
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], 2), torch.cat([cache["v"], v], 2)
            cache["k"], cache["v"] = k, v
        o = F.scaled_dot_product_attention(q, k, v, is_causal=causal and t > 1)
        h = h + self.proj(o.permute(0, 2, 1, 3).reshape(b, t, w))
        return h + self.fc2(F.gelu(self.fc1(self.ln2(h))))


class Block(nn.Module):
    def __init__(self, reverse):
        super().__init__()
        self.reverse = reverse
        self.proj_in = nn.Linear(3, width)
        self.pos = nn.Parameter(torch.randn(tokens, width) * 0.02)
        self.layers = nn.ModuleList([Layer() for _ in range(layers)])
        self.ln_out = nn.LayerNorm(width)
        self.proj_out = nn.Linear(width, 6)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def order(self, x):
        return x.flip(1) if self.reverse else x

    def forward(self, x):
        xs = self.order(x)
        pos = self.pos.flip(0) if self.reverse else self.pos
        h = self.proj_in(xs) + pos
        for l in self.layers:
            h = l(h)
        out = self.proj_out(self.ln_out(h[:, :-1]))
        params = torch.cat([torch.zeros_like(out[:, :1]), out], 1)
        a, b = params[..., :3], params[..., 3:]
        z = (xs - b) * torch.exp(-a)
        return self.order(z), -a.sum((1, 2))

    def inverse(self, z):
        zs = self.order(z)
        pos = self.pos.flip(0) if self.reverse else self.pos
        caches = [dict() for _ in self.layers]
        xs = [zs[:, :1]]
        for s in range(1, zs.shape[1]):
            h = self.proj_in(xs[-1]) + pos[s - 1 : s]
            for l, c in zip(self.layers, caches):
                h = l(h, c)
            p = self.proj_out(self.ln_out(h))
            xs.append(zs[:, s : s + 1] * torch.exp(p[..., :3]) + p[..., 3:])
        return self.order(torch.cat(xs, 1))


class TarFlow(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([Block(k % 2 == 1) for k in range(blocks)])

    def log_prob(self, x):
        h, ld = x.view(-1, tokens, 3), 0.0
        for b in self.blocks:
            h, l = b(h)
            ld = ld + l
        z = h.reshape(x.shape[0], -1)
        return -0.5 * (z ** 2).sum(1) - 0.5 * z.shape[1] * math.log(2 * math.pi) + ld

    def sample(self, n):
        h = torch.randn(n, tokens, 3)
        for b in reversed(self.blocks):
            h = b.inverse(h)
        return h.reshape(n, -1)


flow = TarFlow()
ema = [p.detach().clone() for p in flow.parameters()]
opt = torch.optim.AdamW(flow.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=4e-4)
data = torch.randn(4096, tokens * 3)


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
    loss = -flow.log_prob(x).mean() / x.shape[1]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(flow.parameters(), 1.0)
    opt.step()
    with torch.no_grad():
        for e, p in zip(ema, flow.parameters()):
            e.mul_(0.999).add_(p, alpha=0.001)


for i in range(3):
    train_step(i)
t0 = time.perf_counter()
for i in range(steps):
    train_step(i)
step_s = (time.perf_counter() - t0) / steps
with torch.no_grad():
    flow.sample(8)
    sample_s = math.inf
    for _ in range(3):  # best of 3, as bgen times it
        t0 = time.perf_counter()
        flow.sample(samples)
        sample_s = min(sample_s, time.perf_counter() - t0)
json.dump({"torch": torch.__version__, "train_step_s": step_s, "samples_per_s": samples / sample_s}, open(out_path, "w"))
