//! Samplers on an analytic problem with a known answer: a two-mode Gaussian mixture target in
//! d dimensions, log Z = d/2 ln(2 pi s^2), mode weights 0.3 / 0.7, and a broad Gaussian proposal.

use bgen_sample::ess::log_sum_exp;
use bgen_sample::resample::Scheme;
use bgen_sample::{smc, snis, Gaussian, Proposal, SmcOptions, SnisOptions};
use bgen_system::Target;

const D: usize = 4;
const S: f64 = 0.5;

struct Mixture;

impl Mixture {
    fn centres() -> [([f64; D], f64); 2] {
        [([2.0, 0.0, 0.0, 0.0], 0.3), ([-2.0, 0.5, 0.0, 0.0], 0.7)]
    }
    fn log_z() -> f64 {
        0.5 * D as f64 * (2.0 * std::f64::consts::PI * S * S).ln()
    }
}

impl Target for Mixture {
    fn dim(&self) -> usize {
        D
    }
    fn energy_and_grad(&self, x: &[f64], energy: &mut [f64], mut grad: Option<&mut [f64]>) {
        for (i, e) in energy.iter_mut().enumerate() {
            let xi = &x[i * D..(i + 1) * D];
            let terms: Vec<(f64, [f64; D])> = Mixture::centres()
                .iter()
                .map(|(mu, pi)| {
                    let mut r2 = 0.0;
                    let mut u = [0.0; D];
                    for k in 0..D {
                        u[k] = xi[k] - mu[k];
                        r2 += u[k] * u[k];
                    }
                    (pi.ln() - 0.5 * r2 / (S * S), u)
                })
                .collect();
            let m = terms.iter().fold(f64::NEG_INFINITY, |a, t| a.max(t.0));
            let z: f64 = terms.iter().map(|t| (t.0 - m).exp()).sum();
            *e = -(m + z.ln());
            if let Some(g) = grad.as_deref_mut() {
                for k in 0..D {
                    g[i * D + k] = terms
                        .iter()
                        .map(|t| (t.0 - m).exp() / z * t.1[k] / (S * S))
                        .sum();
                }
            }
        }
    }
}

fn proposal() -> Gaussian {
    Gaussian {
        mean: vec![0.0; D],
        sigma: 2.0,
    }
}

fn snis_run(n: usize, seed: u64) -> (f64, f64) {
    let p = proposal();
    let (x, lq) = p.sample(n, seed);
    let mut e = vec![0.0; n];
    Mixture.energy_and_grad(&x, &mut e, None);
    let src: Vec<f64> = lq.iter().map(|v| -v).collect();
    let r = snis(
        &src,
        &e,
        SnisOptions {
            drop_top: 0.0,
            energy_cutoff: None,
            truncate: false,
        },
    );
    (r.log_z, r.ess)
}

fn opts(seed: u64) -> SmcOptions {
    SmcOptions {
        steps: 40,
        moves_per_step: 2,
        step_size: 0.05,
        mala: true,
        seed,
        ..Default::default()
    }
}

#[test]
fn target_gradient_matches_finite_differences() {
    let x = [0.3, -0.2, 0.7, 0.1];
    let (mut e, mut g) = ([0.0], [0.0; D]);
    Mixture.energy_and_grad(&x, &mut e, Some(&mut g));
    for k in 0..D {
        let (mut xp, mut xm) = (x, x);
        xp[k] += 1e-6;
        xm[k] -= 1e-6;
        let (mut ep, mut em) = ([0.0], [0.0]);
        Mixture.energy_and_grad(&xp, &mut ep, None);
        Mixture.energy_and_grad(&xm, &mut em, None);
        assert!(((ep[0] - em[0]) / 2e-6 - g[k]).abs() < 1e-6);
    }
}

#[test]
fn snis_recovers_log_z() {
    let n = 50_000;
    let (lz, ess) = snis_run(n, 1);
    // delta method: sd(log Z_hat) ~ sqrt((1/ESS - 1) / n)
    let se = ((1.0 / ess - 1.0) / n as f64).sqrt();
    eprintln!(
        "SNIS: log Z {lz:.4} (true {:.4}, se {se:.4}), ESS {ess:.4}",
        Mixture::log_z()
    );
    assert!(
        (lz - Mixture::log_z()).abs() < 4.0 * se,
        "{lz} vs {}",
        Mixture::log_z()
    );
}

