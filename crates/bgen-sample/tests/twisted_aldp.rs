//! Twisted SMC with a real ArBG and the real force field: on whole molecules the product of the
//! block increments (partial energies, block log q, CoM term) equals the plain importance weight
//! -U(x) - log q(x) + A(x), with log q recomputed in one pass over the finished samples.

use bgen_models::arbg::{Arbg, ArbgConfig};
use bgen_models::data::Normalizer;
use bgen_models::internal::Internal;
use bgen_models::proposal::{ArbgProposal, Pool};
use bgen_sample::com::com_log_density;
use bgen_sample::resample::Scheme;
use bgen_sample::{twisted_smc, ComForm, Proposal, TwistedOptions};
use bgen_system::{InternalTarget, System, Target, ZMatrix};
use tch::{nn, Device, Tensor};

const STD: f64 = 0.166;

/// `copies` copies of one random ArBG for aldp, sharpened so that samples vary but are not all
/// the same bin, each as a proposal; in internal coordinates with `internal`.
fn random_proposals(na: usize, copies: usize, internal: Option<&Internal>) -> Vec<ArbgProposal> {
    let config = ArbgConfig {
        atoms: match internal {
            Some(_) => na as i64 - 2,
            None => na as i64,
        },
        width: 32,
        layers: 1,
        head_dim: 16,
        bins: 64,
        range: if internal.is_some() { 5.0 } else { 3.0 },
        conditioning: None,
    };
    // libtorch's generator is global: tests build their models in turn.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(5);
    let vs = nn::VarStore::new(Device::Cpu);
    let first = Arbg::new(&vs.root(), config.clone());
    tch::no_grad(|| {
        // In name order, so that the draws (and the test) are reproducible.
        for (_, mut v) in bgen_models::train::variables_by_name(&vs) {
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
            internal: internal.cloned(),
            device: Device::Cpu,
            tau: 1.0,
            batch: 64,
            labels: None,
        })
        .collect()
}

#[test]
fn twisted_weights_telescope_to_the_plain_weight_on_aldp() {
    let sys = System::named("aldp", None, None).unwrap();
    let na = sys.n_atoms();
    let std = STD;
    let proposal = Pool::new(random_proposals(na, 1, None));
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

/// Twisted SMC with resampling (atom blocks) gives the same particles, weights and log Z, bit
/// for bit, on a pool of two workers as on one: slices of 8 particles (the last of 6) are
/// extended in parallel and regrouped at each resampling. (Slices cut by the number of workers
/// passed on the CPU with AVX-512 kernels and failed with libtorch and MKL held to AVX2, whose
/// rounding depends on the rows in a pass.)
#[test]
fn twisted_smc_on_two_workers_matches_one() {
    let sys = System::named("aldp", None, None).unwrap();
    let na = sys.n_atoms();
    let ends: Vec<usize> = (1..=na).map(|k| 3 * k).collect();
    let run = |workers: usize| {
        let mut copies = random_proposals(na, workers, None);
        copies.iter_mut().for_each(|p| p.batch = 8);
        let proposal = Pool::new(copies);
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

/// In internal coordinates, blocks of atoms in Z-matrix order: the twisted weight of a whole
/// particle is the plain weight -U(x(ic)) + log|det J| - log q(ic), with log q recomputed in
/// one pass; the samples' log q from generation equals that recomputation; and the torsion
/// tokens, binned on the circle, put samples all around it.
#[test]
fn twisted_weights_telescope_in_internal_coordinates() {
    let sys = System::named("aldp", None, None).unwrap();
    let na = sys.n_atoms();
    let z = ZMatrix::from_topology(&sys.topology).unwrap();
    let noise = bgen_models::data::normals(300 * 3 * na, 9);
    let frames: Vec<f64> = (0..300 * 3 * na)
        .map(|k| sys.positions[k % (3 * na)] + 0.01 * noise[k])
        .collect();
    let internal = Internal::fit(&frames, &z);
    let proposal = Pool::new(random_proposals(na, 1, Some(&internal)));
    let target = InternalTarget {
        target: &sys,
        zmatrix: &z,
    };
    let d = z.dim();
    // The residues' sizes (6, 10, 6 atoms) in Z-matrix order.
    let ends: Vec<usize> = [6, 16, 22].map(ZMatrix::coords_of_rows).to_vec();
    let n = 40;
    let r = twisted_smc(
        &proposal,
        &target,
        n,
        &ends,
        TwistedOptions {
            ess_threshold: 0.0,
            scheme: Scheme::Systematic,
            seed: 3,
            com: ComForm::None,
            com_sigma: 1.0,
            n_atoms: na,
        },
    );
    let ic = &r.x_weighted;
    let mut u = vec![0.0; n];
    target.energy_and_grad(ic, &mut u, None);
    let mut lq = vec![0.0; n];
    Proposal::log_q(&proposal, ic, &mut lq, None);
    let mut finite = 0;
    for i in 0..n {
        let (plain, tw) = (-u[i] - lq[i], r.log_weights[i]);
        if u[i].is_infinite() {
            assert_eq!(tw, f64::NEG_INFINITY, "{i}");
            continue;
        }
        finite += 1;
        let tol = 1e-3 + 1e-12 * u[i].abs();
        assert!(
            (tw - plain).abs() < tol,
            "{i}: twisted {tw} vs plain {plain}"
        );
    }
    assert!(finite > n / 2, "{finite} of {n} finite");
    // Whole samples: log q from generation = log q recomputed.
    let (x, lq0) = Proposal::sample(&proposal, 200, 11);
    let mut lq1 = vec![0.0; 200];
    Proposal::log_q(&proposal, &x, &mut lq1, None);
    for (a, b) in lq0.iter().zip(&lq1) {
        assert!((a - b).abs() < 1e-3, "{a} vs {b}");
    }
    // Every torsion of a random model lands on both halves of the circle.
    for q in (0..d).filter(|&q| internal.kinds[q] == 2) {
        let cos: Vec<f64> = x.chunks(d).map(|c| c[q].cos()).collect();
        assert!(
            cos.iter().any(|&c| c > 0.3) && cos.iter().any(|&c| c < -0.3),
            "torsion {q}"
        );
        assert!(x.chunks(d).all(|c| z.in_domain(c)));
    }
}
