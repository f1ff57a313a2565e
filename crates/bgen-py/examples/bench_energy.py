"""bgen's energies from Python beside `bgen bench energy` and OpenMM's Python loop, in one run.

The same 10,000 alanine-dipeptide conformations (the structure + 0.005 nm noise, as `bgen bench
energy` makes them) through:
  * bgen.System.energy_and_forces (one batched call: threads over the batch, GIL released),
  * `bgen bench energy --systems aldp` (the command line's own figure, same machine, same run),
  * OpenMM's Python loop (setPositions + getState(energy, forces) per conformation, the way
    Boltzmann-generator codes evaluate samples) on its CPU (1 thread) and Reference platforms,
    on the first 2,000 of them; the energies are cross-checked against bgen's.

Run: make python && .venv/bin/pip install openmm && .venv/bin/python crates/bgen-py/examples/bench_energy.py
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import bgen

ROOT = Path(__file__).resolve().parents[3]
N, N_OPENMM = 10_000, 2_000

aldp = bgen.System.named("aldp")
rng = np.random.default_rng(0)
x = aldp.positions[None] + 0.005 * rng.standard_normal((N, aldp.n_atoms, 3))


def best_of(k, f):
    times = []
    for _ in range(k):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


python_rate = N / best_of(3, lambda: aldp.energy_and_forces(x))
energies, _ = aldp.energy_and_forces(x)
print(f"{os.cpu_count()} cores; {N} aldp conformations, energy + forces per second (best of 3)")
print(f"  bgen from Python (bgen.System.energy_and_forces): {python_rate:12,.0f}/s")

binary = next((p for p in (ROOT / "target/release/bgen", ROOT / "target/debug/bgen") if p.exists()), None)
cli_rate = None
if binary is not None:
    out = subprocess.run([str(binary), "bench", "energy", "--systems", "aldp", "--openmm-n", "0"],
                         capture_output=True, text=True, check=True).stdout
    row = next(line for line in out.splitlines() if line.startswith("aldp"))
    # system atoms forcefield "bgen 1 thr" "bgen all" ...
    cli_rate = float(re.split(r"\s+", row.strip())[4].replace(",", ""))
    print(f"  bgen bench energy (the command line, all threads):  {cli_rate:12,.0f}/s   ({binary.relative_to(ROOT)})")
else:
    print("  bgen bench energy: no target/release/bgen (cargo build --release -p bgen)")

try:
    import openmm
    import openmm.app as app
    import openmm.unit as unit
except ImportError:
    print("  OpenMM: not installed (.venv/bin/pip install openmm)")
    sys.exit(0)

pdb = app.PDBFile(str(ROOT / "crates/bgen-system/data/systems/aldp.pdb"))
ff = app.ForceField("amber99sbildn.xml", "tip3p.xml", "amber99_obc.xml")
system = ff.createSystem(pdb.topology, nonbondedMethod=app.NoCutoff, constraints=None)
best = 0.0
for name, props in [("CPU", {"Threads": "1"}), ("Reference", {})]:
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(name), props)
    e = np.empty(N_OPENMM)
    t0 = time.perf_counter()
    for i in range(N_OPENMM):
        ctx.setPositions(x[i])
        st = ctx.getState(getEnergy=True, getForces=True)
        e[i] = st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        st.getForces(asNumpy=True)
    rate = N_OPENMM / (time.perf_counter() - t0)
    best = max(best, rate)
    dev = np.max(np.abs(e - energies[:N_OPENMM]) / np.abs(energies[:N_OPENMM]))
    print(f"  OpenMM {openmm.__version__} Python loop, {name:<9}:      {rate:12,.0f}/s   (max relative energy difference to bgen {dev:.1e})")
print(f"bgen from Python / best OpenMM loop: {python_rate / best:.1f}x", end="")
print(f"; bgen from Python / bgen bench energy: {python_rate / cli_rate:.2f}" if cli_rate else "")