#[test]
fn smc_recovers_log_z_and_the_modes_with_higher_ess_than_snis() {
    let n = 2000;
    let runs: Vec<_> = (0..6)
        .map(|s| smc(&proposal(), &Mixture, n, opts(100 + s)).unwrap())
        .collect();
    let lz: Vec<f64> = runs.iter().map(|r| r.log_z).collect();
    let mean = lz.iter().sum::<f64>() / lz.len() as f64;
    let sd = (lz.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (lz.len() - 1) as f64).sqrt();
    let se = sd / (lz.len() as f64).sqrt();
    let smc_ess = runs.iter().map(|r| r.ess).sum::<f64>() / runs.len() as f64;
    let (_, snis_ess) = snis_run(n, 7);
    eprintln!(
        "SMC: log Z {mean:.4} +- {se:.4} (true {:.4}); ESS {smc_ess:.3} vs SNIS {snis_ess:.3}; acceptance {:.2}, resamplings {}",
        Mixture::log_z(),
        runs[0].acceptance,
        runs[0].resamplings
    );
    assert!(
        (mean - Mixture::log_z()).abs() < 4.0 * se + 0.02,
        "{mean} vs {}",
        Mixture::log_z()
    );
    assert!(
        smc_ess > snis_ess + 0.1,
        "SMC ESS {smc_ess} vs SNIS {snis_ess}"
    );
    // Mode populations of the final (resampled) particles: 0.3 at x0 > 0.
    let pos: f64 = runs
        .iter()
        .map(|r| r.x.chunks(D).filter(|p| p[0] > 0.0).count() as f64 / n as f64)
        .sum::<f64>()
        / runs.len() as f64;
    assert!((pos - 0.3).abs() < 0.03, "mode weight {pos}");
    assert_eq!(runs[0].energy_evaluations, n * (1 + 40 * 2));
}

/// MALA keeps a fixed target invariant: proposal = target N(0, 1), so all weights are equal and only
/// the moves act; after 200 large steps the moments are still those of N(0, 1).
#[test]
fn mala_keeps_the_target_invariant() {
    struct StdNormal;
    impl Target for StdNormal {
        fn dim(&self) -> usize {
            D
        }
        fn energy_and_grad(&self, x: &[f64], e: &mut [f64], mut g: Option<&mut [f64]>) {
            for (i, ei) in e.iter_mut().enumerate() {
                *ei = 0.5 * x[i * D..(i + 1) * D].iter().map(|v| v * v).sum::<f64>();
                if let Some(g) = g.as_deref_mut() {
                    g[i * D..(i + 1) * D].copy_from_slice(&x[i * D..(i + 1) * D]);
                }
            }
        }
    }
    let p = Gaussian {
        mean: vec![0.0; D],
        sigma: 1.0,
    };
    let n = 20_000;
    let o = SmcOptions {
        steps: 10,
        moves_per_step: 20,
        step_size: 0.8,
        mala: true,
        target_acceptance: 0.3,
        scheme: Scheme::Multinomial,
        seed: 3,
        ..Default::default()
    };
    let r = smc(&p, &StdNormal, n, o).unwrap();
    // Every increment is the same constant: ESS stays 1 and log Z is that of exp(-|x|^2 / 2).
    let want = 0.5 * D as f64 * (2.0 * std::f64::consts::PI).ln();
    assert!(
        (r.ess - 1.0).abs() < 1e-12 && (r.log_z - want).abs() < 1e-9,
        "{r:?}"
    );
    assert!(
        r.acceptance < 0.9,
        "moves must be rejected sometimes: {}",
        r.acceptance
    );
    let m = r.x_weighted.len() as f64;
    let mean = r.x_weighted.iter().sum::<f64>() / m;
    let var = r.x_weighted.iter().map(|v| v * v).sum::<f64>() / m - mean * mean;
    let kurt = r.x_weighted.iter().map(|v| v.powi(4)).sum::<f64>() / m;
    eprintln!(
        "MALA: mean {mean:.4}, var {var:.4}, <x^4> {kurt:.4}, acceptance {:.2}",
        r.acceptance
    );
    assert!(mean.abs() < 0.02 && (var - 1.0).abs() < 0.03 && (kurt - 3.0).abs() < 0.15);
    // ULA with the same large step is visibly biased (its variance is 1 / (1 - h/2)).
    let ula = smc(&p, &StdNormal, n, SmcOptions { mala: false, ..o }).unwrap();
    let var_ula = ula.x_weighted.iter().map(|v| v * v).sum::<f64>() / m;
    assert!(var_ula > 1.3, "ULA variance {var_ula}");
}

