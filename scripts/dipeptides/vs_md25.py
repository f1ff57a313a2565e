"""The zero-shot sampler against bgen's own plain MD of the same wall time, per held-out dipeptide:
for each seed, the MD curve's prefix (measure25.sh md: 32 replicas from the built structure on
the same 2 cores) with the largest wall time not above the sampler's, and which of the two is
better on E-W2, T-W2 and basin error; a dipeptide counts for the generator on a metric when it
wins on at least two of the three seeds. Also where MD first matches seed 0 (the curve's
`reached`) and the sampler's share of that time (issue 25 asks for at most a third).
Reads the committed copies (zero25-hmc/: XY-K.json metrics and XY-K-summary.json; md25/XY.json
curves), or with arguments measure25.sh's own outputs:
  python3 vs_md25.py [MEASURE25_DIR [MODEL_OUT_DIR]]   (MODEL_OUT_DIR default m25-dipeptides)"""
import os
import sys

from m25 import basin_error, load, names

here = os.path.dirname(os.path.abspath(__file__))
if len(sys.argv) > 1:
    out = os.path.join(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "m25-dipeptides")
    paths = {
        "curve": lambda s: os.path.join(out, f"{s}-md-curve/curve.json"),
        "metrics": lambda s, k: os.path.join(out, f"{s}-{k}-eval/metrics.json"),
        "summary": lambda s, k: os.path.join(out, f"{s}-{k}/summary.json"),
    }
else:
    paths = {
        "curve": lambda s: os.path.join(here, f"md25/{s}.json"),
        "metrics": lambda s, k: os.path.join(here, f"zero25-hmc/{s}-{k}.json"),
        "summary": lambda s, k: os.path.join(here, f"zero25-hmc/{s}-{k}-summary.json"),
    }


wins = {"E-W2": [], "T-W2": [], "basins": []}
print("| dipeptide | sampler s | MD at that time: E-W2 / T-W2 / basin | generator wins (of 3 seeds) E / T / basin | MD matches seed 0 at: s | sampler share |")
print("|---|---|---|---|---|---|")
for s in names:
    curve = load(paths["curve"](s))
    runs = [(load(paths["metrics"](s, k)), load(paths["summary"](s, k))) for k in range(3)]
    runs = [(m, x) for m, x in runs if m and x]
    if not curve or not runs:
        print(f"| {s} | - | - | - | - | - |")
        continue
    counts = [0, 0, 0]
    md_at = None
    for m, x in runs:
        t = x["wall_seconds"]
        before = [p for p in curve["points"] if p["wall_seconds"] <= t] or curve["points"][:1]
        p = before[-1]
        md_at = md_at or p
        g = (m["energy_w2"], m["torus_w2"], basin_error(m))
        md = (p["energy_w2"], p["torus_w2"], p["basin_error"])
        for i in range(3):
            counts[i] += g[i] < md[i] or (g[i] == md[i] == 0.0)
    for key, c in zip(wins, counts):
        if c >= 2:
            wins[key].append(s)
    reach = curve.get("reached")
    t0 = runs[0][1]["wall_seconds"]
    share = f"{t0 / reach['wall_seconds']:.2f}" if reach else "MD never does"
    print(
        f"| {s} | {t0:.0f} | {md_at['energy_w2']:.2f} / {md_at['torus_w2']:.2f} / {md_at['basin_error']:.3f} |"
        f" {counts[0]} / {counts[1]} / {counts[2]} | {reach['wall_seconds']:.0f} |" if reach else
        f"| {s} | {t0:.0f} | {md_at['energy_w2']:.2f} / {md_at['torus_w2']:.2f} / {md_at['basin_error']:.3f} |"
        f" {counts[0]} / {counts[1]} / {counts[2]} | not within the run |",
        f"{share} |",
    )
print()
for key, v in wins.items():
    print(f"generator better than MD of the same time on {key}: {len(v)} of {len(names)} ({' '.join(v)})")
