"""Issue 25: how predictable a held-out dipeptide's basins are from the residues alone. Fits,
over the training set's 310 K frames, logit(share) = a + b[residue 1] + c[residue 2] (ridge 1)
for alphaR and alphaL of residue 2 (bgen eval's definitions: alphaL phi2 >= 0, alphaR -150 <=
psi1 < 50), and predicts each held-out dipeptide's from the same 41 numbers: the floor that a
transferable proposal should beat, set beside the model's own shares when m25-MODEL holds
`measure25.sh proposal`.
With --train-proposals DIR (shrink25.sh's), also each training dipeptide in DIR: its own data's
share, the additive fit's, and its proposal's (DIR/NAME/samples.npy): how well the model fits
the molecules it trained on.
Also how well such fits predict a pair they never saw: 10-fold cross-validation over the
training dipeptides, of the additive fit and of one with pair terms of residue chemistry
(outer products of 8 descriptors: charge +/-, aromatic, side-chain size, polar, beta-branched,
Gly, Pro): its mean error and the share of pairs off by more than issue 25's 0.03.
Usage, in measure25.sh's directory: python3 additive25.py DATASET.json [m25-MODEL]
[--train-proposals DIR]"""
import glob
import json
import os
import sys

import numpy as np

from m25 import here, load, names, option, residue_features, ridge_logit, shares, train_shares


HEAVY = dict(A=1, C=2, D=4, E=5, F=7, G=0, H=6, I=4, K=5, L=4, M=4, N=4, P=3, Q=5, R=7, S=2, T=3,
             V=3, W=10, Y=8)


def chemistry(a):
    """8 descriptors of a residue: +charge, -charge, aromatic, side-chain heavy atoms / 10,
    polar, beta-branched, Gly, Pro."""
    return np.array([a in "KR", a in "DE", a in "FWYH", HEAVY[a] / 10, a in "STNQCY", a in "VIT",
                     a == "G", a == "P"], float)


def features(seq, pairs=False):
    v = residue_features(seq)
    if pairs:
        v = np.concatenate([v, np.outer(chemistry(seq[0]), chemistry(seq[1])).ravel()])
    return v


def fit(seqs, shares_, pairs=False):
    """Ridge (1, the intercept free) of logit(share) on the features: a share predictor."""
    coef = ridge_logit(np.array([features(s, pairs) for s in seqs]), shares_)
    return lambda s: float(1 / (1 + np.exp(-features(s, pairs) @ coef)))


def cross_validated(seqs, shares_, pairs):
    """Each training pair's error when predicted by a fit on the nine tenths without it."""
    fold = np.random.default_rng(0).permutation(len(seqs)) % 10
    errs = []
    for k in range(10):
        keep = fold != k
        f = fit([s for s, t in zip(seqs, keep) if t], shares_[keep], pairs)
        errs += [abs(f(s) - y) for s, y, t in zip(seqs, shares_, keep) if not t]
    return np.array(errs)


args = sys.argv[1:]
proposals = option(args, "--train-proposals")
data = json.load(open(args[0]))
train = train_shares(data)
# Each held-out reference pooled over its seeds, as measure25.sh pools it.
held = {s: shares(np.concatenate([np.load(f) for f in sorted(glob.glob(f"{here}/ref25/{s}-seed*.npy"))]),
                  f"{here}/ref25/{s}.pdb") for s in names}
model_dir = args[1] if len(args) > 1 else None
paths = {m["name"]: m["path"] for m in data["train"]}
for j, basin in enumerate(["alphaR", "alphaL"]):
    seqs = list(train)
    y = np.array([train[s][j] for s in seqs])
    predict = fit(seqs, y)
    fitted = np.array([predict(s) for s in seqs])
    print(f"{basin}: training set, additive fit: mean |error| {np.abs(fitted - y).mean():.3f}")
    for pairs, what in [(False, "additive"), (True, "additive + chemistry pairs")]:
        e = cross_validated(seqs, y, pairs)
        print(f"  a pair never seen (10-fold), {what}: mean |error| {e.mean():.3f}, "
              f"above 0.03: {(e > 0.03).mean():.2f}")
    errs, model_errs = [], []
    for s in names:
        line = f"  {s}: reference {held[s][j]:.3f}, additive {predict(s):.3f}"
        errs.append(abs(predict(s) - held[s][j]))
        if model_dir:
            q = [load(f"{model_dir}/{s}-q{k}-eval/metrics.json") for k in range(3)]
            got = [m["basins"].get(basin, 0.0) for m in q if m]
            if got:
                line += f", proposal {np.mean(got):.3f}"
                model_errs.append(abs(np.mean(got) - held[s][j]))
        print(line)
    print(f"  held out: mean |error| additive {np.mean(errs):.3f}"
          + (f", proposal {np.mean(model_errs):.3f}" if model_errs else ""))
    if proposals:
        for s in sorted(os.listdir(proposals)):
            f = os.path.join(proposals, s, "samples.npy")
            if s in train and os.path.exists(f):
                q = shares(np.load(f), os.path.join(paths[s], "topology.pdb"))[j]
                print(f"  trained on {s}: its data {train[s][j]:.3f}, additive {predict(s):.3f}, proposal {q:.3f}")
