"""Issue 25: how predictable a held-out dipeptide's basins are from the residues alone. Fits,
over the training set's 310 K frames, logit(share) = a + b[residue 1] + c[residue 2] (ridge 1)
for alphaR and alphaL of residue 2 (bgen eval's definitions: alphaL phi2 >= 0, alphaR -150 <=
psi1 < 50), and predicts each held-out dipeptide's from the same 41 numbers: the floor that a
transferable proposal should beat, set beside the model's own shares when m25-MODEL holds
`measure25.sh proposal`.
With --train-proposals DIR (shrink25.sh's), also each training dipeptide in DIR: its own data's
share, the additive fit's, and its proposal's (DIR/NAME/samples.npy): how well the model fits
the molecules it trained on.
Usage, in measure25.sh's directory: python3 additive25.py DATASET.json [m25-MODEL]
[--train-proposals DIR]"""
import glob
import json
import os
import sys

import numpy as np

from m25 import here, load, names, option, shares

AA = "ACDEFGHIKLMNPQRSTVWY"


def features(seq):
    v = np.zeros(41)
    v[0], v[1 + AA.index(seq[0])], v[21 + AA.index(seq[1])] = 1, 1, 1
    return v


args = sys.argv[1:]
proposals = option(args, "--train-proposals")
data = json.load(open(args[0]))
train = {}
for m in data["train"]:
    f = np.load(os.path.join(m["path"], "frames.npy"), mmap_mode="r")
    rung = np.load(os.path.join(m["path"], "replica.npy")) % 4
    train[m["name"]] = shares(np.asarray(f[rung == 0]), os.path.join(m["path"], "topology.pdb"))
# Each held-out reference pooled over its seeds, as measure25.sh pools it.
held = {s: shares(np.concatenate([np.load(f) for f in sorted(glob.glob(f"{here}/ref25/{s}-seed*.npy"))]),
                  f"{here}/ref25/{s}.pdb") for s in names}
x = np.array([features(s) for s in train])
model_dir = args[1] if len(args) > 1 else None
paths = {m["name"]: m["path"] for m in data["train"]}
for j, basin in enumerate(["alphaR", "alphaL"]):
    y = np.array([train[s][j] for s in train])
    logit = np.log((y + 0.003) / (1 - y + 0.003))
    ridge = np.eye(41)
    ridge[0, 0] = 0
    coef = np.linalg.solve(x.T @ x + ridge, x.T @ logit)
    predict = lambda s: float(1 / (1 + np.exp(-features(s) @ coef)))
    fit = np.array([predict(s) for s in train])
    print(f"{basin}: training set, additive fit: mean |error| {np.abs(fit - y).mean():.3f}")
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
