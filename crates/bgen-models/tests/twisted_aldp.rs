//! Twisted SMC with a real ArBG and the real force field: on whole molecules the product of the
//! block increments (partial energies, block log q, CoM term) equals the plain importance weight
//! -U(x) - log q(x) + A(x), with log q recomputed in one pass over the finished samples.

use bgen_models::arbg::{Arbg, ArbgConfig};
use bgen_models::data::Normalizer;
use bgen_models::proposal::{ArbgProposal, Pool};
use bgen_sample::com::com_log_density;
use bgen_sample::resample::Scheme;
use bgen_sample::{twisted_smc, ComForm, Proposal, TwistedOptions};
use bgen_system::{System, Target};
use tch::{nn, Device, Tensor};

const STD: f64 = 0.166;

/// `copies` copies of one random ArBG for aldp, sharpened so that samples vary but are not all
/// the same bin, each as a proposal.
fn random_proposals(na: usize, copies: usize) -> Vec<ArbgProposal> {
    let config = ArbgConfig {
        atoms: na as i64,
        width: 32,
        layers: 1,
        head_dim: 16,
        bins: 64,
        range: 3.0,
    };
    // libtorch's generator is global: tests build their models in turn.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(5);
    let vs = nn::VarStore::new(Device::Cpu);
    let first = Arbg::new(&vs.root(), config.clone());
    tch::no_grad(|| {
        // In name order, so that the draws (and the test) are reproducible.
        let mut vars: Vec<_> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, mut v) in vars {
            v.copy_(&(Tensor::randn_like(&v) * 0.3));
        }
    });
    let mut models = vec![first];
    for _ in 1..copies {
        let mut other = nn::VarStore::new(Device::Cpu);
        models.push(Arbg::new(&other.root(), config.clone()));
        other.copy(&vs).unwrap();
    }
    models
        .into_iter()
        .map(|model| ArbgProposal {
            model,
            normalizer: Normalizer {
                n_atoms: na as i64,
                std: STD,
            },
            device: Device::Cpu,
            tau: 1.0,
            batch: 64,
        })
        .collect()
}

#[test]
fn twisted_weights_telescope_to_the_plain_weight_on_aldp() {
    let sys = System::named("aldp", None, None).unwrap();
    let na = sys.n_atoms();
    let std = STD;
    let proposal = Pool::new(random_proposals(na, 1));
    let sigma = std / (na as f64).sqrt();
    let ends: Vec<usize> = sys.residue_ends().iter().map(|k| 3 * k).collect();
    assert_eq!(ends, vec![18, 48, 66]);
    let n = 40;
    let r = twisted_smc(
        &proposal,
        &sys,
        n,
        &ends,
        TwistedOptions {
            ess_threshold: 0.0, // no resampling: every particle keeps its whole history
            scheme: Scheme::Systematic,
            seed: 3,
            com: ComForm::Gaussian,
            com_sigma: sigma,
            n_atoms: na,
        },
    );
    let x = &r.x_weighted;
    let mut u = vec![0.0; n];
    sys.energy_and_grad(x, &mut u, None);
    let mut lq = vec![0.0; n];
    Proposal::log_q(&proposal, x, &mut lq, None);
    let mut a = vec![0.0; n];
    com_log_density(ComForm::Gaussian, sigma, na, x, &mut a, None);
    for i in 0..n {
        let plain = -u[i] - lq[i] + a[i];
        let tw = r.log_weights[i];
        // log q is a sum of 66 f32 token terms of magnitude ~10 (its round-off is ~1e-4), the
        // energy an f64 sum: each to its round-off. (A is of order 1-10: its absence shows.)
        let tol = 1e-3 + 1e-12 * u[i].abs();
        assert!(
            (tw - plain).abs() < tol,
            "{i}: twisted {tw} vs plain {plain} (U {}, log q {}, A {})",
            u[i],
            lq[i],
            a[i]
        );
    }
    eprintln!("U {:?}\nlog q {:?}\nA {:?}", &u[..3], &lq[..3], &a[..3]);
}

/// Twisted SMC with resampling (atom blocks) gives the same particles, weights and log Z on a
/// pool of two workers as on one: slices of the particles are extended in parallel and
/// regrouped at each resampling.
#[test]
fn twisted_smc_on_two_workers_matches_one() {
    let sys = System::named("aldp", None, None).unwrap();
    let na = sys.n_atoms();
    let ends: Vec<usize> = (1..=na).map(|k| 3 * k).collect();
    let run = |workers: usize| {
        let proposal = Pool::new(random_proposals(na, workers));
        twisted_smc(
            &proposal,
            &sys,
            30,
            &ends,
            TwistedOptions {
                ess_threshold: 0.7,
                scheme: Scheme::Systematic,
                seed: 4,
                com: ComForm::Gaussian,
                com_sigma: STD / (na as f64).sqrt(),
                n_atoms: na,
            },
        )
    };
    let (one, two) = (run(1), run(2));
    assert!(one.resamplings >= 2, "resamplings {}", one.resamplings);
    assert_eq!(one.resamplings, two.resamplings);
    assert_eq!(one.x_weighted, two.x_weighted);
    assert_eq!(one.log_weights, two.log_weights);
    assert_eq!(one.x, two.x);
    assert_eq!(one.log_z, two.log_z);
}
