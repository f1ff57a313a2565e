"""Collects the issue-17 comparison into a markdown table (cmp/*-eval/metrics.json)."""
import json
import os
import statistics as st
import sys

names = [l.strip() for l in open(sys.argv[1] if len(sys.argv) > 1 else "held_out.txt") if l.strip() and not l.startswith("#")]


def load(path):
    p = f"cmp/{path}-eval/metrics.json"
    return json.load(open(p)) if os.path.exists(p) else None


def basins(m, key="basins_samples"):
    b = m["details"][key]
    return "/".join(f"{b[k]['value']:.2f}" for k in ("beta", "alphaR", "alphaL")) if b else "-"


def row(label, ms, ref_basins=False):
    ms = [m for m in ms if m]
    if not ms:
        return f"| {label} | - | - | - | - | - |"
    f = lambda k: (f"{st.mean(m[k] for m in ms):.2f}" + (f" ± {st.stdev(m[k] for m in ms):.2f}" if len(ms) > 1 else ""))
    ess = "-" if ms[0]["ess"] is None else f"{st.mean(m['ess'] for m in ms):.4f}"
    b = " ; ".join(basins(m) for m in ms)
    return f"| {label} | {ess} | {f('energy_w2')} | {f('torus_w2')} | {f('tica_w2')} | {b} |"


for s in names:
    fl = json.load(open(f"cmp/floor-{s}/metrics.json"))
    print(f"\n**{s}** (reference basins beta/alphaR/alphaL {basins(fl, 'basins_reference')}; floor E-W2 {fl['energy_w2']:.2f}, T-W2 {fl['torus_w2']:.2f}, TICA-W2 {fl['tica_w2']:.2f})\n")
    print("| method | ESS | E-W2 (kT) | T-W2 | TICA-W2 | basins beta/alphaR/alphaL |")
    print("|---|---|---|---|---|---|")
    for who in ("transfer", "single", "early"):
        print(row(f"{who} SNIS (3 seeds)", [load(f"{who}-{s}-snis-{k}") for k in range(3)]))
        print(row(f"{who} SMC", [load(f"{who}-{s}-smc-0")]))
    print(row("MD, same energy evaluations", [load(f"md-{s}")]))
