"""Issue 25 experiment: do importance weights carried along damped Hamiltonian dynamics have a
lighter tail than the proposal's own?

Each proposal draw x0 (log weight w0 toward exp(-U/kT)) gets velocities v0 ~ N(0, kT/m) with
no centre-of-mass motion and is moved k steps of conformal leapfrog: v *= exp(-gamma h / 2),
a leapfrog step of the exact target, v *= exp(-gamma h / 2). Leapfrog keeps phase-space volume
and each velocity scaling shrinks it by exp(-gamma h d / 2) (d = 3N - 3 velocity dimensions),
so the map's log-Jacobian is exactly -gamma h d k, and the pushed-forward draws (x_k, v_k)
have the exact weight
    log w_k = log w0 + H(x0, v0) - H(x_k, v_k) - gamma h d k        (H = U + K, in kT).
A draw that starts strained dissipates its strain and gains weight; one that starts relaxed
loses about what the volume term takes. Printed per step count: the ESS of the weights and the
weighted alphaR / alphaL of residue 2 against the pooled reference.

Usage: damped25.py NAME [RUN] [--n N] [--seed S] [--gamma G,..] [--steps K,..] [--h PS]
(run from /work/ref25 or wherever RUN and m25-ref/ are; RUN defaults to model388c)."""
import sys
import time

import numpy as np

import bgen
import m25

args = sys.argv[1:]
n = int(m25.option(args, "--n") or 10000)
seed = int(m25.option(args, "--seed") or 0)
gammas = [float(g) for g in (m25.option(args, "--gamma") or "0,10,30,100").split(",")]
marks = [int(k) for k in (m25.option(args, "--steps") or "0,5,10,20,40,80").split(",")]
h = float(m25.option(args, "--h") or 0.001)  # ps
name = args[0]
run = args[1] if len(args) > 1 else "model388c"
pdb = f"{m25.here}/ref25/{name}.pdb"

system = bgen.System.from_pdb(pdb)
model = bgen.Model.load(run=run, molecule=system, threads=2)
kt = system.kt  # kJ/mol
t0 = time.time()
d = model.sample(n, seed=seed)
print(f"{name}: {n} draws in {time.time() - t0:.1f} s, seen in training: {model.seen_in_training}")
x0 = d["samples"]
lw0 = np.where(np.isfinite(d["log_weights"]), d["log_weights"], -np.inf)
masses = np.array([{"H": 1.008, "C": 12.011, "N": 14.007, "O": 15.999, "S": 32.06}[a[0]] for a in system.atom_names])
ref = m25.shares(np.load(f"m25-ref/{name}.npy"), pdb)
dof = 3 * len(masses) - 3


def ess(lw):
    w = np.exp(lw - lw.max())
    return w.sum() ** 2 / (w * w).sum() / len(w)


def weighted_shares(x, lw):
    ok = np.isfinite(lw)
    w = np.exp(lw[ok] - lw[ok].max())
    w /= w.sum()
    atoms = [(l[12:16].strip(), int(l[22:26])) for l in open(pdb) if l.startswith(("ATOM", "HETATM"))]
    at = lambda a, r: atoms.index((a, r))
    xo = x[ok]
    psi1 = m25.dihedral(xo, at("N", 1), at("CA", 1), at("C", 1), at("N", 2))
    phi2 = m25.dihedral(xo, at("C", 1), at("N", 2), at("CA", 2), at("C", 2))
    left = phi2 >= 0
    right = (~left) & (psi1 >= -150) & (psi1 < 50)
    return float(w[right].sum()), float(w[left].sum())


def reduced(x):
    u, g = system.reduced_energy_and_grad(x)
    bad = ~np.isfinite(u) | ~np.isfinite(g).all(axis=(1, 2))
    g[bad] = 0.0
    u[bad] = np.inf
    return u, g


print(f"reference alphaR {ref[0]:.3f} alphaL {ref[1]:.3f}")
print("gamma/ps steps  ESS      alphaR  alphaL")
for gamma in gammas:
    rng = np.random.default_rng(seed + 1)
    v = rng.standard_normal(x0.shape) * np.sqrt(kt / masses)[None, :, None]
    v -= (masses[None, :, None] * v).sum(1, keepdims=True) / masses.sum()
    x = x0.copy()
    u, g = reduced(x)
    kin = lambda v: 0.5 * (masses[None, :, None] * v * v).sum((1, 2)) / kt
    h0 = u + kin(v)
    scale = np.exp(-gamma * h / 2)
    for k in range(max(marks) + 1):
        if k in marks:
            with np.errstate(invalid="ignore"):
                lw = lw0 + h0 - (u + kin(v)) - gamma * h * dof * k
            lw = np.where(np.isfinite(lw), lw, -np.inf)
            ar, al = weighted_shares(x, lw)
            print(f"{gamma:8g} {k:5d}  {ess(lw):.5f}  {ar:.3f}   {al:.3f}")
            sys.stdout.flush()
        # one conformal leapfrog step
        v *= scale
        v -= 0.5 * h * kt * g / masses[None, :, None]
        x = x + h * v
        u, g = reduced(x)
        v -= 0.5 * h * kt * g / masses[None, :, None]
        v *= scale
