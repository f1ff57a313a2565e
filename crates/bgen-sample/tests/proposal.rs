//! Model proposals: a pool of model copies on worker threads gives the same samples, log q and
//! gradients as one copy on the calling thread, for both model families; a TarFlow's prior
//! temperature gives the density it claims.

use bgen_models::data::Normalizer;
use bgen_models::proposal::{ArbgProposal, FlowProposal, Pool};
use bgen_models::train::{OptimConfig, Trainer};
use bgen_models::{ArbgConfig, Model, ModelConfig, TarFlowConfig};
use bgen_sample::Proposal;
use tch::{Device, Kind};

const ATOMS: i64 = 4;

/// Three copies of a model with every weight perturbed (a fresh TarFlow is the identity).
fn copies(config: impl Into<ModelConfig>) -> (Normalizer, Vec<Model>) {
    let norm = Normalizer {
        n_atoms: ATOMS,
        std: 0.2,
    };
    let t = seeded(1, || {
        let t = Trainer::new(config, OptimConfig::default(), norm.clone(), Device::Cpu);
        add_noise(&t.vs, 0.2);
        t
    });
    (norm, t.copies(3, false))
}

/// `f` run with libtorch's global generator seeded with `seed`, under a lock shared by the
/// tests here: they run in parallel threads, and a model built or perturbed while another test
/// draws would differ from run to run.
fn seeded<T>(seed: i64, f: impl FnOnce() -> T) -> T {
    static GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(seed);
    f()
}

/// Adds `scale` x N(0, 1) to every variable of `vs` in name order (`variables_by_name`).
fn add_noise(vs: &tch::nn::VarStore, scale: f64) {
    tch::no_grad(|| {
        for (_, mut v) in bgen_models::train::variables_by_name(vs) {
            let _ = v.f_add_(&(v.randn_like() * scale)).unwrap();
        }
    });
}

fn same(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    assert!(a.iter().all(|v| v.is_finite()), "{what}: finite");
    assert_eq!(a, b, "{what}: a pool of two differs from one copy");
}

#[test]
fn flow_pool_matches_one_copy() {
    let cfg = TarFlowConfig {
        tokens: ATOMS,
        token_dim: 3,
        width: 32,
        blocks: 2,
        layers: 1,
        head_dim: 16,
        mlp_ratio: 2,
        conditioning: None,
    };
    let (norm, models) = copies(cfg);
    let mut props = models.into_iter().map(|m| match m {
        Model::TarFlow(flow) => FlowProposal {
            flow,
            normalizer: norm.clone(),
            internal: None,
            device: Device::Cpu,
            kind: Kind::Float,
            batch: 30,
            tau: 1.0,
            labels: None,
        },
        Model::Arbg(_) => unreachable!(),
    });
    let one = Pool::one(props.next().unwrap());
    let two = Pool::new(props.collect());
    assert_eq!(two.workers(), 2);
    let n = 100; // 4 chunks, the last one short
    let (x1, l1) = one.sample(n, 9);
    let (x2, l2) = two.sample(n, 9);
    same(&x1, &x2, "samples");
    same(&l1, &l2, "log q of the samples");
    assert!(x1.iter().any(|&v| v != x1[0]), "samples vary");
    let d = 3 * ATOMS as usize;
    let (mut g1, mut g2) = (vec![0.0; n * d], vec![0.0; n * d]);
    let (mut o1, mut o2) = (vec![0.0; n], vec![0.0; n]);
    one.log_q(&x1, &mut o1, Some(&mut g1));
    two.log_q(&x1, &mut o2, Some(&mut g2));
    same(&o1, &o2, "log q");
    same(&g1, &g2, "grad log q");
    // Recomputed log q agrees with the sampling pass's (f32 round-off).
    for (a, b) in o1.iter().zip(&l1) {
        assert!((a - b).abs() < 1e-3 * (1.0 + b.abs()), "{a} vs {b}");
    }
}

#[test]
fn arbg_pool_matches_one_copy() {
    let cfg = ArbgConfig {
        atoms: ATOMS,
        width: 32,
        layers: 1,
        head_dim: 16,
        bins: 16,
        range: 3.0,
        conditioning: None,
    };
    let (norm, models) = copies(cfg);
    let mut props = models.into_iter().map(|m| match m {
        Model::Arbg(model) => ArbgProposal {
            model,
            normalizer: norm.clone(),
            internal: None,
            device: Device::Cpu,
            tau: 1.0,
            batch: 30,
            labels: None,
        },
        Model::TarFlow(_) => unreachable!(),
    });
    let one = Pool::one(props.next().unwrap());
    let two = Pool::new(props.collect());
    let n = 70;
    let (x1, l1) = one.sample(n, 5);
    let (x2, l2) = two.sample(n, 5);
    same(&x1, &x2, "samples");
    same(&l1, &l2, "log q of the samples");
    let (mut o1, mut o2) = (vec![0.0; n], vec![0.0; n]);
    one.log_q(&x1, &mut o1, None);
    two.log_q(&x1, &mut o2, None);
    same(&o1, &o2, "log q");
}