/// The adaptive schedule (conditional ESS 0.9) with independence moves from the proposal recovers
/// log Z and the 0.3 / 0.7 mode weights, spends fewer levels than its cap, and keeps many
/// lineages.
#[test]
fn adaptive_smc_with_independence_moves_recovers_log_z_and_modes() {
    let n = 2000;
    let runs: Vec<_> = (0..6)
        .map(|s| {
            let o = SmcOptions {
                steps: 200,
                cess_target: Some(0.9),
                independence: 1,
                ..opts(200 + s)
            };
            smc(&proposal(), &Mixture, n, o).unwrap()
        })
        .collect();
    let lz: Vec<f64> = runs.iter().map(|r| r.log_z).collect();
    let mean = lz.iter().sum::<f64>() / lz.len() as f64;
    let sd = (lz.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (lz.len() - 1) as f64).sqrt();
    let se = sd / (lz.len() as f64).sqrt();
    let r = &runs[0];
    eprintln!(
        "adaptive SMC: log Z {mean:.4} +- {se:.4} (true {:.4}); {} levels, independence acceptance {:.2}, lineages {:?} -> {}",
        Mixture::log_z(),
        r.schedule.len(),
        r.independence_acceptance,
        r.lineages,
        r.final_lineages
    );
    assert!(
        (mean - Mixture::log_z()).abs() < 4.0 * se + 0.02,
        "{mean} vs {}",
        Mixture::log_z()
    );
    assert!(r.schedule.len() < 200 && *r.schedule.last().unwrap() == 1.0);
    assert!(r.schedule.windows(2).all(|w| w[1] > w[0]));
    assert!(r.independence_acceptance > 0.05 && r.independence_acceptance < 1.0);
    assert!(r.final_lineages > n / 10, "{} lineages", r.final_lineages);
    let pos: f64 = runs
        .iter()
        .map(|r| r.x.chunks(D).filter(|p| p[0] > 0.0).count() as f64 / n as f64)
        .sum::<f64>()
        / runs.len() as f64;
    assert!((pos - 0.3).abs() < 0.03, "mode weight {pos}");
}

/// A target that is +inf everywhere leaves no particle with weight: SMC says so as an error (it
/// used to panic), naming the level.
#[test]
fn smc_with_no_particle_left_is_an_error_not_a_panic() {
    struct Nowhere;
    impl Target for Nowhere {
        fn dim(&self) -> usize {
            2
        }
        fn energy_and_grad(&self, _x: &[f64], e: &mut [f64], g: Option<&mut [f64]>) {
            e.fill(f64::INFINITY);
            if let Some(g) = g {
                g.fill(0.0);
            }
        }
    }
    let p = Gaussian {
        mean: vec![0.0; 2],
        sigma: 1.0,
    };
    let o = SmcOptions {
        steps: 5,
        ..Default::default()
    };
    let err = smc(&p, &Nowhere, 50, o).unwrap_err().to_string();
    assert!(err.contains("every particle has zero weight"), "{err}");
}

/// The Gaussian proposal, counting the rows whose log q was asked for with and without its
/// gradient.
struct Counted {
    inner: Gaussian,
    with_gradient: std::sync::atomic::AtomicUsize,
    value_only: std::sync::atomic::AtomicUsize,
}

impl Proposal for Counted {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn sample(&self, n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        self.inner.sample(n, seed)
    }
    fn log_q(&self, x: &[f64], log_q: &mut [f64], grad: Option<&mut [f64]>) {
        use std::sync::atomic::Ordering::Relaxed;
        match grad {
            Some(_) => self.with_gradient.fetch_add(log_q.len(), Relaxed),
            None => self.value_only.fetch_add(log_q.len(), Relaxed),
        };
        self.inner.log_q(x, log_q, grad)
    }
}

