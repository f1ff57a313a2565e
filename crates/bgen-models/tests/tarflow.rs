//! TarFlow invariants: it inverts to round-off, its log-determinant equals the brute-force
//! Jacobian's, and the gradient of log q matches finite differences.

use bgen_models::tarflow::{Conditioning, Labels};
use bgen_models::train::variables_by_name;
use bgen_models::{TarFlow, TarFlowConfig};
use tch::{nn, Device, Kind, Tensor};

fn tiny() -> TarFlowConfig {
    TarFlowConfig {
        tokens: 5,
        token_dim: 3,
        width: 32,
        blocks: 2,
        layers: 2,
        head_dim: 16,
        mlp_ratio: 4,
        conditioning: None,
    }
}

/// A flow with every weight perturbed by `scale` x N(0, 1) (a fresh flow is the identity, which
/// proves nothing).
fn randomised_with(kind: Kind, scale: f64) -> (nn::VarStore, TarFlow) {
    seeded(0, || perturbed(kind, scale))
}

/// `f` run with libtorch's global generator seeded with `seed`, under one lock shared by every
/// test here: the tests run in parallel threads, and a draw in one would otherwise move the
/// others' numbers (a flow or an input that changes from run to run makes a flaky test).
fn seeded<T>(seed: i64, f: impl FnOnce() -> T) -> T {
    static GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(seed);
    f()
}

fn perturbed(kind: Kind, scale: f64) -> (nn::VarStore, TarFlow) {
    let mut vs = nn::VarStore::new(Device::Cpu);
    let flow = TarFlow::new(&vs.root(), tiny());
    if kind == Kind::Double {
        vs.double();
    }
    add_noise(&vs, scale, |_| true);
    (vs, flow)
}

/// Adds `scale` x N(0, 1) to every variable of `vs` whose name passes `which`, in name order
/// (`variables_by_name`: in the hash map's order each run drew another flow, and the tests
/// were flaky with it: a round trip or a finite difference near its tolerance on some runs).
fn add_noise(vs: &nn::VarStore, scale: f64, which: impl Fn(&str) -> bool) {
    tch::no_grad(|| {
        for (_, mut v) in variables_by_name(vs).into_iter().filter(|(n, _)| which(n)) {
            let noise = v.randn_like() * scale;
            let _ = v.f_add_(&noise).unwrap();
        }
    });
}

fn randomised(kind: Kind) -> (nn::VarStore, TarFlow) {
    randomised_with(kind, 0.2)
}

#[test]
fn inverts_to_round_off() {
    // Perturbations of 0.05 give per-token scales exp(a) of a few (as in a trained flow); f32
    // round-off then stays near 1e-5 (1.05e-5 on the CI machine's CPU, under 1e-5 here: the
    // kernels' summation order differs), so f32 is held to 1e-4, still four orders below the
    // 0.1 the flow must move x by. In f64 the larger perturbation is used as well.
    for (kind, scale, tol) in [
        (Kind::Float, 0.05, 1e-4),
        (Kind::Double, 0.05, 1e-12),
        (Kind::Double, 0.2, 1e-10),
    ] {
        let (_vs, flow) = randomised_with(kind, scale);
        let x = seeded(1, || Tensor::randn([64, 15], (kind, Device::Cpu)));
        let (z, _) = tch::no_grad(|| flow.forward(&x, None));
        let moved = f64::try_from((&z - &x).abs().max()).unwrap();
        assert!(moved > 0.1, "the flow must not be the identity ({moved})");
        let back = tch::no_grad(|| flow.inverse(&z, None).0);
        let err = f64::try_from((&back - &x).abs().max()).unwrap();
        assert!(err < tol, "{kind:?}: round trip error {err}");
        // and the other way: sample z, invert, map forward
        let z2 = seeded(2, || Tensor::randn([64, 15], (kind, Device::Cpu)));
        let err = f64::try_from(
            (tch::no_grad(|| flow.forward(&flow.inverse(&z2, None).0, None).0) - &z2)
                .abs()
                .max(),
        )
        .unwrap();
        assert!(err < tol, "{kind:?}: z round trip error {err}");
    }
}

