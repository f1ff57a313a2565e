"""The tables in docs/results.md of the transferable dipeptide model (from compare.sh's cmp/ directory)."""
import json
import os
import statistics as st
import sys

names = [l.strip() for l in open(sys.argv[1] if len(sys.argv) > 1 else "held_out.txt") if l.strip() and not l.startswith("#")]


def load(path):
    p = f"cmp/{path}-eval/metrics.json" if not path.startswith("floor") else f"cmp/{path}/metrics.json"
    return json.load(open(p)) if os.path.exists(p) else None


def ets(ms):
    """E-W2 / T-W2 / TICA-W2, mean over the runs that exist (a range where several)."""
    ms = [m for m in ms if m]
    if not ms:
        return "-"
    out = []
    for k in ("energy_w2", "torus_w2", "tica_w2"):
        v = [m[k] for m in ms]
        out.append(f"{v[0]:.2f}" if len(v) == 1 else f"{min(v):.2f}-{max(v):.2f}")
    return " / ".join(out)


def basins(ms, key="basins_samples"):
    ms = [m for m in ms if m]
    if not ms:
        return "-"
    return " ; ".join("/".join(f"{m['details'][key][b]['value']:.2f}" for b in ("beta", "alphaR", "alphaL")) for m in ms)


def basins_mean(ms):
    """Basin shares averaged over runs (SNIS seeds)."""
    ms = [m for m in ms if m]
    if not ms:
        return "-"
    return "/".join(f"{st.mean(m['details']['basins_samples'][b]['value'] for m in ms):.2f}" for b in ("beta", "alphaR", "alphaL"))


def smc(who, s):
    return [load(f"{who}-{s}-smc-{k}") for k in range(3)]


print("| held out | reference floor | transfer SNIS | transfer SMC | single, same time: SMC | single, 500 steps: SNIS | single, 500 steps: SMC | MD, same evaluations |")
print("|---|---|---|---|---|---|---|---|")
for s in names:
    snis = lambda who: [load(f"{who}-{s}-snis-{k}") for k in range(3)]
    print(f"| {s} | {ets([load('floor-' + s)])} | {ets(snis('transfer'))} | {ets(smc('transfer', s))} | {ets(smc('single', s))} | {ets(snis('early'))} | {ets(smc('early', s))} | {ets([load('md-' + s)])} |")
print()
print("| held out | reference | transfer SNIS (mean of 3) | transfer SMC | single, 500 steps: SNIS (mean of 3) | single, 500 steps: SMC | MD, same evaluations | transfer SNIS ESS | transfer proposal alphaL |")
print("|---|---|---|---|---|---|---|---|---|")
for s in names:
    fl = load("floor-" + s)
    ref = "/".join(f"{fl['details']['basins_reference'][b]['value']:.2f}" for b in ("beta", "alphaR", "alphaL"))
    sn = [m for m in (load(f"transfer-{s}-snis-{k}") for k in range(3)) if m]
    ess = f"{min(m['ess'] for m in sn):.4f}-{max(m['ess'] for m in sn):.4f}" if sn else "-"
    pa = [next((v for k, v in m["details"]["proposal_basins"].items() if k.endswith("alphaL")), 0.0) for m in sn]
    pal = f"{st.mean(pa):.4f}" if pa else "-"
    early_snis = [load(f"early-{s}-snis-{k}") for k in range(3)]
    print(f"| {s} | {ref} | {basins_mean(sn)} | {basins(smc('transfer', s))} | {basins_mean(early_snis)} | {basins(smc('early', s))} | {basins([load('md-' + s)])} | {ess} | {pal} |")