/// Rounds of moves at t = 1 after the final resampling never ask the model for its gradient
/// (only for log q of the Langevin moves' states, without it), and they keep the target:
/// after 50 rounds the particles still hold the 0.3 / 0.7 mode weights, while the MALA moves
/// alone (no independence moves) stay in their modes.
#[test]
fn final_rounds_move_on_the_target_without_the_models_gradient() {
    use std::sync::atomic::Ordering::Relaxed;
    let n = 4000;
    let counted = || Counted {
        inner: proposal(),
        with_gradient: 0.into(),
        value_only: 0.into(),
    };
    let o = SmcOptions {
        independence: 1,
        ..opts(300)
    };
    let (none, fifty) = (counted(), counted());
    let r0 = smc(&none, &Mixture, n, o).unwrap();
    let r50 = smc(
        &fifty,
        &Mixture,
        n,
        SmcOptions {
            final_rounds: 50,
            ..o
        },
    )
    .unwrap();
    assert_eq!(
        fifty.with_gradient.load(Relaxed),
        none.with_gradient.load(Relaxed)
    );
    // Each final round: log q at the Langevin moves' states; the independence moves' draws
    // come with their own.
    assert_eq!(
        fifty.value_only.load(Relaxed) - none.value_only.load(Relaxed),
        50 * o.moves_per_step * n
    );
    assert_eq!(
        r50.energy_evaluations - r0.energy_evaluations,
        50 * (o.moves_per_step + 1) * n
    );
    assert!(r50.final_acceptance > 0.3 && r50.final_acceptance < 1.0);
    let pos = r50.x.chunks(D).filter(|p| p[0] > 0.0).count() as f64 / n as f64;
    assert!((pos - 0.3).abs() < 0.03, "mode weight {pos}");
    // Within a mode the particles are the target's: the spread about its centre is S.
    let (mut r2, mut m) = (0.0, 0.0);
    for p in r50.x.chunks(D).filter(|p| p[0] < 0.0) {
        r2 += (1..D)
            .map(|k| (p[k] - Mixture::centres()[1].0[k]).powi(2))
            .sum::<f64>();
        m += (D - 1) as f64;
    }
    let sd = (r2 / m).sqrt();
    assert!((sd - S).abs() < 0.02, "spread {sd}");
}

/// A schedule whose one level is t = 1 is SNIS followed by moves on the target: the draws come
/// with their own log q, so without independence moves the model is never evaluated again (no
/// log q, no gradient), and the particles keep SNIS's 0.3 / 0.7 mode weights.
#[test]
fn snis_then_target_moves_never_evaluate_the_model() {
    use std::sync::atomic::Ordering::Relaxed;
    let n = 4000;
    let counted = Counted {
        inner: proposal(),
        with_gradient: 0.into(),
        value_only: 0.into(),
    };
    let o = SmcOptions {
        steps: 1,
        cess_target: None,
        independence: 0,
        final_rounds: 20,
        ..opts(301)
    };
    let r = smc(&counted, &Mixture, n, o).unwrap();
    assert_eq!(counted.with_gradient.load(Relaxed), 0);
    assert_eq!(counted.value_only.load(Relaxed), 0);
    assert_eq!(r.model_evaluations, n);
    assert_eq!(r.schedule, vec![1.0]);
    let pos = r.x.chunks(D).filter(|p| p[0] > 0.0).count() as f64 / n as f64;
    assert!((pos - 0.3).abs() < 0.05, "mode weight {pos}");
}

/// Resample-move with the weights kept: one level to t = 1, then rounds of MALA on the target
/// without the final resampling. The moves leave every weight as SNIS gave it (the same draws,
/// the same log-weights as a run without rounds), every particle keeps its own lineage, and the
/// weighted moved particles recover the 0.3 / 0.7 modes and the target's spread in them.
#[test]
fn kept_weights_survive_target_moves_and_recover_the_modes() {
    let n = 40_000;
    let o = SmcOptions {
        keep_weights: true,
        ..resample_move(30, 11)
    };
    let r = smc(&proposal(), &Mixture, n, o).unwrap();
    let unmoved = smc(
        &proposal(),
        &Mixture,
        n,
        SmcOptions {
            final_rounds: 0,
            ..o
        },
    )
    .unwrap();
    assert_eq!(r.log_weights, unmoved.log_weights);
    assert_eq!(r.final_lineages, n);
    assert!(
        r.x != unmoved.x && r.final_acceptance > 0.3,
        "{}",
        r.final_acceptance
    );
    // Normalised weights.
    let lz = log_sum_exp(&r.log_weights);
    let w: Vec<f64> = r.log_weights.iter().map(|v| (v - lz).exp()).collect();
    let pos: f64 =
        r.x.chunks(D)
            .zip(&w)
            .filter(|(p, _)| p[0] > 0.0)
            .map(|(_, w)| w)
            .sum();
    // Within a mode the target's spread in x3 is S; the proposal's is 2.0.
    let var3: f64 = r.x.chunks(D).zip(&w).map(|(p, w)| w * p[3] * p[3]).sum();
    let se = mode_weight_se(r.ess * n as f64);
    eprintln!(
        "kept weights: mode weight {pos:.3} (se {se:.3}), var(x3) {var3:.3} (want {}), ESS {:.4}",
        S * S,
        r.ess
    );
    assert!((pos - 0.3).abs() < 4.0 * se, "mode weight {pos}, se {se}");
    assert!((var3 - S * S).abs() < 0.05, "var(x3) {var3}");
    // The same run with the final resampling keeps far fewer lineages.
    let resampled = smc(
        &proposal(),
        &Mixture,
        n,
        SmcOptions {
            keep_weights: false,
            ..o
        },
    )
    .unwrap();
    assert!(
        resampled.final_lineages < n / 2,
        "{}",
        resampled.final_lineages
    );
}

