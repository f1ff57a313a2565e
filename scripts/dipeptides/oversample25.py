"""Issue 25: a `bgen train --oversample` file that draws the training dipeptides more often the
further residue 2's basins in their own 310 K data are from what the residues alone give (the
additive fit of additive25.py, over all training pairs): 1 + (|alphaR residual| - 0.03) / 0.02
+ (|alphaL residual| - 0.02) / 0.01, each term rounded down and at least 0, at most 8 in all.
The transferable model gives a pair about what its residues give (results.md), so these are the
pairs it fits worst. Also writes each pair's shares beside the fit's (OUT.tsv).
Usage: python3 oversample25.py DATASET.json OUT.txt"""
import json
import os
import sys

import numpy as np

from m25 import residue_features, ridge_logit, train_shares


def draws(res_r, res_l):
    d = 1 + np.floor(np.maximum(0, res_r - 0.03) / 0.02) + np.floor(np.maximum(0, res_l - 0.02) / 0.01)
    return np.clip(d, 1, 8).astype(int)


data, out = json.load(open(sys.argv[1])), sys.argv[2]
own = train_shares(data)
seqs = sorted(own)
y = np.array([own[s][:2] for s in seqs])
x = np.array([residue_features(s) for s in seqs])
fit = np.stack([1 / (1 + np.exp(-x @ ridge_logit(x, y[:, j]))) for j in range(2)], 1)
d = draws(abs(y[:, 0] - fit[:, 0]), abs(y[:, 1] - fit[:, 1]))
with open(out, "w") as fh:
    fh.write("# issue 25 (oversample25.py): training dipeptides drawn more often the further their basins\n"
             "# are from the additive residue fit\n")
    fh.writelines(f"{s} {k}\n" for s, k in zip(seqs, d) if k > 1)
with open(os.path.splitext(out)[0] + ".tsv", "w") as fh:
    fh.write("name\talphaR\talphaR_additive\talphaL\talphaL_additive\tdraws\n")
    fh.writelines(f"{s}\t{a:.4f}\t{b:.4f}\t{c:.4f}\t{e:.4f}\t{k}\n" for s, (a, c), (b, e), k in zip(seqs, y, fit, d))
print(f"{(d > 1).sum()} of {len(seqs)} pairs drawn more than once; an epoch {d.sum() / len(seqs):.2f}x the frames")
