"""The proposal's importance weights per held-out dipeptide, from measure25.sh snis (SNIS of
10,000 draws, seed 0): their ESS (truncated, as the samplers use them) and the Pareto k of
their raw tail (above 0.7 the weights' estimates are unreliable whatever the ESS), beside how
many of the default sampler's seeds 0-2 meet issue 25's bar. Usage, in measure25.sh's directory:
  python3 pareto25.py m25-dipeptides [m25-OTHER ...]"""
import sys

from m25 import load, names, within_bar

dirs = sys.argv[1:] or ["m25-dipeptides"]


def passes(d, s):
    """Seeds of `d`'s default sampler within the bar on `s` ("?" where a seed is not measured)."""
    bar = [within_bar(d, s, k) for k in range(3)]
    return f"{sum(b is True for b in bar)}{'?' if None in bar else ''}"


print("| dipeptide | " + " | ".join(f"{d}: ESS | k | seeds within the bar" for d in dirs) + " |")
print("|---|" + "---|---|---|" * len(dirs))
for s in names:
    cells = []
    for d in dirs:
        x = load(f"{d}/{s}-snis/summary.json")
        k = x and x.get("pareto_k")
        cells += [f"{x['ess']:.4f}" if x else "-", f"{k:.2f}" if k is not None else "-", passes(d, s)]
    print(f"| {s} | " + " | ".join(cells) + " |")
