//! `evaluate` on alanine-dipeptide MD: identical sets give zero distances, weights are honoured
//! exactly as duplicated samples, and every metric is finite.

use bgen_eval::evaluate::{evaluate, EvalOptions};
use bgen_md::langevin::stream;
use bgen_md::LangevinMiddle;
use bgen_system::System;

/// `n` frames 0.1 ps apart from one Langevin replica (seed `seed`).
fn frames(sys: &System, seed: u64, n: usize) -> Vec<f64> {
    let model = sys.model();
    let mut ws = model.workspace();
    let mut f = |x: &[f64], g: &mut [f64]| model.energy_grad(x, g, &mut ws).total();
    let lm = LangevinMiddle::new(&sys.params.mass, sys.kt(), 5.0, 1e-3, true);
    let mut s = lm.init(sys.positions.clone(), stream(seed, 0), &mut f);
    lm.run(&mut s, 2000, &mut f);
    let mut out = Vec::new();
    for _ in 0..n {
        lm.run(&mut s, 100, &mut f);
        out.extend_from_slice(&s.x);
    }
    out
}

fn opts() -> EvalOptions {
    EvalOptions {
        tica_lag: 2,
        ..Default::default()
    }
}

#[test]
fn identical_sets_are_at_distance_zero() {
    let sys = System::named("aldp", None, None).unwrap();
    let x = frames(&sys, 1, 300);
    let (m, data) = evaluate(&sys, &x, None, &x, opts()).unwrap();
    assert_eq!(m.ess, 1.0);
    assert!(m.energy_w1 < 1e-12 && m.energy_w2 < 1e-12, "{m:?}");
    assert!(m.torus_w2 < 1e-9, "{}", m.torus_w2);
    assert!(m.tica_w2.unwrap() < 1e-9);
    let total: f64 = m.basins.values().sum();
    assert!((total - 1.0).abs() < 1e-12);
    assert_eq!(data.ramachandran.len(), 1);
    assert_eq!(m.details.dihedrals, vec!["phi ALA 2", "psi ALA 2"]);
}

#[test]
fn weights_equal_duplicated_samples() {
    let sys = System::named("aldp", None, None).unwrap();
    let (x, r) = (frames(&sys, 2, 120), frames(&sys, 3, 200));
    let d = 3 * sys.n_atoms();
    // Weight 2 on the first 40 samples == those samples twice.
    let mut lw = vec![0.0; 120];
    lw[..40].iter_mut().for_each(|v| *v = 2f64.ln());
    let mut dup = x.clone();
    dup.extend_from_slice(&x[..40 * d]);
    let (mw, _) = evaluate(&sys, &x, Some(&lw), &r, opts()).unwrap();
    let (md, _) = evaluate(&sys, &dup, None, &r, opts()).unwrap();
    for (a, b) in [
        (mw.energy_w1, md.energy_w1),
        (mw.energy_w2, md.energy_w2),
        (mw.torus_w2, md.torus_w2),
        (mw.tica_w2.unwrap(), md.tica_w2.unwrap()),
    ] {
        assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        assert!(a > 0.0 && a.is_finite());
    }
    // (1*80 + 2*40)^2 / (120 * (80 + 4*40)) = 160^2 / 28800
    assert!((mw.ess - 160.0 * 160.0 / 28800.0).abs() < 1e-12);
}

#[test]
fn non_finite_samples_are_left_out_and_counted() {
    let sys = System::named("aldp", None, None).unwrap();
    let mut x = frames(&sys, 4, 50);
    x[5] = f64::NAN;
    let (m, _) = evaluate(&sys, &x, None, &frames(&sys, 5, 60), opts()).unwrap();
    assert_eq!((m.details.n_nonfinite, m.details.n_samples), (1, 49));
    assert!(m.energy_w2.is_finite() && m.torus_w2.is_finite());
}

#[test]
fn mirror_images_are_reflected_and_counted() {
    let sys = System::named("aldp", None, None).unwrap();
    let x = frames(&sys, 6, 100);
    let mut mixed = x.clone();
    let d = 3 * sys.n_atoms();
    for f in mixed.chunks_mut(d).step_by(3) {
        f.iter_mut().for_each(|v| *v = -*v);
    }
    let (m, _) = evaluate(&sys, &mixed, None, &x, opts()).unwrap();
    assert_eq!(m.details.n_mirrored, 34);
    assert!(m.torus_w2 < 1e-9 && m.energy_w2 < 1e-12, "{m:?}");
}