/// One token per coordinate (15 tokens of dimension 1) inverts as well (in f64: in f32 the
/// round-off of 15 sequential inversions came to about 1e-5, over it on some runs).
#[test]
fn per_coordinate_tokens_invert() {
    let (_vs, flow, x) = seeded(3, || {
        let mut vs = nn::VarStore::new(Device::Cpu);
        let cfg = TarFlowConfig {
            tokens: 15,
            token_dim: 1,
            ..tiny()
        };
        let flow = TarFlow::new(&vs.root(), cfg);
        vs.double();
        add_noise(&vs, 0.05, |_| true);
        (
            vs,
            flow,
            Tensor::randn([16, 15], (Kind::Double, Device::Cpu)),
        )
    });
    let back = tch::no_grad(|| flow.inverse(&flow.forward(&x, None).0, None).0);
    assert!(f64::try_from((back - &x).abs().max()).unwrap() < 1e-10);
}

#[test]
fn log_determinant_equals_brute_force_jacobian() {
    let (_vs, flow) = randomised(Kind::Double);
    let d = 15;
    for s in 0..3 {
        let x = seeded(10, || Tensor::randn([1, d], (Kind::Double, Device::Cpu)))
            .set_requires_grad(true);
        let (z, logdet) = flow.forward(&x, None);
        let mut jac = vec![0.0; (d * d) as usize];
        for i in 0..d {
            let g = Tensor::run_backward(&[z.get(0).get(i)], &[&x], true, false);
            let row: Vec<f64> = Vec::try_from(g[0].view([-1])).unwrap();
            jac[(i * d) as usize..((i + 1) * d) as usize].copy_from_slice(&row);
        }
        let j = Tensor::from_slice(&jac).view([d, d]);
        let (sign, lad) = Tensor::linalg_slogdet(&j);
        let want = f64::try_from(lad).unwrap();
        let got = f64::try_from(logdet.get(0)).unwrap();
        assert_eq!(f64::try_from(sign).unwrap(), 1.0);
        assert!((got - want).abs() < 1e-10, "sample {s}: {got} vs {want}");
    }
}

#[test]
fn gradient_of_log_q_matches_finite_differences() {
    let (_vs, flow) = randomised_with(Kind::Double, 0.1);
    let x =
        seeded(11, || Tensor::randn([3, 15], (Kind::Double, Device::Cpu))).set_requires_grad(true);
    let lq = flow.log_prob(&x, 1.0, None);
    let g = Tensor::run_backward(&[lq.sum(Kind::Double)], &[&x], false, false).remove(0);
    let x0 = x.detach();
    for k in [0i64, 4, 7, 14] {
        let e = Tensor::zeros([3, 15], (Kind::Double, Device::Cpu));
        let _ = e.narrow(1, k, 1).fill_(1e-5);
        let (lp, lm) = tch::no_grad(|| {
            (
                flow.log_prob(&(&x0 + &e), 1.0, None),
                flow.log_prob(&(&x0 - &e), 1.0, None),
            )
        });
        let fd = (lp - lm) / 2e-5;
        let gk = g.narrow(1, k, 1).view([-1]);
        let scale = f64::try_from(gk.abs().max()).unwrap().max(1.0);
        let err = f64::try_from((fd - gk).abs().max()).unwrap();
        assert!(
            err < 1e-7 * scale,
            "coordinate {k}: {err} (gradient scale {scale})"
        );
    }
}

#[test]
fn samples_carry_their_exact_log_q() {
    let (_vs, flow) = randomised(Kind::Double);
    let (x, lq) = flow.sample(
        &seeded(12, || {
            Tensor::randn([32, flow.config.dim()], (Kind::Double, Device::Cpu))
        }),
        1.0,
        None,
    );
    let again = tch::no_grad(|| flow.log_prob(&x, 1.0, None));
    assert!(f64::try_from((lq - again).abs().max()).unwrap() < 1e-10);
}

/// A transferable flow of up to 8 tokens, every weight perturbed, in f64.
fn transferable() -> (nn::VarStore, TarFlow) {
    seeded(5, perturbed_transferable)
}

fn perturbed_transferable() -> (nn::VarStore, TarFlow) {
    let mut vs = nn::VarStore::new(Device::Cpu);
    let cfg = TarFlowConfig {
        tokens: 8,
        conditioning: Some(Conditioning {
            atom_types: 10,
            residue_types: 5,
            max_residues: 4,
            temperature: false,
            sequence: true,
        }),
        ..tiny()
    };
    let flow = TarFlow::new(&vs.root(), cfg);
    vs.double();
    add_noise(&vs, 0.2, |_| true);
    (vs, flow)
}