/// Resample-move from truncated weights (each capped at sqrt(n) times the mean, as SNIS's): with
/// few particles for a far proposal (ESS x n about 30) the raw weights hand the population to a
/// few draws; the truncated ones keep more lineages, and the modes still come out 0.3 / 0.7
/// over seeds (truncation's bias shrinks as n grows).
#[test]
fn resampling_truncated_weights_keeps_more_lineages_and_the_modes() {
    let n = 2000;
    let (mut lin_raw, mut lin_cut, mut pos, mut capped, mut n_eff) = (0, 0, 0.0, 0, 0.0);
    let seeds = 8;
    for seed in 0..seeds {
        let o = resample_move(2, 40 + seed);
        let raw = smc(&proposal(), &Mixture, n, o).unwrap();
        let cut = smc(
            &proposal(),
            &Mixture,
            n,
            SmcOptions {
                truncate: true,
                ..o
            },
        )
        .unwrap();
        assert_eq!(raw.truncated, 0);
        lin_raw += raw.final_lineages;
        n_eff += raw.ess * n as f64;
        lin_cut += cut.final_lineages;
        capped += cut.truncated;
        pos += cut.x.chunks(D).filter(|p| p[0] > 0.0).count() as f64 / (n * seeds as usize) as f64;
    }
    // Pooled over the seeds, from the raw weights' effective sample size.
    let se = mode_weight_se(n_eff);
    eprintln!(
        "truncated: {capped} capped, lineages {lin_cut} (raw {lin_raw}), mode weight {pos:.3} (se {se:.3})"
    );
    assert!(capped > 0);
    assert!(lin_cut > lin_raw, "{lin_cut} vs {lin_raw}");
    assert!((pos - 0.3).abs() < 4.0 * se, "mode weight {pos}, se {se}");
}

/// Resample-move as the tests here run it: one level to t = 1, then `final_rounds` rounds of
/// MALA with step 0.05.
fn resample_move(final_rounds: usize, seed: u64) -> SmcOptions {
    SmcOptions {
        steps: 1,
        step_size: 0.05,
        final_rounds,
        seed,
        ..Default::default()
    }
}

/// The standard error of the 0.3 mode weight from `n_eff` effective samples:
/// sqrt(p (1 - p) / n_eff).
fn mode_weight_se(n_eff: f64) -> f64 {
    (0.3 * 0.7 / n_eff).sqrt()
}

/// Resample-move keeping fewer particles than it draws (`keep`): the final resampling draws the
/// kept ones from every draw's weight, so 5 draws per particle kept give more lineages than
/// drawing only as many as are kept, the population is the kept size, and the modes come out
/// 0.3 / 0.7 over seeds.
#[test]
fn keeping_fewer_than_drawn_spreads_over_more_lineages() {
    let kept = 1000;
    let (mut lin_few, mut lin_many, mut pos, mut n_eff) = (0, 0, 0.0, 0.0);
    let seeds = 8;
    for seed in 0..seeds {
        let o = resample_move(2, 60 + seed);
        let few = smc(&proposal(), &Mixture, kept, o).unwrap();
        let many = smc(
            &proposal(),
            &Mixture,
            5 * kept,
            SmcOptions {
                keep: Some(kept),
                ..o
            },
        )
        .unwrap();
        assert_eq!(many.x.len(), kept * D);
        assert_eq!(many.energies.len(), kept);
        assert_eq!(many.log_weights.len(), 5 * kept);
        lin_few += few.final_lineages;
        lin_many += many.final_lineages;
        n_eff += many.ess * (5 * kept) as f64;
        pos +=
            many.x.chunks(D).filter(|p| p[0] > 0.0).count() as f64 / (kept * seeds as usize) as f64;
    }
    // The kept particles' own multinomial noise adds to the weights' (kept x seeds draws).
    let se = (mode_weight_se(n_eff).powi(2) + 0.21 / (kept * seeds as usize) as f64).sqrt();
    assert!(lin_many > lin_few, "{lin_many} vs {lin_few}");
    assert!((pos - 0.3).abs() < 4.0 * se, "mode weight {pos}, se {se}");
}
