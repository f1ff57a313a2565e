//! ArBG: the density of a tiny model sums to one over every bin (so nothing leaks from the
//! future through the causal mask), sampled log q equals recomputed log q, KV-cached block-wise
//! generation equals generation in one go (also after reordering particles), sampled bins follow
//! the model's probabilities, and training lowers held-out NLL.

use bgen_models::arbg::{Arbg, ArbgConfig};
use bgen_models::data::{uniforms, Normalizer};
use bgen_models::train::{OptimConfig, Trainer};
use tch::{nn, Device, Kind, Tensor};

/// Weight initialisation draws from libtorch's global generator: tests take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn model(atoms: i64, bins: i64, seed: i64) -> (nn::VarStore, Arbg) {
    built(atoms, bins, None, seed)
}

/// An ArBG of `atoms` atoms (with `conditioning`, transferable: up to `atoms`) with every
/// weight random, drawn from `seed`.
fn built(
    atoms: i64,
    bins: i64,
    conditioning: Option<bgen_models::tarflow::Conditioning>,
    seed: i64,
) -> (nn::VarStore, Arbg) {
    tch::manual_seed(seed);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let m = Arbg::new(
        &vs.root(),
        ArbgConfig {
            atoms,
            width: 32,
            layers: 2,
            head_dim: 16,
            bins,
            range: 1.5,
            conditioning,
        },
    );
    vs.double();
    // Random (not zero or unit) values everywhere, so that every path carries signal.
    tch::no_grad(|| {
        // In name order, so that the draws (and the test) are reproducible.
        for (_, mut v) in bgen_models::train::variables_by_name(&vs) {
            let r = Tensor::randn_like(&v) * 0.5;
            v.copy_(&r);
        }
    });
    (vs, m)
}

fn uniform(n: i64, d: i64, seed: u64) -> Tensor {
    Tensor::from_slice(&uniforms((n * d) as usize, seed)).view([n, d])
}

#[test]
fn density_sums_to_one_over_all_bins() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_vs, m) = model(1, 5, 1);
    let c = m.config.clone();
    // All 5^3 bin triples, at random points inside their cells.
    let mut xs = Vec::new();
    let u = uniforms(3 * 125, 9);
    for k in 0..125usize {
        let b = [k / 25, (k / 5) % 5, k % 5];
        for a in 0..3 {
            xs.push((b[a] as f64 + u[3 * k + a]) * c.bin_width() - c.range);
        }
    }
    let x = Tensor::from_slice(&xs).view([125, 3]);
    let lq = tch::no_grad(|| m.log_prob(&x, 1.0, None));
    // The density is constant on a cell of volume w^3.
    let cell = 3.0 * c.bin_width().ln();
    let total: f64 = f64::try_from((lq + cell).exp().sum(Kind::Double)).unwrap();
    assert!((total - 1.0).abs() < 1e-12, "sum over cells {total}");
    // At a lower temperature too.
    let lq = tch::no_grad(|| m.log_prob(&x, 0.7, None));
    let total: f64 = f64::try_from((lq + cell).exp().sum(Kind::Double)).unwrap();
    assert!(
        (total - 1.0).abs() < 1e-12,
        "tau 0.7: sum over cells {total}"
    );
    // Outside the range the density is zero.
    let out = Tensor::from_slice(&[0.1, 1.6, 0.0]).view([1, 3]);
    let l: f64 = f64::try_from(tch::no_grad(|| m.log_prob(&out, 1.0, None)).get(0)).unwrap();
    assert_eq!(l, f64::NEG_INFINITY);
}

