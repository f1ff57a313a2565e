"""What issue 25's table scripts share: the held-out dipeptides (held_out_25.txt), a JSON file
read if it exists, the basins of residue 2 from coordinates, and a result's largest basin error against its reference."""
import json
import os

here = os.path.dirname(os.path.abspath(__file__))
names = [l.strip() for l in open(os.path.join(here, "held_out_25.txt")) if l.strip() and not l.startswith("#")]


def load(path):
    return json.load(open(path)) if os.path.exists(path) else None


def option(args, name):
    """The value after `name` in the list `args`, both removed from it; None when absent."""
    if name not in args:
        return None
    i = args.index(name)
    value = args[i + 1]
    del args[i:i + 2]
    return value


def basin_error(m):
    """The largest difference of a basin's population between samples and reference
    (`bgen eval`'s metrics.json)."""
    d = m["details"]
    return max(abs(v["value"] - d["basins_reference"].get(k, {"value": 0.0})["value"]) for k, v in d["basins_samples"].items())


def matched(d, s, k):
    """(E-W2 kT, T-W2) of run `d`/`s`-`k` at the floor's sizes: the mean over the disjoint
    subsets that measure25.sh matched scored against the floor's reference half; None if not
    measured."""
    import glob

    subsets = [load(f) for f in sorted(glob.glob(f"{d}/{s}-{k}-matched/sub*/metrics.json"))]
    if not subsets or not os.path.exists(f"{d}/{s}-{k}-matched/done"):
        return None
    return tuple(sum(m[key] for m in subsets) / len(subsets) for key in ("energy_w2", "torus_w2"))


def within_bar(d, s, k):
    """Whether run `d`/`s`-`k` meets issue 25's bar: E-W2 at most the floor + 0.2 kT and T-W2
    at most the floor + 0.1, both at the floor's sizes (`matched`), and every basin within
    0.03 of the pooled reference. None where something is not measured."""
    fl, m, w = load(f"m25-floor/{s}/metrics.json"), load(f"{d}/{s}-{k}-eval/metrics.json"), matched(d, s, k)
    if not (fl and m and w):
        return None
    return w[0] <= fl["energy_w2"] + 0.2 and w[1] <= fl["torus_w2"] + 0.1 and basin_error(m) <= 0.03


def dihedral(x, i, j, k, l):
    """Dihedral angles (degrees) of atoms i-j-k-l in frames x (n, atoms, 3)."""
    import numpy as np  # here, so that the table scripts run on a Python without numpy

    b0, b1, b2 = x[:, i] - x[:, j], x[:, k] - x[:, j], x[:, l] - x[:, k]
    b1 = b1 / np.linalg.norm(b1, axis=1, keepdims=True)
    v = b0 - (b0 * b1).sum(1, keepdims=True) * b1
    w = b2 - (b2 * b1).sum(1, keepdims=True) * b1
    return np.degrees(np.arctan2((np.cross(b1, v) * w).sum(1), (v * w).sum(1)))


def shares(x, pdb):
    """(alphaR, alphaL) of frames x (n, atoms, 3) of the zwitterionic dipeptide `pdb`."""
    atoms = [(l[12:16].strip(), int(l[22:26])) for l in open(pdb) if l.startswith(("ATOM", "HETATM"))]
    at = lambda n, r: atoms.index((n, r))
    psi1 = dihedral(x.reshape(len(x), len(atoms), 3), at("N", 1), at("CA", 1), at("C", 1), at("N", 2))
    phi2 = dihedral(x.reshape(len(x), len(atoms), 3), at("C", 1), at("N", 2), at("CA", 2), at("C", 2))
    left = phi2 >= 0
    return float(((~left) & (psi1 >= -150) & (psi1 < 50)).mean()), float(left.mean())


AA = "ACDEFGHIKLMNPQRSTVWY"
RUNGS = 4  # train_data.sh's ladders: replica % 4 is the rung, 0 the 310 K one


def train_shares(dataset):
    """{name: (alphaR, alphaL)} of each training dipeptide of a merged data set (its JSON
    loaded), from its own 310 K rung."""
    import numpy as np

    out = {}
    for m in dataset["train"]:
        f = np.load(os.path.join(m["path"], "frames.npy"), mmap_mode="r")
        rung = np.load(os.path.join(m["path"], "replica.npy")) % RUNGS
        out[m["name"]] = shares(np.asarray(f[rung == 0]), os.path.join(m["path"], "topology.pdb"))
    return out


def residue_features(seq):
    """An intercept and one-hot residues 1 and 2: 41 numbers."""
    import numpy as np

    v = np.zeros(41)
    v[0], v[1 + AA.index(seq[0])], v[21 + AA.index(seq[1])] = 1, 1, 1
    return v


def ridge_logit(x, shares_):
    """Coefficients of the ridge fit (1, the intercept free) of logit(share) on features x."""
    import numpy as np

    logit = np.log((shares_ + 0.003) / (1 - shares_ + 0.003))
    ridge = np.eye(x.shape[1])
    ridge[0, 0] = 0
    return np.linalg.solve(x.T @ x + ridge, x.T @ logit)