/// A fresh TarFlow is the identity, so at prior temperature tau its proposal is exactly
/// N(0, (tau std)^2) per coordinate in nm: log q and its gradient match that Gaussian, samples
/// have its variance, and sampled log q equals recomputed log q.
#[test]
fn flow_prior_temperature_is_exact() {
    let cfg = TarFlowConfig {
        tokens: ATOMS,
        token_dim: 3,
        width: 16,
        blocks: 2,
        layers: 1,
        head_dim: 16,
        mlp_ratio: 2,
        conditioning: None,
    };
    let norm = Normalizer {
        n_atoms: ATOMS,
        std: 0.2,
    };
    let t = seeded(4, || {
        Trainer::new(cfg, OptimConfig::default(), norm.clone(), Device::Cpu)
    });
    let Some(Model::TarFlow(flow)) = t.copies(1, false).pop() else {
        unreachable!()
    };
    let tau = 0.7;
    let p = Pool::one(FlowProposal {
        flow,
        normalizer: norm,
        internal: None,
        device: Device::Cpu,
        kind: Kind::Float,
        batch: 500,
        tau,
        labels: None,
    });
    let (n, d) = (4000, 3 * ATOMS as usize);
    let (x, lq) = p.sample(n, 3);
    let s = 0.2 * tau;
    let var = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    assert!(
        (var / (s * s) - 1.0).abs() < 0.03,
        "variance {var} vs {}",
        s * s
    );
    let (mut out, mut grad) = (vec![0.0; n], vec![0.0; n * d]);
    p.log_q(&x, &mut out, Some(&mut grad));
    for i in 0..n {
        let row = &x[i * d..(i + 1) * d];
        let exact: f64 = row
            .iter()
            .map(|v| -0.5 * (v / s).powi(2) - s.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln())
            .sum();
        assert!((out[i] - exact).abs() < 1e-3, "log q {} vs {exact}", out[i]);
        assert!(
            (lq[i] - exact).abs() < 1e-3,
            "sampled log q {} vs {exact}",
            lq[i]
        );
        for (g, v) in grad[i * d..(i + 1) * d].iter().zip(row) {
            assert!(
                (g + v / (s * s)).abs() < 1e-2 * (1.0 + (v / (s * s)).abs()),
                "{g}"
            );
        }
    }
}

/// A TarFlow on internal coordinates: with an identity flow each feature is N(0, 1), so log q of
/// the internal coordinates is the sum of the standard normal log densities of the features plus
/// log|dy/d ic|; samples map back to themselves; and the gradient of log q (through the torsions'
/// atanh and the flow) matches central differences of a trained-looking (perturbed) flow.
#[test]
fn flow_on_internal_coordinates_has_the_exact_density_and_gradient() {
    use bgen_models::internal::Internal;
    let sys = bgen_system::System::named("aldp", None, None).unwrap();
    let z = bgen_system::ZMatrix::from_topology(&sys.topology).unwrap();
    let noise = bgen_models::data::normals(300 * 66, 11);
    let frames: Vec<f64> = (0..300 * 66)
        .map(|k| sys.positions[k % 66] + 0.01 * noise[k])
        .collect();
    let internal = Internal::fit(&frames, &z);
    let d = internal.dim();
    let cfg = TarFlowConfig {
        tokens: 20,
        token_dim: 3,
        width: 16,
        blocks: 2,
        layers: 1,
        head_dim: 16,
        mlp_ratio: 2,
        conditioning: None,
    };
    let norm = Normalizer::fit(&frames, 22);
    for perturbed in [false, true] {
        // In f64, so that finite differences are meaningful.
        let (_vs, flow) = seeded(2, || {
            let mut vs = tch::nn::VarStore::new(Device::Cpu);
            let flow = bgen_models::TarFlow::new(&vs.root(), cfg.clone());
            vs.double();
            if perturbed {
                add_noise(&vs, 0.05);
            }
            (vs, flow)
        });
        let p = Pool::one(FlowProposal {
            flow,
            normalizer: norm.clone(),
            internal: Some(internal.clone()),
            device: Device::Cpu,
            kind: Kind::Double,
            batch: 64,
            tau: 1.0,
            labels: None,
        });
        assert_eq!(Proposal::dim(&p), d);
        let n = 8;
        let (ic, lq) = p.sample(n, 3);
        let (mut lq2, mut g) = (vec![0.0; n], vec![0.0; n * d]);
        p.log_q(&ic, &mut lq2, Some(&mut g));
        for (a, b) in lq.iter().zip(&lq2) {
            assert!((a - b).abs() < 1e-8 * (1.0 + b.abs()), "{a} vs {b}");
        }
        if !perturbed {
            let mut y = vec![0.0; n * d];
            let ld = internal.to_model(&ic, &mut y, None);
            for i in 0..n {
                let gauss: f64 = y[i * d..(i + 1) * d]
                    .iter()
                    .map(|v| -0.5 * v * v - 0.5 * (2.0 * std::f64::consts::PI).ln())
                    .sum();
                assert!((gauss + ld[i] - lq[i]).abs() < 1e-8, "row {i}");
            }
        }
        for c in (0..d).step_by(7) {
            let h = 1e-6;
            let (mut a, mut b) = (ic[..d].to_vec(), ic[..d].to_vec());
            a[c] += h;
            b[c] -= h;
            let (mut la, mut lb) = ([0.0], [0.0]);
            p.log_q(&a, &mut la, None);
            p.log_q(&b, &mut lb, None);
            let fd = (la[0] - lb[0]) / (2.0 * h);
            assert!(
                (fd - g[c]).abs() < 1e-4 * fd.abs().max(1.0),
                "coordinate {c}: {fd} vs {}",
                g[c]
            );
        }
    }
}