#[test]
fn sampled_log_q_equals_recomputed_and_blocks_equal_one_pass() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_vs, m) = model(4, 64, 2);
    let (n, d) = (50, 12);
    let (ub, uo) = (uniform(n, d, 1), uniform(n, d, 2));
    for tau in [1.0, 0.8] {
        let (x, lq) = m.sample_from(&ub, &uo, tau, None);
        let re = tch::no_grad(|| m.log_prob(&x, tau, None));
        let err = f64::try_from((&lq - &re).abs().max()).unwrap();
        assert!(
            err < 1e-9,
            "tau {tau}: sampled vs recomputed log q differ by {err}"
        );
        assert!(f64::try_from(x.abs().max()).unwrap() <= m.config.range);
    }
    // Generating in blocks 5 + 4 + 3 with a KV cache gives the same samples and the same total.
    let (x, lq) = m.sample_from(&ub, &uo, 1.0, None);
    let mut g = m.start(None);
    let mut parts = Vec::new();
    let mut total = Tensor::zeros([n], (Kind::Double, Device::Cpu));
    for (from, len) in [(0, 5), (5, 4), (9, 3)] {
        let (xb, lb) = m.extend(
            &mut g,
            &ub.narrow(1, from, len),
            &uo.narrow(1, from, len),
            1.0,
        );
        parts.push(xb);
        total += lb;
    }
    let xb = Tensor::cat(&parts, 1);
    assert!(f64::try_from((&xb - &x).abs().max()).unwrap() < 1e-12);
    assert!(f64::try_from((&total - &lq).abs().max()).unwrap() < 1e-9);
    // Reordering particles half way (resampling) and continuing equals the reordered one-pass
    // samples whose second half uses the reordered random numbers.
    let perm = Tensor::from_slice(&(0..n).map(|k| (k * 7 + 3) % n).collect::<Vec<i64>>());
    let mut g = m.start(None);
    let (x1, _) = m.extend(&mut g, &ub.narrow(1, 0, 6), &uo.narrow(1, 0, 6), 1.0);
    g = g.rows(&perm);
    let (x2, _) = m.extend(&mut g, &ub.narrow(1, 6, 6), &uo.narrow(1, 6, 6), 1.0);
    let mixed = Tensor::cat(&[x1.index_select(0, &perm), x2], 1);
    let ub2 = Tensor::cat(
        &[
            ub.index_select(0, &perm).narrow(1, 0, 6),
            ub.narrow(1, 6, 6),
        ],
        1,
    );
    let uo2 = Tensor::cat(
        &[
            uo.index_select(0, &perm).narrow(1, 0, 6),
            uo.narrow(1, 6, 6),
        ],
        1,
    );
    let (want, _) = m.sample_from(&ub2, &uo2, 1.0, None);
    assert!(f64::try_from((&mixed - &want).abs().max()).unwrap() < 1e-12);
}

#[test]
fn sampled_bins_follow_the_model() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_vs, m) = model(1, 3, 3);
    let c = m.config.clone();
    let n = 40_000;
    let (x, _) = m.sample_from(&uniform(n, 3, 11), &uniform(n, 3, 12), 1.0, None);
    let bins = m.bins_of(&x);
    let code = bins.select(1, 0) * 9 + bins.select(1, 1) * 3 + bins.select(1, 2);
    let counts: Vec<i64> = Vec::try_from(code.bincount::<Tensor>(None, 27)).unwrap();
    // Model probabilities of the 27 cells (at their centres).
    let centres: Vec<f64> = (0..27)
        .flat_map(|k| [k / 9, (k / 3) % 3, k % 3])
        .map(|b| (b as f64 + 0.5) * c.bin_width() - c.range)
        .collect();
    let lq = tch::no_grad(|| m.log_prob(&Tensor::from_slice(&centres).view([27, 3]), 1.0, None));
    let p: Vec<f64> = Vec::try_from((lq + 3.0 * c.bin_width().ln()).exp()).unwrap();
    let mut chi2 = 0.0;
    for k in 0..27 {
        let e = p[k] * n as f64;
        chi2 += (counts[k] as f64 - e).powi(2) / e;
    }
    // 26 degrees of freedom: the 99.9% quantile is 54.
    assert!(chi2 < 54.0, "chi^2 {chi2}, counts {counts:?}");
}

#[test]
fn training_lowers_held_out_nll() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tch::set_num_threads(1);
    // A 4-atom chain with Gaussian noise (nm).
    let make = |n: usize, seed: u64| -> Vec<f64> {
        let z = bgen_models::data::normals(n * 12, seed);
        (0..n * 12)
            .map(|q| 0.12 * ((q % 12) / 3) as f64 * ((q % 3 == 0) as i32 as f64) + 0.01 * z[q])
            .collect()
    };
    let (train, val) = (make(2000, 1), make(400, 2));
    let norm = Normalizer::fit(&train, 4);
    let cfg = ArbgConfig {
        atoms: 4,
        width: 32,
        layers: 1,
        head_dim: 16,
        bins: 64,
        range: 3.0,
        conditioning: None,
    };
    let tc = OptimConfig {
        steps: 200,
        batch_size: 64,
        lr: 3e-3,
        ema: 0.9,
        ..Default::default()
    };
    let mut t = Trainer::new(cfg, tc, norm.clone(), Device::Cpu);
    let (train_t, val_t) = (
        norm.to_model(&train, Kind::Float),
        norm.to_model(&val, Kind::Float),
    );
    let before = t.nll(&val_t, false);
    for s in 0..200i64 {
        let idx: Vec<i64> = (0..64).map(|k| (s * 7919 + k * 104_729) % 2000).collect();
        t.step(&train_t.index_select(0, &Tensor::from_slice(&idx)));
    }
    let after = t.nll(&val_t, true);
    eprintln!("held-out NLL per dim: {before:.3} -> {after:.3}");
    assert!(
        after.is_finite() && after < before - 0.5,
        "{before} -> {after}"
    );
}

