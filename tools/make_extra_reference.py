#!/usr/bin/env python
"""Extra OpenMM reference for template and parameter coverage beyond alanine (one-off; needs
`pip install openmm pdbfixer`). Builds peptides with all 20 amino acids and the three HIS
variants, evaluates them with OpenMM's Reference platform in both setups, and writes
crates/bgen-system/tests/data/extra/<name>.{pdb,json}.

Usage: python tools/make_extra_reference.py SHARED_REFERENCE_DIR
"""
import json, os, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import regen  # shared/reference/regen.py: builder, setups, evaluation
import openmm, openmm.app as app, openmm.unit as u

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates/bgen-system/tests/data/extra")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(7)


def his_variants(top, pos, variants):
    """Re-protonate with explicit HIS variants (HID/HIE/HIP) in order of the HIS residues."""
    m = app.Modeller(top, pos)
    m.delete([a for a in m.topology.atoms() if a.element == app.element.hydrogen])
    ff = app.ForceField("amber14-all.xml")
    vs = []
    it = iter(variants)
    for r in m.topology.residues():
        vs.append(next(it) if r.name == "HIS" else None)
    m.addHydrogens(ff, variants=vs)
    return m.topology, m.positions


for name, seq, caps, variants in [
    ("all20_zwitterion", "ACDEFGHIKLMNPQRSTVWY", False, None),
    ("all20_capped", "ACDEFGHIKLMNPQRSTVWY", True, None),
    ("his_variants", "GHHHG", True, ["HID", "HIE", "HIP"]),
]:
    top, pos = regen.build_peptide(seq, caps, seed=2024)
    if variants:
        top, pos = his_variants(top, pos, variants)
    top, pos = regen.reorder_like_tleap(top, pos)
    result = {"sequence": seq, "caps": caps, "setups": {}}
    x0 = None
    for setup in ["amber99sbildn_obc", "amber14_obc1"]:
        system = regen.create_system(top, setup)
        if x0 is None:
            ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
            ctx.setPositions(pos)
            openmm.LocalEnergyMinimizer.minimize(ctx, 1.0, 2000)
            xm = ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(u.nanometer)
            confs = [xm, xm + rng.normal(0, 0.01, xm.shape), xm + rng.normal(0, 0.02, xm.shape)]
            x0 = [np.round(c, 6) for c in confs]
            result["positions"] = [c.tolist() for c in x0]
            with open(os.path.join(OUT, name + ".pdb"), "w") as f:
                app.PDBFile.writeFile(top, xm * u.nanometer, f)
        comp = regen.component_system(system)
        res = regen.evaluate(system, [c * u.nanometer for c in x0], [], comp)
        result["setups"][setup] = {
            "energy_total": [r["energy_total"] for r in res],
            "energy_groups": {k: [r["energy_groups"][k] for r in res] for k in res[0]["energy_groups"]},
            "energy_components": {k: [r["energy_components"][k] for r in res] for k in res[0]["energy_components"]},
            "forces_total": [np.round(r["forces_total"], 7).tolist() for r in res],
            "templates": None,
        }
        info = regen.template_info(top, regen.SETUPS[setup]["xml"])
        result["setups"][setup]["templates"] = [info[a.index]["template"] for a in top.atoms()]
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(result, f)
    print(name, top.getNumAtoms(), "atoms", {s: v["energy_total"][0] for s, v in result["setups"].items()})
