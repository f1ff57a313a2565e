//! Training by energy (`bgen_models::kl`): a molecule's energy in the model's features and its
//! gradient against finite differences, and the reverse-KL loss's gradient with respect to
//! the flow's weights against finite differences of the KL estimate it stands for.

use bgen_models::kl::{loss, soften, KlMolecule};
use bgen_models::tarflow::{Conditioning, TarFlow, TarFlowConfig};
use bgen_models::transfer::{padded_labels, toy_molecule};
use tch::{nn, Tensor};

/// Gly-Ala, a few jiggled copies of its built structure as frames, and its molecule for
/// training by energy in a flow of `tokens` tokens.
fn molecule(tokens: i64) -> KlMolecule {
    let (sys, z, frames, internal) = toy_molecule("GA", 20).unwrap();
    let labels = padded_labels(&sys, &z, tokens);
    KlMolecule::new("GA", sys, z, internal, labels, &frames)
}

/// A tiny transferable TarFlow of `tokens` tokens, its weights away from the identity.
fn flow(vs: &nn::VarStore, tokens: i64) -> TarFlow {
    let cfg = TarFlowConfig {
        tokens,
        token_dim: 3,
        width: 16,
        blocks: 2,
        layers: 1,
        head_dim: 8,
        mlp_ratio: 2,
        conditioning: Some(Conditioning::of(bgen_system::Setup::Amber14Obc1, 4)),
    };
    tch::manual_seed(3);
    let f = TarFlow::new(&vs.root(), cfg);
    tch::no_grad(|| {
        for (_, mut v) in bgen_models::train::variables_by_name(vs) {
            let _ = v.f_add_(&(v.randn_like() * 0.02)).unwrap();
        }
    });
    f
}

/// E(y) of the model's features and dE/dy agree with central differences; the frames'
/// mean energy is finite.
#[test]
fn energy_in_model_features_has_its_gradient() {
    let m = molecule(20);
    // The typical energy is the mean E of the frames' features.
    let (_, _, frames, _) = toy_molecule("GA", 20).unwrap();
    let ic = m.internal.from_cartesian(&frames);
    let mut features = vec![0.0; ic.len()];
    m.internal.to_model(&ic, &mut features, None);
    let (e, _) = m.energy_and_grad(&features);
    let mean = e.iter().sum::<f64>() / e.len() as f64;
    assert!(
        (m.typical - mean).abs() < 1e-6 * mean.abs().max(1.0),
        "{} {mean}",
        m.typical
    );
    let d = m.dim();
    let ic = m.internal.from_cartesian(&m.system.positions);
    let mut y = vec![0.0; d];
    m.internal.to_model(&ic, &mut y, None);
    let (e, g) = m.energy_and_grad(&y);
    assert!(e[0].is_finite());
    let h = 1e-5;
    let mut worst: f64 = 0.0;
    for q in (0..d).step_by(3).chain([1, 2, d - 1]) {
        let (mut p, mut n) = (y.clone(), y.clone());
        p[q] += h;
        n[q] -= h;
        let fd = (m.energy_and_grad(&p).0[0] - m.energy_and_grad(&n).0[0]) / (2.0 * h);
        worst = worst.max((fd - g[q]).abs() / (1.0 + g[q].abs()));
    }
    assert!(worst < 1e-4, "worst relative error {worst}");
}

/// The softened energy is the energy up to the molecule's typical one plus SOFT_KT, then grows
/// by the log, continuously and with the slope it reports.
#[test]
fn softening_is_continuous_with_its_slope() {
    let top = 5.0 + bgen_models::kl::SOFT_KT;
    assert_eq!(soften(top - 1.0, 5.0), (top - 1.0, 1.0));
    let (a, _) = soften(top, 5.0);
    let (b, slope) = soften(top + 1e3, 5.0);
    assert!((a - top).abs() < 1e-12 && (b - top - (1.0 + 1e3f64).ln()).abs() < 1e-9);
    let h = 1e-4;
    let fd = (soften(top + 10.0 + h, 5.0).0 - soften(top + 10.0 - h, 5.0).0) / (2.0 * h);
    assert!((fd - soften(top + 10.0, 5.0).1).abs() < 1e-6 && slope > 0.0);
}

/// The loss's gradient with respect to a weight is that of the KL estimate it stands for, the
/// mean of softened E + log q over the same draws (noise fixed), by central differences.
#[test]
fn the_loss_has_the_gradient_of_the_kl_estimate() {
    let tokens = 20;
    let m = molecule(tokens);
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let f = flow(&vs, tokens);
    let (draws, seed) = (16, 5);
    let (l, report) = loss(&f, &m, draws, seed);
    assert!(report.kept > 0.9 && report.kl.is_finite(), "{report:?}");
    let vars = vs.variables();
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    // A weight of the last block's output (the affine parameters of the first decoded tokens)
    // and one of the first block's input projection.
    let picks: Vec<(&String, i64)> = names
        .iter()
        .filter(|n| n.ends_with("proj_out.weight") || n.ends_with("proj_in.weight"))
        .map(|n| (*n, 1))
        .collect();
    assert!(picks.len() >= 2);
    let params: Vec<&Tensor> = picks.iter().map(|(n, _)| &vars[*n]).collect();
    let grads = Tensor::run_backward(&[&l], &params, false, false);
    let d = m.dim() as f64;
    for ((name, i), g) in picks.iter().zip(grads) {
        let v = &vars[*name];
        let g = g.view([-1]).double_value(&[*i]);
        let at = |delta: f64| {
            tch::no_grad(|| {
                let flat = v.view([-1]);
                let old = flat.double_value(&[*i]);
                let _ = flat.get(*i).fill_(old + delta);
                let (_, r) = loss(&f, &m, draws, seed);
                let _ = flat.get(*i).fill_(old);
                assert_eq!(r.kept, report.kept, "the same draws kept");
                r.kl / d
            })
        };
        let h = 1e-2;
        let fd = (at(h) - at(-h)) / (2.0 * h);
        let scale = g.abs().max(fd.abs()).max(1e-6);
        assert!(
            (fd - g).abs() / scale < 0.01,
            "{name}[{i}]: autograd {g}, finite differences {fd}"
        );
    }
}