/// A transferable ArBG of up to `atoms` atoms, every weight random.
fn transferable(atoms: i64, bins: i64, seed: i64) -> (nn::VarStore, Arbg) {
    let conditioning = bgen_models::tarflow::Conditioning {
        atom_types: 10,
        residue_types: 5,
        max_residues: 4,
        temperature: false,
        sequence: true,
    };
    built(atoms, bins, Some(conditioning), seed)
}

/// Labels of molecules of `lengths` atoms (of `atoms`), drawn from `seed`; pads are 0.
fn labels(lengths: &[i64], atoms: i64, seed: i64) -> bgen_models::tarflow::Labels {
    tch::manual_seed(seed);
    let b = lengths.len() as i64;
    let len = Tensor::from_slice(lengths);
    let real = Tensor::arange(atoms, (Kind::Int64, Device::Cpu))
        .unsqueeze(0)
        .lt_tensor(&len.unsqueeze(1));
    let draw = |hi: i64| Tensor::randint_low(1, hi, [b, atoms], (Kind::Int64, Device::Cpu)) * &real;
    bgen_models::tarflow::Labels {
        atom: draw(10),
        residue: draw(5),
        index: Tensor::randint(4, [b, atoms], (Kind::Int64, Device::Cpu)) * &real,
        residues: Tensor::randint_low(1, 5, [b], (Kind::Int64, Device::Cpu)),
        tokens: len,
        temperature: Tensor::zeros([b], (Kind::Float, Device::Cpu)),
    }
}

/// A transferable ArBG's density sums to one over every bin of each molecule's real
/// coordinates, whatever its pads hold: 4^6 cells of a molecule of 2 atoms, 4^3 of one of 1 atom
/// padded to 2.
#[test]
fn a_transferable_density_sums_to_one_over_each_molecules_real_bins() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_vs, m) = transferable(2, 4, 3);
    let w = m.config.bin_width();
    for (atoms, seed) in [(2i64, 4), (1, 5)] {
        let real = (3 * atoms) as usize;
        let cells = 4usize.pow(real as u32);
        let u = uniforms(6 * cells, 10 + seed as u64);
        let mut xs = Vec::with_capacity(6 * cells);
        for k in 0..cells {
            for a in 0..6 {
                let bin = (k / 4usize.pow(a as u32)) % 4;
                // Pads far outside the range: they must count for nothing.
                xs.push(match a < real {
                    true => (bin as f64 + u[6 * k + a]) * w - m.config.range,
                    false => 7.0 + u[6 * k + a],
                });
            }
        }
        let x = Tensor::from_slice(&xs).view([cells as i64, 6]);
        let l = labels(&[atoms], 2, seed).repeat(cells as i64);
        let lq = tch::no_grad(|| m.log_prob(&x, 1.0, Some(&l)));
        let total = f64::try_from((lq.exp() * w.powi(real as i32)).sum(Kind::Double)).unwrap();
        assert!((total - 1.0).abs() < 1e-9, "{atoms} atoms: {total}");
    }
}

/// Sampled log q equals recomputed log q for molecules of 5, 8 and 3 atoms in one padded batch;
/// each row's log q does not depend on the others in the batch; and the labels condition it.
#[test]
fn a_transferable_arbg_scores_what_it_samples_molecule_by_molecule() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_vs, m) = transferable(8, 16, 6);
    let l = labels(&[5, 8, 3], 8, 7);
    let (x, lq) = m.sample_from(&uniform(3, 24, 21), &uniform(3, 24, 22), 0.8, Some(&l));
    let again = tch::no_grad(|| m.log_prob(&x, 0.8, Some(&l)));
    let diff = f64::try_from((&again - &lq).abs().max()).unwrap();
    assert!(diff < 1e-9, "sampled vs recomputed log q: {diff}");
    for r in 0..3 {
        let idx = Tensor::from_slice(&[r]);
        let alone =
            tch::no_grad(|| m.log_prob(&x.index_select(0, &idx), 0.8, Some(&l.select(&idx))));
        let d = f64::try_from(alone.get(0) - again.get(r)).unwrap().abs();
        assert!(d < 1e-9, "row {r}: {d}");
    }
    // Every real token's residue moved to the next template (1..4 -> 2..4, 1).
    let mut other = labels(&[5, 8, 3], 8, 7);
    let real = other.residue.gt(0).to_kind(Kind::Int64);
    other.residue = (other.residue.remainder(4) + 1) * real;
    let changed = tch::no_grad(|| m.log_prob(&x, 0.8, Some(&other)));
    let d = f64::try_from((changed - &again).abs().min()).unwrap();
    assert!(d > 1e-6, "the labels change nothing: {d}");
}