/// Labels of molecules with `lengths` real tokens (of 8), drawn from `seed`; pads are 0.
fn labels(lengths: &[i64], seed: i64) -> Labels {
    seeded(seed, || drawn_labels(lengths))
}

fn drawn_labels(lengths: &[i64]) -> Labels {
    let b = lengths.len() as i64;
    let len = Tensor::from_slice(lengths);
    let real = Tensor::arange(8, (Kind::Int64, Device::Cpu))
        .unsqueeze(0)
        .lt_tensor(&len.unsqueeze(1));
    let draw = |hi: i64| Tensor::randint_low(1, hi, [b, 8], (Kind::Int64, Device::Cpu)) * &real;
    Labels {
        atom: draw(10),
        residue: draw(5),
        index: Tensor::randint(4, [b, 8], (Kind::Int64, Device::Cpu)) * &real,
        residues: Tensor::randint_low(1, 5, [b], (Kind::Int64, Device::Cpu)),
        tokens: len,
        temperature: Tensor::zeros([b], (Kind::Float, Device::Cpu)),
    }
}

fn max_abs(t: &Tensor) -> f64 {
    f64::try_from(t.abs().max()).unwrap()
}

/// Molecules of 5, 8 and 3 tokens in one padded batch invert to round-off, and their pads pass
/// through unchanged.
#[test]
fn a_transferable_flow_inverts_and_leaves_pads_alone() {
    let (_vs, flow) = transferable();
    let l = labels(&[5, 8, 3], 1);
    let x = seeded(13, || Tensor::randn([3, 24], (Kind::Double, Device::Cpu)));
    let (z, _) = tch::no_grad(|| flow.forward(&x, Some(&l)));
    assert!(max_abs(&(&z - &x)) > 0.1, "not the identity");
    // Pads: tokens 5.. of the first molecule, 3.. of the third.
    assert_eq!(
        max_abs(&(z.get(0).narrow(0, 15, 9) - x.get(0).narrow(0, 15, 9))),
        0.0
    );
    assert_eq!(
        max_abs(&(z.get(2).narrow(0, 9, 15) - x.get(2).narrow(0, 9, 15))),
        0.0
    );
    let (back, _) = tch::no_grad(|| flow.inverse(&z, Some(&l)));
    assert!(max_abs(&(&back - &x)) < 1e-10);
}

/// A flow conditioned on temperature, built over the weights of one that is not (as a
/// fine-tune adds it): at the model's temperature (feature 0) it is the same flow to the last
/// bit, before and after its temperature embedding trains; at a raised rung it is another
/// flow that still inverts to round-off.
#[test]
fn a_temperature_label_leaves_the_model_temperature_alone_and_conditions_the_rest() {
    let (plain_vs, plain) = transferable();
    let mut vs = nn::VarStore::new(Device::Cpu);
    let mut cfg = plain.config.clone();
    cfg.conditioning.as_mut().unwrap().temperature = true;
    let flow = seeded(6, || TarFlow::new(&vs.root(), cfg));
    vs.double();
    let own = plain_vs.variables();
    tch::no_grad(|| {
        for (name, mut v) in vs.variables() {
            match own.get(&name) {
                Some(w) => v.copy_(w),
                None => assert!(name.contains("temperature_"), "{name}"),
            }
        }
    });
    let mut l = labels(&[5, 8, 3], 1);
    let x = seeded(13, || Tensor::randn([3, 24], (Kind::Double, Device::Cpu)));
    let lq = |f: &TarFlow, l: &Labels| tch::no_grad(|| f.log_prob(&x, 1.0, Some(l)));
    let base = lq(&plain, &l);
    assert_eq!(max_abs(&(lq(&flow, &l) - &base)), 0.0, "new: the same flow");
    // Trained: the embedding's second map is no longer zero.
    seeded(7, || add_noise(&vs, 0.2, |n| n.contains("temperature_out")));
    assert_eq!(max_abs(&(lq(&flow, &l) - &base)), 0.0, "trained, at 0");
    l.temperature = Tensor::from_slice(&[0.0f32, 1.5, 0.7]);
    let hot = lq(&flow, &l);
    assert_eq!(f64::try_from(hot.get(0) - base.get(0)).unwrap(), 0.0);
    for r in [1, 2] {
        let d = f64::try_from(hot.get(r) - base.get(r)).unwrap().abs();
        assert!(d > 1e-3, "row {r}: the label changes nothing ({d})");
    }
    let (z, _) = tch::no_grad(|| flow.forward(&x, Some(&l)));
    let (back, _) = tch::no_grad(|| flow.inverse(&z, Some(&l)));
    assert!(max_abs(&(back - &x)) < 1e-10);
}