/// A transferable TarFlow as the proposal for one molecule (its internal coordinates from the
/// per-class standards, its tokens labelled, the flow's other tokens padding): samples carry the
/// log q that recomputing gives, on one thread and on a pool, and its gradient matches finite
/// differences.
#[test]
fn a_transferable_proposal_carries_its_exact_log_q() {
    use bgen_models::tarflow::Conditioning;
    use bgen_models::transfer::{padded_labels, toy_molecule};
    let (sys, z, _, internal) = toy_molecule("GA", 50).unwrap();
    let tokens = sys.n_atoms() as i64 - 2 + 3;
    let cfg = TarFlowConfig {
        tokens,
        token_dim: 3,
        width: 32,
        blocks: 2,
        layers: 1,
        head_dim: 16,
        mlp_ratio: 2,
        conditioning: Some(Conditioning::of(sys.params.setup, 4)),
    };
    let norm = Normalizer {
        n_atoms: tokens + 2,
        std: 1.0,
    };
    let (_, models) = {
        let t = seeded(3, || {
            let t = Trainer::new(cfg, OptimConfig::default(), norm.clone(), Device::Cpu);
            add_noise(&t.vs, 0.05);
            t
        });
        (norm.clone(), t.copies(2, false))
    };
    let l = padded_labels(&sys, &z, tokens);
    let pooled = bgen_models::proposal::Pooled::labelled(
        models,
        &norm,
        Some(&internal),
        Some(&l),
        Device::Cpu,
        16,
        1.0,
    );
    let p = pooled.proposal();
    assert_eq!(p.dim(), internal.dim());
    let (x, lq) = p.sample(40, 9);
    let mut again = vec![0.0; 40];
    p.log_q(&x, &mut again, None);
    for (a, b) in lq.iter().zip(&again) {
        assert!((a - b).abs() < 1e-3 * a.abs().max(1.0), "{a} vs {b}");
    }
    // Gradient against central differences on a few coordinates of one sample.
    let x1 = &x[..p.dim()];
    let mut g = vec![0.0; p.dim()];
    let mut l1 = [0.0];
    p.log_q(x1, &mut l1, Some(&mut g));
    for q in [0, 5, p.dim() / 2, p.dim() - 1] {
        let h = 1e-3 * internal.spread[q];
        let (mut up, mut dn) = (x1.to_vec(), x1.to_vec());
        up[q] += h;
        dn[q] -= h;
        let (mut lu, mut ld) = ([0.0], [0.0]);
        p.log_q(&up, &mut lu, None);
        p.log_q(&dn, &mut ld, None);
        let fd = (lu[0] - ld[0]) / (2.0 * h);
        assert!(
            (fd - g[q]).abs() < 0.05 * g[q].abs().max(1.0 / internal.spread[q]),
            "coordinate {q}: {fd} vs {}",
            g[q]
        );
    }
}