/// Weights that cannot be normalised and samples that all lack weight are errors, not a panic or
/// a silently wrong metric; samples with a non-finite energy are left out and counted.
#[test]
fn degenerate_weights_and_energies_are_errors_or_counted() {
    let sys = System::named("aldp", None, None).unwrap();
    let x = frames(&sys, 7, 40);
    let n = x.len() / (3 * sys.n_atoms());
    for bad in [f64::INFINITY, f64::NAN] {
        let mut lw = vec![0.0; n];
        lw[3] = bad;
        let err = evaluate(&sys, &x, Some(&lw), &x, opts())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sample 3") && err.contains("cannot be normalised"),
            "{err}"
        );
    }
    let lw = vec![f64::NEG_INFINITY; n];
    let err = evaluate(&sys, &x, Some(&lw), &x, opts())
        .unwrap_err()
        .to_string();
    assert!(err.contains("none of the"), "{err}");
    let mut broken = x.clone();
    broken[..3 * sys.n_atoms()]
        .iter_mut()
        .for_each(|v| *v = 0.5);
    let (m, _) = evaluate(&sys, &broken, None, &x, opts()).unwrap();
    assert_eq!(m.details.n_nonfinite, 1);
}

/// A reference whose frames are all the same structure has no slow components: TICA-W2 is
/// absent, not round-off blown up to 1e12.
#[test]
fn a_reference_that_never_moves_has_no_tica() {
    let sys = System::named("aldp", None, None).unwrap();
    let x = frames(&sys, 8, 60);
    let same: Vec<f64> = (0..60)
        .flat_map(|_| sys.positions.iter().copied())
        .collect();
    let (m, _) = evaluate(&sys, &x, None, &same, opts()).unwrap();
    assert_eq!(m.tica_w2, None, "{m:?}");
    assert!(m.torus_w2.is_finite() && m.energy_w2.is_finite());
}

/// An MD curve scores doubling prefixes of every replica: the whole run scored against itself
/// is at distance zero, simulated ns count every replica, the wall time is shared in proportion
/// to the steps (equilibration included), and the reach is the first prefix good enough.
#[test]
fn md_curve_scores_prefixes_in_time() {
    use bgen_eval::curve::{first_reaching, md_curve, MdCost};
    let sys = System::named("aldp", None, None).unwrap();
    let d = 3 * sys.n_atoms();
    let (a, b) = (frames(&sys, 4, 160), frames(&sys, 5, 160));
    let mut run = bgen_md::Frames::new(sys.n_atoms());
    for (r, x) in [a, b].iter().enumerate() {
        for (k, f) in x.chunks(d).enumerate() {
            run.push(f, f64::NAN, f64::NAN, r as i64, 0.1 * (k + 1) as f64);
        }
    }
    let cost = MdCost {
        replicas: 2,
        equilibrate_ps: 16.0,
        wall_seconds: 64.0,
    };
    let curve = md_curve(&sys, &run, &run.x, cost, 4, 2.0, opts()).unwrap();
    let t: Vec<f64> = curve.iter().map(|p| p.time_ps).collect();
    assert_eq!(t, vec![2.0, 4.0, 8.0, 16.0]);
    assert_eq!(curve[0].frames, 40);
    assert!((curve[3].ns - 0.032).abs() < 1e-12);
    assert!((curve[0].wall_seconds - 64.0 * 18.0 / 32.0).abs() < 1e-9);
    let last = &curve[3];
    assert!(last.energy_w2 < 1e-12 && last.torus_w2 < 1e-9 && last.basin_error < 1e-12);
    let worst = curve[0].energy_w2.max(1e-6);
    let reach = first_reaching(&curve, [worst * 0.5, 10.0, 1.0]).unwrap();
    assert!(reach.time_ps > 2.0);
    assert!(first_reaching(&curve, [-1.0, 10.0, 1.0]).is_none());
    // Four prefixes per doubling: the same ends, three more between each pair.
    let fine = md_curve(&sys, &run, &run.x, cost, 13, 2f64.powf(0.25), opts()).unwrap();
    let t: Vec<f64> = fine.iter().map(|p| p.time_ps).collect();
    assert_eq!(t.len(), 13);
    assert!(
        (t[0] - 2.0).abs() < 1e-9 && (t[4] - 4.0).abs() < 1e-9 && t[12] == 16.0,
        "{t:?}"
    );
    assert!(t
        .windows(2)
        .all(|w| (w[1] / w[0] - 2f64.powf(0.25)).abs() < 1e-9));
}
