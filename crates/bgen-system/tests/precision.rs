//! The SIMD pair kernels against the scalar reference: the double path equal to round-off, the
//! mixed path within its stated tolerances (energies 1e-6 relative, forces 1e-4 relative), on
//! aldp (both setups), a zwitterionic dipeptide, ala6, chignolin and villin headpiece (HP35), at
//! the embedded structures and at perturbed ones.

use bgen_system::energy::{Isa, Precision};
use bgen_system::peptide::{build, Caps};
use bgen_system::{EnergyModel, Setup, System};

fn systems() -> Vec<(String, System)> {
    let mut out: Vec<(String, System)> = [
        ("aldp", None),
        ("aldp", Some(Setup::Amber14Obc1)),
        ("ala6", None),
        ("chignolin", None),
    ]
    .into_iter()
    .map(|(n, s)| (format!("{n} {s:?}"), System::named(n, s, None).unwrap()))
    .collect();
    out.push((
        "KW".into(),
        build("KW", Caps::None, Setup::Amber99sbildnObc2).unwrap(),
    ));
    let hp35 = "LSDEDFKAVFGMTRSAFANLPLWKQQNLKKEKGLF";
    out.push((
        "villin".into(),
        build(hp35, Caps::None, Setup::Amber99sbildnObc2).unwrap(),
    ));
    out
}

/// Conformations: the structure, and two perturbed copies (0.005-0.02 nm displacements).
fn conformations(s: &System) -> Vec<Vec<f64>> {
    (0..3)
        .map(|c| {
            s.positions
                .iter()
                .enumerate()
                .map(|(k, v)| v + 0.005 * c as f64 * (((k * 7 + c * 3) % 11) as f64 / 5.0 - 1.0))
                .collect()
        })
        .collect()
}

/// Largest relative deviation of `g` from `want`, per term / as a vector norm.
fn rel_norm(g: &[f64], want: &[f64]) -> f64 {
    let d: f64 = g.iter().zip(want).map(|(a, b)| (a - b) * (a - b)).sum();
    let w: f64 = want.iter().map(|b| b * b).sum();
    (d / w).sqrt()
}

