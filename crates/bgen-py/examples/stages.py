"""Every stage through its typed settings, from Python (the same as
crates/bgen/examples/stages.rs in Rust): MD of alanine dipeptide, a time split, a small TarFlow
on internal coordinates, SNIS and SMC, and the evaluation of both against the shipped held-out
replica-exchange MD. 5-10 minutes on 2 cores; a demonstration of the API
(`bgen run` has the settings for quality).

Run: make python && .venv/bin/python crates/bgen-py/examples/stages.py [OUT_DIR]
"""

import sys
from pathlib import Path

import bgen

out = Path(sys.argv[1] if len(sys.argv) > 1 else "aldp-stages-py")
repo = Path(__file__).resolve().parents[3]

# MD: two 2.5 ns replicas at 300 K (resumes if killed; a finished run is kept).
md = bgen.md(bgen.MdConfig(out=out / "md", system="aldp", ns=2.5, replicas=2,
                           resume=(out / "md" / "run.json").exists()))
print(f"md: {md['frame_count']} frames, <U> {md['mean_energy_kj_mol']:.2f} kJ/mol")

# Train / validation / test in consecutive time blocks of each replica.
print("split:", bgen.split(runs=[out / "md"], out=out / "data"))

# A small TarFlow on internal coordinates (the default), 1,500 steps on 2 workers.
train = bgen.TrainConfig(data=out / "data" / "train", out=out / "model", steps=1500, threads=2,
                         resume=(out / "model" / "latest.json").exists())
print(f"train: validation NLL {bgen.train(train)['val_nll']:.3f} per dim")

# SNIS and SMC, each scored against the shipped held-out reference.
reference = repo / "models" / "reference" / "aldp-300K-remd.npy"
for method, n in [("snis", 5000), ("smc", 1000)]:
    s = bgen.sample(bgen.SampleConfig(out=out / f"sample-{method}", run=out / "model", method=method,
                                      n=n, threads=2))
    m = bgen.evaluate(out / f"sample-{method}", reference, out / f"eval-{method}", system="aldp")
    print(f"{method}: ESS {m['ess']:.3f}, E-W2 {m['energy_w2']:.3f} kT, T-W2 {m['torus_w2']:.3f} "
          f"({s['summary']['wall_seconds']:.0f} s of sampling)")
