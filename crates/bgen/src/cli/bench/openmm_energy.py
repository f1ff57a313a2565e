#!/usr/bin/env python
"""OpenMM peer for `bgen bench energy`: the Python loop that Boltzmann-generator codes use to
evaluate samples (setPositions + getState(getEnergy, getForces) per conformation).

Usage: python openmm_energy.py PDB SETUP POSITIONS.npy OUT.json
SETUP is amber99sbildn-obc2 or amber14-obc1 (the seeds' createSystem arguments).
Writes evals/s per platform and the first energies (kJ/mol) for a cross-check.
"""
import json, sys, time
import numpy as np
import openmm, openmm.app as app, openmm.unit as u

pdb_path, setup, pos_path, out_path = sys.argv[1:5]
pdb = app.PDBFile(pdb_path)
if setup == "amber99sbildn-obc2":
    ff = app.ForceField("amber99sbildn.xml", "tip3p.xml", "amber99_obc.xml")
    system = ff.createSystem(pdb.topology, nonbondedMethod=app.NoCutoff, constraints=None)
else:
    ff = app.ForceField("amber14-all.xml", "implicit/obc1.xml")
    system = ff.createSystem(pdb.topology, nonbondedMethod=app.CutoffNonPeriodic, nonbondedCutoff=2.0 * u.nanometer, constraints=None)
X = np.load(pos_path)
out = {"openmm": openmm.__version__, "platforms": {}}
for name, props in [("CPU", {"Threads": "1"}), ("Reference", {})]:
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(name), props)
    energies = []
    t0 = time.perf_counter()
    for x in X:
        ctx.setPositions(x)
        st = ctx.getState(getEnergy=True, getForces=True)
        energies.append(st.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole))
        st.getForces(asNumpy=True)
    el = time.perf_counter() - t0
    out["platforms"][name] = {"evals": len(X), "seconds": el, "evals_per_s": len(X) / el, "energies": energies[:20]}
json.dump(out, open(out_path, "w"))