fn compare(precision: Precision, portable: bool, energy_tol: f64, force_tol: f64) {
    for (name, s) in systems() {
        let m = EnergyModel::new(&s.params);
        let (mut reference, mut ws) = (
            m.workspace_in(Precision::Reference),
            match portable {
                true => m.portable_workspace(precision),
                false => m.workspace_in(precision),
            },
        );
        assert_eq!(ws.precision(), precision);
        for x in conformations(&s) {
            let (mut g0, mut g1) = (vec![0.0; x.len()], vec![0.0; x.len()]);
            let e0 = m.energy_grad(&x, &mut g0, &mut reference);
            let e1 = m.energy_grad(&x, &mut g1, &mut ws);
            let scale = e0.named().iter().map(|t| t.1.abs()).fold(1.0, f64::max);
            for ((term, a), (_, b)) in e1.named().iter().zip(e0.named()) {
                assert!(
                    (a - b).abs() <= energy_tol * scale,
                    "{name} {precision:?} {term}: {a} vs reference {b}"
                );
            }
            let ef = m.energy(&x, &mut ws);
            assert_eq!(
                ef.total().to_bits(),
                e1.total().to_bits(),
                "{name}: energy alone"
            );
            let r = rel_norm(&g1, &g0);
            assert!(
                r <= force_tol,
                "{name} {precision:?}: gradient off by {r:e}"
            );
            // every component, against the largest force
            let fmax = g0.iter().fold(0.0f64, |a, b| a.max(b.abs()));
            for (k, (a, b)) in g1.iter().zip(&g0).enumerate() {
                assert!(
                    (a - b).abs() <= force_tol * fmax,
                    "{name} {precision:?} [{k}]: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn double_path_equals_the_reference_to_round_off() {
    compare(Precision::Double, false, 1e-12, 1e-12);
}

#[test]
fn mixed_path_is_within_its_tolerances() {
    compare(Precision::Mixed, false, 1e-6, 1e-4);
}

/// The plain-array lanes of CPUs without AVX2 + FMA, in both precisions.
#[test]
fn portable_lanes_agree_too() {
    compare(Precision::Double, true, 1e-12, 1e-12);
    compare(Precision::Mixed, true, 1e-6, 1e-4);
}

/// Conformation lanes (several conformations at once): the same numbers as one at a time, in
/// every precision and lane type, for batches that fill the lanes and one that leaves a tail.
#[test]
fn conformation_lanes_equal_one_at_a_time() {
    for (name, s) in systems() {
        let m = EnergyModel::new(&s.params);
        let d = 3 * s.n_atoms();
        // 11 conformations: the structure and perturbed copies, then one with its first atom
        // 3 nm away (beyond the 2 nm cutoff of the amber14-obc1 setups: masked pairs).
        let mut x: Vec<f64> = (0..11)
            .flat_map(|c| {
                s.positions.iter().enumerate().map(move |(k, v)| {
                    v + 0.003 * c as f64 * (((k * 7 + c * 5) % 13) as f64 / 6.0 - 1.0)
                })
            })
            .collect();
        let mut far = s.positions.clone();
        far[0] += 3.0;
        x.extend_from_slice(&far);
        let k = x.len() / d;
        for (precision, tol_e, tol_f) in [
            (Precision::Double, 1e-12, 1e-12),
            (Precision::Mixed, 1e-6, 1e-4),
            (Precision::Reference, 0.0, 0.0),
        ] {
            for isa in [Isa::Portable, Isa::Avx2, Isa::Avx512] {
                if isa > Isa::detect() {
                    continue;
                }
                let mut bw = m.batch_workspace_on(precision, isa);
                let (mut e, mut g) = (vec![Default::default(); k], vec![f64::NAN; x.len()]);
                m.energy_grad_batch(&x, Some(&mut g), &mut e, &mut bw);
                let mut e_only = vec![Default::default(); k];
                m.energy_grad_batch(&x, None, &mut e_only, &mut bw);
                let mut reference = m.workspace_in(Precision::Reference);
                for c in 0..k {
                    let xc = &x[c * d..(c + 1) * d];
                    let mut g0 = vec![0.0; d];
                    let e0 = m.energy_grad(xc, &mut g0, &mut reference);
                    let e1: &bgen_system::Energies = &e[c];
                    let scale = e0.named().iter().map(|t| t.1.abs()).fold(1.0, f64::max);
                    for ((term, a), (_, b)) in e1.named().iter().zip(e0.named()) {
                        assert!(
                            (a - b).abs() <= tol_e * scale,
                            "{name} {precision:?} {isa:?} lanes, conformation {c} {term}: {a} vs {b}"
                        );
                    }
                    assert_eq!(e_only[c].total().to_bits(), e1.total().to_bits());
                    let fmax = g0.iter().fold(0.0f64, |a, b| a.max(b.abs()));
                    for (i, (a, b)) in g[c * d..(c + 1) * d].iter().zip(&g0).enumerate() {
                        assert!(
                            (a - b).abs() <= tol_f * fmax,
                            "{name} {precision:?} {isa:?} lanes, conformation {c} [{i}]: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }
}

/// A conformation with non-finite positions in a batch leaves its lane-mates' numbers exactly
/// as they are without it, in every precision.
#[test]
fn a_bad_conformation_stays_in_its_lane() {
    let s = System::named("aldp", Some(Setup::Amber14Obc1), None).unwrap();
    let m = EnergyModel::new(&s.params);
    let d = 3 * s.n_atoms();
    let x: Vec<f64> = (0..16)
        .flat_map(|c| s.positions.iter().map(move |v| v + 0.002 * c as f64))
        .collect();
    let mut bad = x.clone();
    bad[5 * d + 4] = f64::NAN;
    bad[9 * d] = f64::INFINITY;
    for precision in [Precision::Double, Precision::Mixed] {
        let mut ws = m.batch_workspace(precision);
        let run = |x: &[f64], ws: &mut bgen_system::energy::BatchWorkspace| {
            let (mut e, mut g) = (vec![Default::default(); 16], vec![0.0; x.len()]);
            m.energy_grad_batch(x, Some(&mut g), &mut e, ws);
            (e, g)
        };
        let (e0, g0) = run(&x, &mut ws);
        let (e1, g1) = run(&bad, &mut ws);
        for c in (0..16).filter(|&c| c != 5 && c != 9) {
            let (a, b): (&bgen_system::Energies, &bgen_system::Energies) = (&e0[c], &e1[c]);
            assert_eq!(
                a.total().to_bits(),
                b.total().to_bits(),
                "{precision:?} {c}"
            );
            assert_eq!(
                g0[c * d..(c + 1) * d],
                g1[c * d..(c + 1) * d],
                "{precision:?} {c}"
            );
        }
        assert!(!e1[5].total().is_finite() && !e1[9].total().is_finite());
    }
    // Through the samplers' Target: +inf, zero gradient, never NaN.
    use bgen_system::Target;
    let (mut u, mut g) = (vec![0.0; 16], vec![0.0; bad.len()]);
    s.energy_and_grad(&bad, &mut u, Some(&mut g));
    assert!(u[5] == f64::INFINITY && u[9] == f64::INFINITY && u[0].is_finite());
    assert!(g.iter().all(|v| v.is_finite()) && g[5 * d..6 * d].iter().all(|&v| v == 0.0));
}

/// Far beyond every cutoff and inside one another: the masked lanes never leak a NaN, and
/// a conformation with coinciding atoms gives a non-finite energy in every precision alike.
#[test]
fn padding_and_masked_lanes_stay_clean() {
    let s = System::named("aldp", Some(Setup::Amber14Obc1), None).unwrap();
    let m = EnergyModel::new(&s.params);
    let mut x = s.positions.clone();
    for k in 0..3 {
        x[3 * 5 + k] += 5.0; // one atom far outside the cutoffs
    }
    for p in [Precision::Double, Precision::Mixed] {
        let (mut g0, mut g1) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        let e0 = m.energy_grad(&x, &mut g0, &mut m.workspace_in(Precision::Reference));
        let e1 = m.energy_grad(&x, &mut g1, &mut m.workspace_in(p));
        assert!(g1.iter().all(|v| v.is_finite()), "{p:?}");
        assert!(
            (e1.total() - e0.total()).abs() < 1e-5 * e0.total().abs(),
            "{p:?}"
        );
    }
}

/// `System::at`, the target that samplers' moves use: in double it is `System`'s own target bit
/// for bit; in mixed its energies (kT) and gradients stay within the mixed path's tolerances on
/// a batch that fills the conformation lanes, and a clash is still +inf with a zero gradient.
#[test]
fn the_target_at_a_precision() {
    use bgen_system::Target;
    let s = build("KW", Caps::None, Setup::Amber99sbildnObc2).unwrap();
    let d = 3 * s.n_atoms();
    let mut x: Vec<f64> = (0..40)
        .flat_map(|c| {
            s.positions.iter().enumerate().map(move |(k, v)| {
                v + 0.002 * (c % 5) as f64 * (((k * 7 + c * 3) % 11) as f64 / 5.0 - 1.0)
            })
        })
        .collect();
    // The last conformation: its first and last atoms (not bonded) on top of each other.
    let (last, first) = (39 * d, x[..3].to_vec());
    x[last..last + 3].copy_from_slice(&first);
    x[last + d - 3..last + d].copy_from_slice(&first);
    let n = x.len() / d;
    let run = |t: &dyn Target| {
        let (mut e, mut g) = (vec![0.0; n], vec![0.0; x.len()]);
        t.energy_and_grad(&x, &mut e, Some(&mut g));
        (e, g)
    };
    let (e0, g0) = run(&s);
    let (e1, g1) = run(&s.at(Precision::Double));
    assert_eq!((&e0, &g0), (&e1, &g1), "double is System's own target");
    let (e2, g2) = run(&s.at(Precision::Mixed));
    let worst = (0..n - 1)
        .map(|i| (e2[i] - e0[i]).abs())
        .fold(0.0, f64::max);
    eprintln!("mixed against double: energies within {worst:.1e} kT");
    for i in 0..n - 1 {
        // 1e-6 of the largest terms (the solvation energy, about 2,000 kJ/mol = 800 kT).
        assert!((e2[i] - e0[i]).abs() <= 1e-3, "{i}: {} vs {}", e2[i], e0[i]);
        let r = rel_norm(&g2[i * d..(i + 1) * d], &g0[i * d..(i + 1) * d]);
        assert!(r <= 1e-4, "{i}: gradient off by {r:e} relative");
        assert_ne!(e2[i], e0[i], "{i}: the mixed path was not taken");
    }
    assert!(e2[n - 1].is_infinite() && e0[n - 1].is_infinite());
    assert!(g2[(n - 1) * d..].iter().all(|v| *v == 0.0));
}

/// Two bonded atoms on top of each other: the energy is finite (a stretched-to-zero bond, no
/// nonbonded term between them) but not differentiable there, and the bonded terms' gradients are
/// 0/0. The target, asked for a gradient, treats it as a clash (+inf, zero gradient) in both
/// precisions and leaves the other samples of the batch alone; the energy alone stays finite.
#[test]
fn coinciding_bonded_atoms_give_no_nan_force() {
    use bgen_system::Target;
    let s = build("KW", Caps::None, Setup::Amber99sbildnObc2).unwrap();
    let d = 3 * s.n_atoms();
    let b = &s.params.bonds[0];
    let mut x = [s.positions.clone(), s.positions.clone()].concat();
    let on_i = x[d + 3 * b.i..d + 3 * b.i + 3].to_vec();
    x[d + 3 * b.j..d + 3 * b.j + 3].copy_from_slice(&on_i);
    for p in [Precision::Double, Precision::Mixed] {
        let t = s.at(p);
        let mut alone = vec![0.0; 2];
        t.energy_and_grad(&x, &mut alone, None);
        assert!(alone[1].is_finite(), "{p:?}: the energy alone is finite");
        let (mut e, mut g) = (vec![0.0; 2], vec![f64::NAN; 2 * d]);
        t.energy_and_grad(&x, &mut e, Some(&mut g));
        assert_eq!(e[1], f64::INFINITY, "{p:?}");
        assert!(g[d..].iter().all(|v| *v == 0.0), "{p:?}: no NaN force");
        assert_eq!(e[0], alone[0], "{p:?}: the other sample untouched");
        assert!(g[..d].iter().all(|v| v.is_finite()) && g[..d].iter().any(|v| *v != 0.0));
    }
}
