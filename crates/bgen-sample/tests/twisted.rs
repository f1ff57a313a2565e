//! Twisted SMC on an analytic problem: an autoregressive Gaussian proposal (x_t | x_{t-1} ~
//! N(a x_{t-1}, s^2)) and a Gaussian-chain target U = x_0^2 / 2v0 + sum (x_t - b x_{t-1})^2 / 2v
//! whose partial energy is the chain up to the placed coordinates, with
//! log Z = 1/2 ln(2 pi v0) + (D - 1)/2 ln(2 pi v).

use bgen_sample::resample::Scheme;
use bgen_sample::twisted::{twisted_smc, Autoregressive, TwistedOptions};
use bgen_sample::ComForm;
use bgen_system::{PartialTarget, Target};
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;

const D: usize = 12;
const ENDS: [usize; 4] = [3, 6, 9, 12];
const A: f64 = 0.5;
const S0: f64 = 1.0;
const S: f64 = 1.2;
const B: f64 = 0.9;
const V0: f64 = 0.6;
const V: f64 = 0.5;

fn log_normal(x: f64, mean: f64, sd: f64) -> f64 {
    -0.5 * ((x - mean) / sd).powi(2) - sd.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
}

struct ArGaussian;

struct State {
    last: Vec<f64>,
    seed: u64,
}

impl ArGaussian {
    fn log_q(x: &[f64]) -> f64 {
        (0..x.len())
            .map(|t| match t {
                0 => log_normal(x[0], 0.0, S0),
                _ => log_normal(x[t], A * x[t - 1], S),
            })
            .sum()
    }
}

impl Autoregressive for ArGaussian {
    type State = State;
    fn dim(&self) -> usize {
        D
    }
    fn start(&self, n: usize, seed: u64) -> State {
        State {
            last: vec![0.0; n],
            seed,
        }
    }
    fn extend(&self, s: &mut State, from: usize, to: usize, x: &mut [f64], log_q: &mut [f64]) {
        let w = to - from;
        for (i, last) in s.last.iter_mut().enumerate() {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(
                s.seed ^ ((i as u64) << 20) ^ (from as u64) ^ 0xABCD_0000_0000,
            );
            log_q[i] = 0.0;
            for t in from..to {
                let z: f64 = rng.sample(StandardNormal);
                let (mean, sd) = if t == 0 { (0.0, S0) } else { (A * *last, S) };
                let v = mean + sd * z;
                log_q[i] += log_normal(v, mean, sd);
                x[i * w + t - from] = v;
                *last = v;
            }
        }
    }
    fn select(&self, s: &mut State, idx: &[usize]) {
        s.last = idx.iter().map(|&i| s.last[i]).collect();
        s.seed = s.seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    }
}

struct Chain;

fn chain_energy(x: &[f64]) -> f64 {
    (0..x.len())
        .map(|t| match t {
            0 => x[0] * x[0] / (2.0 * V0),
            _ => (x[t] - B * x[t - 1]).powi(2) / (2.0 * V),
        })
        .sum()
}

impl Target for Chain {
    fn dim(&self) -> usize {
        D
    }
    fn energy_and_grad(&self, x: &[f64], energy: &mut [f64], grad: Option<&mut [f64]>) {
        assert!(grad.is_none());
        for (i, e) in energy.iter_mut().enumerate() {
            *e = chain_energy(&x[i * D..(i + 1) * D]);
        }
    }
}

impl PartialTarget for Chain {
    fn partial_energy(&self, x: &[f64], placed: usize, energy: &mut [f64]) {
        for (i, e) in energy.iter_mut().enumerate() {
            *e = chain_energy(&x[i * placed..(i + 1) * placed]);
        }
    }
}

fn log_z() -> f64 {
    let l2pi = (2.0 * std::f64::consts::PI).ln();
    0.5 * (l2pi + V0.ln()) + 0.5 * (D - 1) as f64 * (l2pi + V.ln())
}

fn opts(threshold: f64, seed: u64) -> TwistedOptions {
    TwistedOptions {
        ess_threshold: threshold,
        scheme: Scheme::Systematic,
        seed,
        com: ComForm::None,
        com_sigma: 1.0,
        n_atoms: D / 3,
    }
}

#[test]
fn weights_telescope_to_the_plain_importance_weight() {
    let r = twisted_smc(&ArGaussian, &Chain, 500, &ENDS, opts(0.0, 1));
    assert_eq!(r.resamplings, 0);
    for i in 0..500 {
        let xi = &r.x_weighted[i * D..(i + 1) * D];
        let plain = -chain_energy(xi) - ArGaussian::log_q(xi);
        assert!(
            (r.log_weights[i] - plain).abs() < 1e-10 * plain.abs().max(1.0),
            "{i}: {} vs {plain}",
            r.log_weights[i]
        );
    }
}

#[test]
fn log_z_is_recovered_and_ess_beats_plain_importance_sampling() {
    let n = 4000;
    let (mut zs, mut ess_t, mut ess_is, mut m2) = (Vec::new(), 0.0, 0.0, 0.0);
    for seed in 0..8 {
        let t = twisted_smc(&ArGaussian, &Chain, n, &ENDS, opts(0.5, seed));
        let p = twisted_smc(&ArGaussian, &Chain, n, &ENDS, opts(0.0, seed + 100));
        zs.push(t.log_z);
        ess_t += t.ess / 8.0;
        ess_is += p.ess / 8.0;
        assert!(t.resamplings > 0);
        m2 += t.x.chunks(D).map(|c| c[D - 1] * c[D - 1]).sum::<f64>() / (8 * n) as f64;
    }
    // The resampled particles carry the target's moments: Var x_t = b^2 Var x_{t-1} + v.
    let var = (1..D).fold(V0, |v, _| B * B * v + V);
    eprintln!("E[x_last^2] {m2:.3} (truth {var:.3})");
    assert!((m2 - var).abs() < 0.1, "E[x_last^2] {m2} vs {var}");
    let mean = zs.iter().sum::<f64>() / 8.0;
    let sd = (zs.iter().map(|z| (z - mean).powi(2)).sum::<f64>() / 7.0).sqrt();
    eprintln!(
        "log Z {mean:.4} +- {:.4} (truth {:.4}); ESS twisted {ess_t:.3}, plain IS {ess_is:.3}",
        sd / 8f64.sqrt(),
        log_z()
    );
    assert!((mean - log_z()).abs() < 4.0 * sd / 8f64.sqrt() + 0.01);
    assert!(ess_t > 2.0 * ess_is, "twisted {ess_t} vs IS {ess_is}");
}
