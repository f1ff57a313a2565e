"""Issue 25: where the zero-shot sampler's mean energy sits, against the references' seeds and
plain MD. For each held-out dipeptide, the mean potential energy (kT at 310 K) of each reference
seed (ref25/NAME-seed1.npy and -seed2.npy, by `bgen energy`, which names a missing one), of bgen's plain MD of it (MD/NAME: every saved
frame), and of the sampler's three seeds (RUNS/NAME-K/energies.npy). An exact sampler scored
against a reference seed cannot beat that seed's own offset in E-W2 (W2 >= |mean difference|).
Usage, in measure25.sh's directory: BGEN=bgen python3 energy25.py RUNS MD [MD2]
(MD2: a longer MD run of some of them, used where it exists)."""
import json
import os
import subprocess
import sys

import numpy as np

from m25 import here, names

KT = 0.0083144626 * 310.0
bgen = os.environ.get("BGEN", "bgen")


def reference(name, seed):
    f = f"{here}/ref25/{name}-seed{seed}.npy"
    out = subprocess.run([bgen, "energy", "--pdb", f"{here}/ref25/{name}.pdb", "--positions", f, "--json"],
                         check=True, capture_output=True, text=True).stdout
    return np.array([c["total"] for c in json.loads(out)["energies"]]) / KT


runs, md = sys.argv[1], sys.argv[2:]
print("mean potential energy, kT (standard error of a seed's mean from its sd / sqrt(frames)):")
print(f"{'':4} {'ref seed 1':>10} {'ref seed 2':>10} {'se':>5} {'plain MD':>9} {'sampler seeds 0-2':>26} {'sampler - MD':>13} {'- ref pooled':>13}")
for s in names:
    ref = [reference(s, k) for k in (1, 2)]
    mdir = next((f"{d}/{s}" for d in reversed(md) if os.path.exists(f"{d}/{s}/energies.npy")), None)
    e_md = np.load(f"{mdir}/energies.npy").mean() / KT if mdir else np.nan
    samp = [np.load(f"{runs}/{s}-{k}/energies.npy").mean() / KT for k in range(3)
            if os.path.exists(f"{runs}/{s}-{k}/energies.npy")]
    pooled = np.concatenate(ref).mean()
    se = max(r.std() / np.sqrt(len(r)) for r in ref)
    print(f"{s:4} {ref[0].mean():10.2f} {ref[1].mean():10.2f} {se:5.2f} {e_md:9.2f} "
          f"{' '.join(f'{v:8.2f}' for v in samp):>26} {np.mean(samp) - e_md:+13.2f} {np.mean(samp) - pooled:+13.2f}")