/// The log-determinant of each molecule equals the brute-force Jacobian's over its real
/// dimensions.
#[test]
fn transferable_log_determinant_equals_the_jacobian_of_the_real_dimensions() {
    let (_vs, flow) = transferable();
    for (len, seed) in [(5i64, 2), (8, 3), (2, 4)] {
        let l = labels(&[len], seed);
        let d = 3 * len;
        let x = seeded(14, || Tensor::randn([1, 24], (Kind::Double, Device::Cpu)))
            .set_requires_grad(true);
        let (z, logdet) = flow.forward(&x, Some(&l));
        let mut jac = vec![0.0; (d * d) as usize];
        for i in 0..d {
            let g = Tensor::run_backward(&[z.get(0).get(i)], &[&x], true, false);
            let row: Vec<f64> = Vec::try_from(g[0].view([-1]).narrow(0, 0, d)).unwrap();
            jac[(i * d) as usize..((i + 1) * d) as usize].copy_from_slice(&row);
        }
        let (_, lad) = Tensor::linalg_slogdet(&Tensor::from_slice(&jac).view([d, d]));
        let (want, got) = (
            f64::try_from(lad).unwrap(),
            f64::try_from(logdet.get(0)).unwrap(),
        );
        assert!((got - want).abs() < 1e-10, "{len} tokens: {got} vs {want}");
    }
}

/// A molecule's map depends on its own tokens and labels only: not on the others in the batch,
/// not on what its padding holds; and the labels do condition it.
#[test]
fn molecules_see_neither_each_other_nor_their_padding() {
    let (_vs, flow) = transferable();
    let l = labels(&[5, 8], 6);
    let x = seeded(15, || Tensor::randn([2, 24], (Kind::Double, Device::Cpu)));
    let (z, ld) = tch::no_grad(|| flow.forward(&x, Some(&l)));
    for i in 0..2 {
        let li = l.narrow(i, 1);
        let (zi, ldi) = tch::no_grad(|| flow.forward(&x.narrow(0, i, 1), Some(&li)));
        assert!(max_abs(&(zi - z.narrow(0, i, 1))) < 1e-12);
        assert!(max_abs(&(ldi - ld.narrow(0, i, 1))) < 1e-12);
    }
    let other = x.narrow(0, 0, 1).copy();
    let _ = other.narrow(1, 15, 9).fill_(7.0);
    let l0 = l.narrow(0, 1);
    let (z0, _) = tch::no_grad(|| flow.forward(&other, Some(&l0)));
    assert!(max_abs(&(z0.narrow(1, 0, 15) - z.narrow(0, 0, 1).narrow(1, 0, 15))) < 1e-12);
    // Another atom type at token 3 changes the map.
    let relabelled = labels(&[5, 8], 6);
    let _ = relabelled.atom.get(0).get(3).fill_(9);
    let (z1, _) = tch::no_grad(|| flow.forward(&x, Some(&relabelled)));
    assert!(max_abs(&(z1.get(0) - z.get(0))) > 1e-3);
}

/// Samples carry their exact log q, over each molecule's real dimensions.
#[test]
fn transferable_samples_carry_their_exact_log_q() {
    let (_vs, flow) = transferable();
    let l = labels(&[4, 8, 6], 7);
    let eps = seeded(16, || Tensor::randn([3, 24], (Kind::Double, Device::Cpu)));
    let (x, lq) = flow.sample(&eps, 0.8, Some(&l));
    let again = tch::no_grad(|| flow.log_prob(&x, 0.8, Some(&l)));
    assert!(max_abs(&(again - &lq)) < 1e-9);
    // The prior counts 3 x tokens dimensions per molecule: a 4-token molecule at the origin of
    // z has log q = -12/2 log(2 pi tau^2) + log|det|.
    let zero = Tensor::zeros([3, 24], (Kind::Double, Device::Cpu));
    let (x0, lq0) = flow.sample(&zero, 0.8, Some(&l));
    let (_, ld) = tch::no_grad(|| flow.forward(&x0, Some(&l)));
    let prior = -6.0 * (2.0 * std::f64::consts::PI * 0.64f64).ln();
    let got = f64::try_from(lq0.get(0) - ld.get(0)).unwrap();
    assert!((got - prior).abs() < 1e-9, "{got} vs {prior}");
}
