//! All 20 amino acids (zwitterion and capped) and the three HIS variants, in both setups, against
//! OpenMM 8.6.1 Reference (made by tools/make_extra_reference.py): matched templates, energies per
//! term and sub-term, and total forces.

use bgen_system::{Setup, System};
use serde_json::Value;
use std::path::PathBuf;

fn flat(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().flat_map(flat).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap()],
        _ => panic!(),
    }
}

fn check(name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/extra");
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap())
            .unwrap();
    for (key, s) in r["setups"].as_object().unwrap() {
        let sys = System::from_pdb_file(
            &dir.join(format!("{name}.pdb")),
            Setup::from_name(key).unwrap(),
            None,
        )
        .unwrap();
        // templates per atom
        for (a, t) in s["templates"].as_array().unwrap().iter().enumerate() {
            let res = sys.topology.atoms[a].residue;
            assert_eq!(
                sys.params.residue_template[res],
                t.as_str().unwrap(),
                "{name} {key}: template of atom {a}"
            );
        }
        let confs = r["positions"].as_array().unwrap();
        let mut worst: f64 = 0.0;
        for (c, p) in confs.iter().enumerate() {
            let x = flat(p);
            let mut f = vec![0.0; x.len()];
            let e = sys.energy_and_forces(&x, &mut f);
            let named: std::collections::HashMap<_, _> = e.named().into_iter().collect();
            let mut want = vec![("total", s["energy_total"][c].as_f64().unwrap())];
            for (k, v) in s["energy_groups"]
                .as_object()
                .unwrap()
                .iter()
                .chain(s["energy_components"].as_object().unwrap())
            {
                want.push((k.as_str(), v[c].as_f64().unwrap()));
            }
            assert_eq!(want.len(), 12);
            for (k, w) in want {
                let got = named[k];
                worst = worst.max((got - w).abs() / w.abs().max(1.0));
                assert!(
                    (got - w).abs() <= 1e-6 * w.abs().max(1.0),
                    "{name} {key} conf {c} {k}: bgen {got:.9} OpenMM {w:.9}"
                );
            }
            for (a, (g, w)) in f.iter().zip(flat(&s["forces_total"][c])).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-5 + 1e-9 * w.abs(),
                    "{name} {key} conf {c} force atom {}: bgen {g} OpenMM {w}",
                    a / 3
                );
            }
        }
        eprintln!(
            "{name} {key}: {} atoms, worst relative energy error {worst:.1e}",
            sys.n_atoms()
        );
    }
}

#[test]
fn all_twenty_amino_acids_zwitterion_match_openmm() {
    check("all20_zwitterion");
}

#[test]
fn all_twenty_amino_acids_capped_match_openmm() {
    check("all20_capped");
}

#[test]
fn histidine_variants_match_openmm() {
    check("his_variants");
}
