"""Tempered self-improvement's data (improve25.sh with TEMPERED): the raw SNIS draws of SRC
(samples.npy, log_weights.npy) resampled systematically by w^beta into OUT/frames.npy, beta in
(0, 1] the largest whose normalised ESS is at least TARGET. Prints beta, the ESS at beta and at
1, and how many distinct draws were kept. Usage: temper25.py SRC OUT TARGET SEED"""
import json
import sys

import numpy as np

src, out, target, seed = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
log_w = np.load(f"{src}/log_weights.npy")
x = np.load(f"{src}/samples.npy")
finite = np.isfinite(log_w)


def weights(beta):
    lw = np.where(finite, beta * np.where(finite, log_w, 0.0), -np.inf)
    w = np.exp(lw - lw[finite].max())
    return w / w.sum()


def ess(beta):
    w = weights(beta)
    return 1.0 / (w**2).sum() / len(w)


beta = 1.0
if ess(1.0) < target:
    lo, hi = 0.0, 1.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ess(mid) >= target else (lo, mid)
    beta = lo
n = len(log_w)
u = (np.random.default_rng(seed).random() + np.arange(n)) / n
idx = np.minimum(np.searchsorted(np.cumsum(weights(beta)), u), n - 1)
np.save(f"{out}/frames.npy", x[idx])
print(json.dumps({"beta": beta, "ess_beta": ess(beta), "ess_1": ess(1.0), "distinct": int(len(np.unique(idx)))}))
