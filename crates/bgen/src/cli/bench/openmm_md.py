#!/usr/bin/env python
"""OpenMM peer for `bgen bench md`: LangevinMiddleIntegrator (1/ps, 1 fs, no constraints,
CMMotionRemover) stepped in chunks of 500 steps without reporters, per platform.

Usage: python openmm_md.py PDB SETUP TEMPERATURE SECONDS THREADS OUT.json
Writes steps/s and ns/day for CPU (1 thread), CPU (THREADS threads) and Reference.
"""
import json, sys, time
import openmm, openmm.app as app, openmm.unit as u

pdb_path, setup, temperature, seconds, threads, out_path = sys.argv[1:7]
temperature, seconds = float(temperature), float(seconds)
pdb = app.PDBFile(pdb_path)
if setup == "amber99sbildn-obc2":
    ff = app.ForceField("amber99sbildn.xml", "tip3p.xml", "amber99_obc.xml")
    system = ff.createSystem(pdb.topology, nonbondedMethod=app.NoCutoff, constraints=None)
else:
    ff = app.ForceField("amber14-all.xml", "implicit/obc1.xml")
    system = ff.createSystem(pdb.topology, nonbondedMethod=app.CutoffNonPeriodic,
                             nonbondedCutoff=2.0 * u.nanometer, constraints=None)
out = {"openmm": openmm.__version__, "platforms": {}}
runs = [("CPU 1 thread", "CPU", {"Threads": "1"}), (f"CPU {threads} threads", "CPU", {"Threads": threads}),
        ("Reference", "Reference", {})]
for label, name, props in runs:
    integ = openmm.LangevinMiddleIntegrator(temperature * u.kelvin, 1 / u.picosecond, 0.001 * u.picoseconds)
    integ.setRandomNumberSeed(1)
    ctx = openmm.Context(system, integ, openmm.Platform.getPlatformByName(name), props)
    ctx.setPositions(pdb.positions)
    openmm.LocalEnergyMinimizer.minimize(ctx)
    ctx.setVelocitiesToTemperature(temperature * u.kelvin, 1)
    integ.step(500)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        integ.step(500)
        steps += 500
    el = time.perf_counter() - t0
    out["platforms"][label] = {"steps": steps, "seconds": el, "steps_per_s": steps / el,
                               "ns_per_day": steps * 1e-6 / el * 86400}
json.dump(out, open(out_path, "w"))
