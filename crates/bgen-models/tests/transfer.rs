//! Molecules as a transferable model sees them: per-class standardisation pooled over training
//! molecules, with the force field as the fallback for classes never seen, and token labels.

use bgen_models::internal::Internal;
use bgen_models::transfer::{classes, labels, Standards};
use bgen_system::peptide::{build, Caps};
use bgen_system::{Setup, System, ZMatrix};

/// `n` frames: the structure with N(0, 0.005 nm) noise, reproducible.
fn frames(sys: &System, n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed;
    let mut gauss = || {
        // Box-Muller on a 64-bit LCG: enough for a jitter.
        let mut u = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let (a, b) = (u(), u());
        (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
    };
    (0..n)
        .flat_map(|_| sys.positions.clone())
        .map(|x| x + 0.005 * gauss())
        .collect()
}

fn peptide(seq: &str) -> (System, ZMatrix) {
    let sys = build(seq, Caps::None, Setup::Amber14Obc1).unwrap();
    let z = ZMatrix::from_topology(&sys.topology).unwrap();
    (sys, z)
}

#[test]
fn standards_pool_by_class_and_fall_back_to_the_force_field() {
    let (aa, za) = peptide("AA");
    let (gg, zg) = peptide("GG");
    let (xa, xg) = (frames(&aa, 200, 1), frames(&gg, 200, 2));
    let st = Standards::fit(&[(&aa, &za, &xa), (&gg, &zg, &xg)]);
    // A training molecule is standardised by its classes alone; a class met once has exactly
    // the statistics of that one coordinate, as a single-molecule fit gives them.
    let (ia, fallback) = st.internal(&aa, &za);
    assert_eq!(fallback, 0);
    let own = Internal::fit(&xa, &za);
    let cls = classes(&aa, &za);
    let once: Vec<usize> = (0..cls.len())
        .filter(|&q| st.classes[&cls[q]].count == 200)
        .collect();
    assert!(once.len() >= 5, "{} classes met once", once.len());
    for &q in &once {
        assert_eq!(
            (ia.mean[q], ia.std[q], ia.cut[q]),
            (own.mean[q], own.std[q], own.cut[q]),
            "{}",
            cls[q]
        );
    }
    // Methyl hydrogens share classes: their pooled counts are multiples of 200.
    assert!(st.classes.values().any(|c| c.count > 200));
    // A molecule never seen: shared classes from the table, the rest from the force field.
    let (kw, zk) = peptide("KW");
    let (ik, fallback) = st.internal(&kw, &zk);
    assert!(
        fallback > 0 && fallback < zk.dim(),
        "{fallback} of {}",
        zk.dim()
    );
    let ck = classes(&kw, &zk);
    for (q, class) in ck.iter().enumerate() {
        assert!(ik.std[q] > 0.0 && ik.std[q].is_finite() && ik.mean[q].is_finite());
        if let Some(s) = st.classes.get(class) {
            assert_eq!((ik.mean[q], ik.std[q]), (s.mean, s.std));
        } else if ik.kinds[q] == 0 {
            // A bond at its spring's equilibrium with its thermal std sqrt(kT / k).
            let row = &zk.rows[if q < 2 { q + 1 } else { 3 + (q - 3) / 3 }];
            let b = kw
                .params
                .bonds
                .iter()
                .find(|b| (b.i == row.atom && b.j == row.j) || (b.j == row.atom && b.i == row.j))
                .unwrap();
            assert_eq!(ik.mean[q], b.length);
            assert!((ik.std[q] - (kw.kt() / b.k).sqrt()).abs() < 1e-15);
        }
    }
    // Its features are finite and invert.
    let xk = frames(&kw, 5, 3);
    let ic = ik.from_cartesian(&xk);
    let mut y = vec![0.0; ic.len()];
    ik.to_model(&ic, &mut y, None);
    assert!(y.iter().all(|v| v.is_finite()));
    let mut back = vec![0.0; ic.len()];
    ik.from_model(&y, &mut back);
    for (a, b) in ic.iter().zip(&back) {
        // Equal, torsions up to whole turns.
        let tau = 2.0 * std::f64::consts::PI;
        let r = (a - b).rem_euclid(tau);
        assert!(r < 1e-9 || tau - r < 1e-9, "{a} vs {b}");
    }
}

#[test]
fn labels_name_the_atom_each_token_places() {
    let (kw, z) = peptide("KW");
    let (atom, residue, index, residues) = labels(&kw, &z);
    let n = kw.n_atoms();
    assert_eq!(
        (atom.len(), residue.len(), index.len()),
        (n - 2, n - 2, n - 2)
    );
    assert_eq!(residues, 2);
    let ff = Setup::Amber14Obc1.data();
    for (k, row) in z.rows[2..].iter().enumerate() {
        let t = &kw.params.atom_type[row.atom];
        assert_eq!(ff.types[(atom[k] - 1) as usize].name, *t);
        let r = kw.topology.atoms[row.atom].residue;
        assert_eq!(index[k], r as i64);
        let template = &ff.templates[(residue[k] - 1) as usize].name;
        assert_eq!(*template, kw.params.residue_template[r]);
    }
    assert!(residue
        .iter()
        .any(|&r| ff.templates[(r - 1) as usize].name == "NLYS"));
    assert!(residue
        .iter()
        .any(|&r| ff.templates[(r - 1) as usize].name == "CTRP"));
}

/// A molecule fits a transferable flow only within its tokens and its residue-index table.
#[test]
fn molecules_beyond_the_residue_table_are_refused() {
    use bgen_models::tarflow::{Conditioning, TarFlowConfig};
    let sys = bgen_system::peptide::build(
        &"G".repeat(17),
        bgen_system::peptide::Caps::None,
        bgen_system::Setup::Amber14Obc1,
    )
    .unwrap();
    let mut c = TarFlowConfig {
        tokens: 200,
        conditioning: Some(Conditioning {
            atom_types: 10,
            residue_types: 5,
            max_residues: 16,
            temperature: false,
            sequence: false,
        }),
        ..bgen_models::stage::preset("tiny", 200).unwrap().0
    };
    let e = bgen_models::transfer::check_fits(&sys, c.tokens, c.conditioning.as_ref()).unwrap_err();
    assert!(e.contains("17 residues, the model takes at most 16"), "{e}");
    c.tokens = 50;
    let e = bgen_models::transfer::check_fits(&sys, c.tokens, c.conditioning.as_ref()).unwrap_err();
    assert!(e.contains("atoms, the model takes at most 52"), "{e}");
    c.tokens = 200;
    c.conditioning.as_mut().unwrap().max_residues = 17;
    assert!(bgen_models::transfer::check_fits(&sys, c.tokens, c.conditioning.as_ref()).is_ok());
}
