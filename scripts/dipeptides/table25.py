"""Issue 25's table from measure25.sh's directories: per held-out dipeptide, the reference floor
(seed 2 against seed 1; seeds 3+4 against 1+2 where references.sh more ran them), the zero-shot
default sampler over seeds 0-2 (E-W2 kT and T-W2 against the pooled reference, and at the
floor's sizes against the floor's reference half, which is what compares with the floor;
largest basin error; SNIS/SMC ESS; wall s), how many seeds meet the issue's bar (m25.within_bar;
"?" where a seed is not measured) and the MD time (ns, wall s) at which bgen's own MD first
matches seed 0. Usage: python3 table25.py [MODEL_DIR_NAME] (default m25-dipeptides)."""
import sys

from m25 import basin_error, load, matched, names, within_bar

out = sys.argv[1] if len(sys.argv) > 1 else "m25-dipeptides"


def span(v, f="{:.2f}"):
    v = [x for x in v if x is not None]
    if not v:
        return "-"
    return f.format(v[0]) if len(v) == 1 else f"{f.format(min(v))}-{f.format(max(v))}"


print("| dipeptide | floor E-W2 / T-W2 | zero-shot E-W2 | T-W2 | at the floor's sizes: E-W2 | T-W2 | basin err | seeds within the bar | ESS | sampler s | MD to match: ns | MD s |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for s in names:
    fl = load(f"m25-floor/{s}/metrics.json")
    ms = [load(f"{out}/{s}-{k}-eval/metrics.json") for k in range(3)]
    sm = [load(f"{out}/{s}-{k}/summary.json") for k in range(3)]
    ok = [m for m in ms if m]
    curve = load(f"{out}/{s}-md-curve/curve.json")
    reach = curve and curve.get("reached")
    fair = [matched(out, s, k) for k in range(3)]
    bar = [within_bar(out, s, k) for k in range(3)]
    print(
        f"| {s} | {fl['energy_w2']:.2f} / {fl['torus_w2']:.2f} |" if fl else f"| {s} | - |",
        span([m["energy_w2"] for m in ok]),
        "|", span([m["torus_w2"] for m in ok]),
        "|", span([w[0] for w in fair if w]),
        "|", span([w[1] for w in fair if w]),
        "|", span([basin_error(m) for m in ok], "{:.4f}"),
        "|", f"{sum(b is True for b in bar)}{'?' if None in bar else ''}",
        "|", span([x.get("ess") for x in sm if x], "{:.4f}"),
        "|", span([x.get("wall_seconds") for x in sm if x], "{:.0f}"),
        "|", f"{reach['ns']:.2f}" if reach else ("not in run" if curve else "-"),
        "|", f"{reach['wall_seconds']:.0f} |" if reach else "- |",
    )
