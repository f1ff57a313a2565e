//! Energies, forces and parameters against OpenMM 8.6.1 (Reference platform) for every stored
//! conformation of alanine dipeptide (both setups) and hexa-alanine (amber14-obc1).
//! Data: tests/data/<system>/ (copied from the project's shared reference set; see its README).

use bgen_system::{Setup, System};
use serde_json::Value;
use std::path::PathBuf;

fn data(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(path)
}

fn reference(system: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(data(&format!("{system}/reference.json"))).unwrap(),
    )
    .unwrap()
}

fn setup_of(key: &str) -> Setup {
    Setup::from_name(key).unwrap()
}

fn as_vec(v: &Value) -> Vec<f64> {
    fn flat(v: &Value, out: &mut Vec<f64>) {
        match v {
            Value::Array(a) => a.iter().for_each(|x| flat(x, out)),
            Value::Number(n) => out.push(n.as_f64().unwrap()),
            _ => panic!("unexpected {v}"),
        }
    }
    let mut out = vec![];
    flat(v, &mut out);
    out
}

/// |a - b| <= 1e-6 max(1, |b|)  (i.e. 1e-6 relative, or 1e-6 kJ/mol for small terms)
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

fn check_system(system: &str) {
    let r = reference(system);
    let pos = &r["positions"];
    let labels = r["conformation_labels"].as_array().unwrap();
    for (key, s) in r["setups"].as_object().unwrap() {
        let sys = System::named(system, Some(setup_of(key)), None).unwrap();
        assert!(
            (sys.kt() - s["kT_kJ_per_mol"].as_f64().unwrap()).abs() < 1e-12,
            "kT"
        );
        let n = sys.n_atoms();
        let mut worst_e: f64 = 0.0;
        let mut worst_f: f64 = 0.0;
        for (c, label) in labels.iter().enumerate() {
            let x = as_vec(&pos[c]);
            let mut f = vec![0.0; 3 * n];
            let e = sys.energy_and_forces(&x, &mut f);
            let named: std::collections::HashMap<_, _> = e.named().into_iter().collect();
            let mut want = vec![("total", s["energy_total"][c].as_f64().unwrap())];
            for g in ["bond", "angle", "torsion", "nonbonded", "gb"] {
                want.push((g, s["energy_groups"][g][c].as_f64().unwrap()));
            }
            for (k, v) in s["energy_components"].as_object().unwrap() {
                want.push((k.as_str(), v[c].as_f64().unwrap()));
            }
            assert_eq!(want.len(), 12);
            for (k, w) in want {
                let got = named[k];
                worst_e = worst_e.max((got - w).abs());
                assert!(
                    close(got, w),
                    "{system} {key} {label} {k}: bgen {got:.9} OpenMM {w:.9}"
                );
            }
            // energy without gradient agrees with energy with gradient
            assert!((sys.energy(&x).total() - e.total()).abs() < 1e-9);
            let fw = as_vec(&s["forces_total"][c]);
            for (a, (got, w)) in f.iter().zip(&fw).enumerate() {
                worst_f = worst_f.max((got - w).abs());
                // stored with 10 significant digits
                assert!(
                    (got - w).abs() <= 1e-5 + 1e-9 * w.abs(),
                    "{system} {key} {label} force atom {} comp {}: bgen {got} OpenMM {w}",
                    a / 3,
                    a % 3
                );
            }
        }
        // per-group forces where stored
        let ng = s["forces_groups_num_conformations"].as_u64().unwrap() as usize;
        for c in 0..ng {
            let x = as_vec(&pos[c]);
            for g in ["bond", "angle", "torsion", "nonbonded", "gb"] {
                let got = group_forces(&sys, &x, g);
                let w = as_vec(&s["forces_groups"][g][c]);
                for (a, (gv, wv)) in got.iter().zip(&w).enumerate() {
                    assert!(
                        (gv - wv).abs() <= 1e-5 + 1e-9 * wv.abs(),
                        "{system} {key} conf {c} {g} force {}: bgen {gv} OpenMM {wv}",
                        a / 3
                    );
                }
            }
        }
        eprintln!("{system} {key}: {} conformations, max |dE| {worst_e:.2e} kJ/mol, max |dF| {worst_f:.2e} kJ/mol/nm", labels.len());
    }
}

/// Forces of one group, from a copy of the parameters with the other terms removed.
fn group_forces(sys: &System, x: &[f64], group: &str) -> Vec<f64> {
    let mut p = sys.params.clone();
    let keep_nb = group == "nonbonded";
    if group != "bond" {
        p.bonds.clear();
    }
    if group != "angle" {
        p.angles.clear();
    }
    if group != "torsion" {
        p.torsions.clear();
    }
    if !keep_nb {
        p.charge.iter_mut().for_each(|q| *q = 0.0);
        p.epsilon.iter_mut().for_each(|e| *e = 0.0);
        p.exceptions.iter_mut().for_each(|e| {
            e.charge_prod = 0.0;
            e.epsilon = 0.0
        });
    }
    if group != "gb" {
        p.gbsa.charge.iter_mut().for_each(|q| *q = 0.0);
        p.gbsa.surface_factor = 0.0;
    }
    let m = bgen_system::EnergyModel::new(&p);
    let mut g = vec![0.0; x.len()];
    m.energy_grad(x, &mut g, &mut m.workspace());
    g.iter().map(|v| -v).collect()
}

#[test]
fn aldp_energies_and_forces_match_openmm() {
    check_system("aldp");
}

#[test]
fn ala6_energies_and_forces_match_openmm() {
    check_system("ala6");
}
