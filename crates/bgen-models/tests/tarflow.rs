//! TarFlow invariants: it inverts to round-off, its log-determinant equals the brute-force
//! Jacobian's, and the gradient of log q matches finite differences.

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
    }
}

/// A flow with every weight perturbed by `scale` x N(0, 1) (a fresh flow is the identity, which
/// proves nothing).
fn randomised_with(kind: Kind, scale: f64) -> (nn::VarStore, TarFlow) {
    // libtorch's generator is global: build under a lock so that each test gets the same flow.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(0);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let flow = TarFlow::new(&vs.root(), tiny());
    if kind == Kind::Double {
        vs.double();
    }
    tch::no_grad(|| {
        for (_, mut v) in vs.variables() {
            let noise = v.randn_like() * scale;
            let _ = v.f_add_(&noise).unwrap();
        }
    });
    (vs, flow)
}

fn randomised(kind: Kind) -> (nn::VarStore, TarFlow) {
    randomised_with(kind, 0.2)
}

#[test]
fn inverts_to_round_off() {
    // Perturbations of 0.05 give per-token scales exp(a) of a few (as in a trained flow); f32
    // round-off then stays below 1e-5. In f64 the larger perturbation is used as well.
    for (kind, scale, tol) in [
        (Kind::Float, 0.05, 1e-5),
        (Kind::Double, 0.05, 1e-12),
        (Kind::Double, 0.2, 1e-10),
    ] {
        let (_vs, flow) = randomised_with(kind, scale);
        let x = Tensor::randn([64, 15], (kind, Device::Cpu));
        let (z, _) = tch::no_grad(|| flow.forward(&x));
        let moved = f64::try_from((&z - &x).abs().max()).unwrap();
        assert!(moved > 0.1, "the flow must not be the identity ({moved})");
        let back = tch::no_grad(|| flow.inverse(&z));
        let err = f64::try_from((&back - &x).abs().max()).unwrap();
        assert!(err < tol, "{kind:?}: round trip error {err}");
        // and the other way: sample z, invert, map forward
        let z2 = Tensor::randn([64, 15], (kind, Device::Cpu));
        let err = f64::try_from(
            (tch::no_grad(|| flow.forward(&flow.inverse(&z2)).0) - &z2)
                .abs()
                .max(),
        )
        .unwrap();
        assert!(err < tol, "{kind:?}: z round trip error {err}");
    }
}

/// One token per coordinate (15 tokens of dimension 1) inverts as well.
#[test]
fn per_coordinate_tokens_invert() {
    tch::manual_seed(3);
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = TarFlowConfig {
        tokens: 15,
        token_dim: 1,
        ..tiny()
    };
    let flow = TarFlow::new(&vs.root(), cfg);
    tch::no_grad(|| {
        for (_, mut v) in vs.variables() {
            let noise = v.randn_like() * 0.05;
            let _ = v.f_add_(&noise).unwrap();
        }
    });
    let x = Tensor::randn([16, 15], (Kind::Float, Device::Cpu));
    let back = tch::no_grad(|| flow.inverse(&flow.forward(&x).0));
    assert!(f64::try_from((back - &x).abs().max()).unwrap() < 1e-5);
}

#[test]
fn log_determinant_equals_brute_force_jacobian() {
    let (_vs, flow) = randomised(Kind::Double);
    let d = 15;
    for s in 0..3 {
        let x = Tensor::randn([1, d], (Kind::Double, Device::Cpu)).set_requires_grad(true);
        let (z, logdet) = flow.forward(&x);
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
    let x = Tensor::randn([3, 15], (Kind::Double, Device::Cpu)).set_requires_grad(true);
    let lq = flow.log_prob(&x);
    let g = Tensor::run_backward(&[lq.sum(Kind::Double)], &[&x], false, false).remove(0);
    let x0 = x.detach();
    for k in [0i64, 4, 7, 14] {
        let e = Tensor::zeros([3, 15], (Kind::Double, Device::Cpu));
        let _ = e.narrow(1, k, 1).fill_(1e-5);
        let (lp, lm) = tch::no_grad(|| (flow.log_prob(&(&x0 + &e)), flow.log_prob(&(&x0 - &e))));
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
    let (x, lq) = flow.sample(32, Kind::Double, Device::Cpu);
    let again = tch::no_grad(|| flow.log_prob(&x));
    assert!(f64::try_from((lq - again).abs().max()).unwrap() < 1e-10);
}
