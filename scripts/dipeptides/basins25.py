"""Issue 25: the basins of residue 2 from the proposal alone against the default sampler's, per
held-out dipeptide, over seeds 0-2 (`measure25.sh proposal zero` with the same MODEL first).
Usage, in measure25.sh's directory: python3 basins25.py m25-MODEL [--json out.json]
Prints, per dipeptide, the reference's alphaL / alphaR / beta and each seed's largest basin error
of the proposal (q) and of the sampler (s); a count of seeds within 0.03 for both."""
import json
import sys
from m25 import basin_error, load, names

d = sys.argv[1]
rows, n_q, n_s = {}, 0, 0
for s in names:
    q = [load(f"{d}/{s}-q{k}-eval/metrics.json") for k in range(3)]
    z = [load(f"{d}/{s}-{k}-eval/metrics.json") for k in range(3)]
    have = [m for m in q + z if m]
    if not have:
        continue
    ref = {k: v["value"] for k, v in have[0]["details"]["basins_reference"].items()}
    eq = [basin_error(m) for m in q if m]
    es = [basin_error(m) for m in z if m]
    n_q += sum(e <= 0.03 for e in eq)
    n_s += sum(e <= 0.03 for e in es)
    rows[s] = {"reference": ref, "proposal": eq, "sampler": es,
               "proposal_alphaR": [m["basins"].get("alphaR", 0.0) for m in q if m]}
    print(f"{s}  ref " + " ".join(f"{v:.3f}" for v in ref.values())
          + "  | q " + " ".join(f"{e:.3f}" for e in eq) + "  | s " + " ".join(f"{e:.3f}" for e in es))
print(f"runs with every basin within 0.03: proposal {n_q}, sampler {n_s}")
if "--json" in sys.argv:
    json.dump(rows, open(sys.argv[sys.argv.index("--json") + 1], "w"), indent=1)
