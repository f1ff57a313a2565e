#!/usr/bin/env python
"""Build the embedded ala3 / ala4 structures (one-off; needs `pip install openmm pdbfixer`).

Same protocol as the OpenMM reference data in shared/reference/regen.py: ideal extended backbone,
pdbfixer adds side chains / termini / hydrogens at pH 7, atoms reordered to tleap order, then
minimised with the system's own setup. Usage: python tools/build_peptides.py SHARED_REFERENCE_DIR OUT_DIR
"""
import os, sys
sys.path.insert(0, sys.argv[1])
import regen  # noqa: E402  (shared/reference/regen.py: builder and setups)
import openmm, openmm.app as app, openmm.unit as u  # noqa: E402

OUT = sys.argv[2]
for name, seq, caps, setup in [("ala3", "AAA", False, "amber14_obc1"), ("ala4", "AAA", True, "amber99sbildn_obc")]:
    top, pos = regen.build_peptide(seq, caps, seed=2024)
    top, pos = regen.reorder_like_tleap(top, pos)
    system = regen.create_system(top, setup)
    integ = openmm.VerletIntegrator(0.001)
    ctx = openmm.Context(system, integ, openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(pos)
    openmm.LocalEnergyMinimizer.minimize(ctx, 1.0, 5000)
    st = ctx.getState(getPositions=True, getEnergy=True)
    with open(os.path.join(OUT, name + ".pdb"), "w") as f:
        app.PDBFile.writeFile(top, st.getPositions(), f)
    print(name, top.getNumAtoms(), "atoms, E =", st.getPotentialEnergy())
