"""Issue 25's SNIS ESS per coordinate: ESS = exp(-c d) over a molecule's d = 3N - 6
coordinates, so c = -ln(ESS) / d compares proposals across sizes. ECNF++'s anchor (ESS 0.05 on
the dipeptide AA, 23 atoms as built here: d = 63) is c = 0.0476; the same c on each held-out
dipeptide gives the ESS that matches the anchor's quality per coordinate.
Usage: python3 ess_rate25.py [DIR] (default zero25-388c-mixed: the default sampler's summaries,
NAME-SEED-summary.json)."""
import math
import os
import sys

from m25 import here, load, names

d_in = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "zero25-388c-mixed")
anchor = math.log(1 / 0.05) / (3 * 23 - 6)
print(f"ECNF++ on AA: c = {anchor:.4f}")
print("| dipeptide | atoms | d | ESS, seeds 0-2 | c | ESS at ECNF++'s c | seeds at or below ECNF++'s c |")
print("|---|---|---|---|---|---|---|")
total = 0
for s in names:
    atoms = sum(l.startswith(("ATOM", "HETATM")) for l in open(os.path.join(here, "ref25", f"{s}.pdb")))
    d = 3 * atoms - 6
    ess = [load(os.path.join(d_in, f"{s}-{k}-summary.json"))["ess"] for k in range(3)]
    c = [-math.log(e) / d for e in ess]
    ok = sum(x <= anchor for x in c)
    total += ok
    print(f"| {s} | {atoms} | {d} | {' / '.join(f'{e:.4f}' for e in ess)} | {min(c):.3f}-{max(c):.3f} | {math.exp(-anchor * d):.4f} | {ok} |")
print(f"runs at or below ECNF++'s c: {total} of {3 * len(names)}")
