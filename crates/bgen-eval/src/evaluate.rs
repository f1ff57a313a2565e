//! The evaluation of a set of samples against reference MD: every metric of the seeds and the
//! arrays the plots need.

use crate::features::{basin, dihedrals, heavy_pairs, phi_psi_pairs, tica_features};
use crate::metrics::{free_energies, kish_ess, populations, weights_from_log, Estimate};
use crate::tica::Tica;
use crate::wasserstein::{euclidean_w2, torus_w2, wasserstein_1d};
use crate::Error;
use bgen_system::System;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

/// Settings of [`evaluate`].
#[derive(Clone, Copy, Debug, Serialize)]
pub struct EvalOptions {
    /// Samples and reference frames used at most (evenly strided), as the seeds' 10,000.
    pub max_samples: usize,
    /// TICA lag in reference frames.
    pub tica_lag: usize,
    /// Blocks for the error bars of basin populations.
    pub blocks: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            max_samples: 10_000,
            tica_lag: 10,
            blocks: 10,
        }
    }
}

/// The numbers of `metrics.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Metrics {
    /// Normalised Kish ESS of the samples' weights (1 without weights).
    pub ess: f64,
    /// Energy Wasserstein distances (exact, 1-D), kT.
    pub energy_w1: f64,
    pub energy_w2: f64,
    /// Torus W2 over all backbone phi/psi (exact OT), rad.
    pub torus_w2: f64,
    /// W2 in the first two TICA components fitted on the reference (exact OT).
    pub tica_w2: Option<f64>,
    /// Basin populations of the samples (weighted).
    pub basins: BTreeMap<String, f64>,
    /// Held-out NLL of the reference frames under the model, per dimension, when a model is
    /// given: in the model's normalised units and in nm.
    pub nll: Option<f64>,
    pub nll_nm: Option<f64>,
    pub details: Details,
}

/// Everything else worth keeping.
#[derive(Clone, Debug, Serialize)]
pub struct Details {
    pub n_samples: usize,
    pub n_reference: usize,
    /// Samples with non-finite coordinates or energy (left out of every metric).
    pub n_nonfinite: usize,
    /// Mirror-image samples (most chiral centres inverted) reflected before the metrics.
    pub n_mirrored: usize,
    pub energy_mean_samples_kt: f64,
    pub energy_mean_reference_kt: f64,
    pub basins_samples: BTreeMap<String, Estimate>,
    pub basins_reference: BTreeMap<String, Estimate>,
    /// Weighted samples: the basin shares of the samples counted equally (where the proposal
    /// puts them, beside `basins_samples`, where the weights put their mass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal_basins: Option<BTreeMap<String, f64>>,
    /// Free energies of the basins relative to the first basin of each residue, kT.
    pub free_energy_samples_kt: BTreeMap<String, Estimate>,
    pub free_energy_reference_kt: BTreeMap<String, Estimate>,
    pub dihedrals: Vec<String>,
    pub tica_eigenvalues: Vec<f64>,
    pub options: EvalOptions,
    pub seconds: f64,
}

/// (phi, psi) in degrees of one residue: label, samples, reference.
pub type Ramachandran = (String, Vec<[f64; 2]>, Vec<[f64; 2]>);

/// Arrays for the plots.
#[derive(Clone, Debug)]
pub struct EvalData {
    /// Energies in kT of the samples (with their normalised weights) and of the reference.
    pub energy_samples: Vec<f64>,
    pub weights: Vec<f64>,
    pub has_weights: bool,
    pub energy_reference: Vec<f64>,
    /// Per residue with phi and psi, degrees.
    pub ramachandran: Vec<Ramachandran>,
    /// First two TICA components of samples and reference.
    pub tica_samples: Vec<[f64; 2]>,
    pub tica_reference: Vec<[f64; 2]>,
    /// Other sample sets to draw in the energy plot: (label, energies kT, normalised weights).
    pub extra_energies: Vec<(String, Vec<f64>, Option<Vec<f64>>)>,
}

fn stride(n: usize, max: usize) -> Vec<usize> {
    if n <= max {
        (0..n).collect()
    } else {
        (0..max).map(|k| k * n / max).collect()
    }
}

/// Evaluates `samples` (n x atoms x 3, nm) with optional `log_weights` against `reference`
/// frames (in time order, nm) of `system`. Samples with a non-finite energy or a log-weight of
/// -inf are left out and counted (`details.n_nonfinite`); an error when none is left, when a
/// log-weight is NaN or +inf, or when there is no reference frame. The metrics, each its own
/// step: energy W1/W2, torus W2 of the backbone dihedrals, basins per residue, TICA-W2.
pub fn evaluate(
    system: &System,
    samples: &[f64],
    log_weights: Option<&[f64]>,
    reference: &[f64],
    opts: EvalOptions,
) -> crate::Result<(Metrics, EvalData)> {
    let t0 = Instant::now();
    let na = system.n_atoms();
    let s = weighted_samples(system, samples, log_weights, opts.max_samples)?;
    if reference.len() < 3 * na {
        return Err(Error::Other("no reference frames".into()));
    }
    let (xr, e_r) = reference_frames(system, reference, opts.max_samples);
    let n_reference = e_r.len();
    // Unweighted samples go in as such (uniform weights exactly, not normalised round-off).
    let wopt = log_weights.is_some().then_some(s.w.as_slice());
    let energy_w1 = wasserstein_1d(&s.e, wopt, &e_r, None, 1.0);
    let energy_w2 = wasserstein_1d(&s.e, wopt, &e_r, None, 2.0);
    let defs = system.topology.backbone_dihedrals();
    let nd = defs.len();
    let ang_s = dihedrals(&s.x, na, &defs);
    let ang_r = dihedrals(&xr, na, &defs);
    let torus = match nd {
        0 => f64::NAN,
        _ => torus_w2(&ang_s, wopt, &ang_r, None, nd),
    };
    let b = basins(system, &defs, &ang_s, &ang_r, &s.w, opts.blocks);
    let t = tica_w2(system, &s.x, &xr, wopt, &defs, opts.tica_lag);
    let mean = |v: &[f64], w: Option<&[f64]>| match w {
        Some(w) => v.iter().zip(w).map(|(a, b)| a * b).sum::<f64>(),
        None => v.iter().sum::<f64>() / v.len() as f64,
    };
    let metrics = Metrics {
        ess: s.ess,
        energy_w1,
        energy_w2,
        torus_w2: torus,
        tica_w2: t.w2,
        basins: b
            .samples
            .iter()
            .map(|(k, v)| (k.clone(), v.value))
            .collect(),
        nll: None,
        nll_nm: None,
        details: Details {
            n_samples: s.e.len(),
            n_reference,
            n_nonfinite: s.n_nonfinite,
            n_mirrored: s.n_mirrored,
            energy_mean_samples_kt: mean(&s.e, Some(&s.w)),
            energy_mean_reference_kt: mean(&e_r, None),
            basins_samples: b.samples,
            basins_reference: b.reference,
            proposal_basins: log_weights
                .is_some()
                .then(|| crate::features::basin_shares(&system.topology, &s.x, None)),
            free_energy_samples_kt: b.free_energy_samples,
            free_energy_reference_kt: b.free_energy_reference,
            dihedrals: defs.iter().map(|d| d.name.clone()).collect(),
            tica_eigenvalues: t.eigenvalues,
            options: opts,
            seconds: t0.elapsed().as_secs_f64(),
        },
    };
    let data = EvalData {
        energy_samples: s.e,
        weights: s.w,
        has_weights: log_weights.is_some(),
        energy_reference: e_r,
        ramachandran: b.ramachandran,
        tica_samples: t.samples,
        tica_reference: t.reference,
        extra_energies: Vec::new(),
    };
    Ok((metrics, data))
}

/// The samples that are scored: at most `max` (strided), mirror images reflected back, those
/// with a finite energy and a weight above zero, with their energies (kT) and normalised weights.
struct Weighted {
    x: Vec<f64>,
    e: Vec<f64>,
    w: Vec<f64>,
    ess: f64,
    n_nonfinite: usize,
    n_mirrored: usize,
}

fn weighted_samples(
    system: &System,
    samples: &[f64],
    log_weights: Option<&[f64]>,
    max: usize,
) -> crate::Result<Weighted> {
    use bgen_system::Target;
    let na = system.n_atoms();
    let d = 3 * na;
    let idx = stride(samples.len() / d, max);
    let mut energies_all = vec![0.0; idx.len()];
    let mut xs: Vec<f64> = idx
        .iter()
        .flat_map(|&i| samples[i * d..(i + 1) * d].iter().copied())
        .collect();
    // Mirror images (most chiral centres inverted) are reflected back before any metric.
    let centres = system.topology.chiral_centres();
    let n_mirrored =
        bgen_system::topology::fix_mirror_images(&mut xs, na, &centres, &system.positions);
    system.energy_and_grad(&xs, &mut energies_all, None);
    let lw_all: Vec<f64> = match log_weights {
        Some(lw) => idx.iter().map(|&i| lw[i]).collect(),
        None => vec![0.0; idx.len()],
    };
    let keep: Vec<usize> = (0..idx.len())
        .filter(|&k| energies_all[k].is_finite() && lw_all[k] > f64::NEG_INFINITY)
        .collect();
    if let Some(k) = lw_all
        .iter()
        .position(|v| v.is_nan() || *v == f64::INFINITY)
    {
        return Err(format!(
            "sample {}: log-weight {}: the weights cannot be normalised",
            idx[k], lw_all[k]
        )
        .into());
    }
    if keep.is_empty() {
        return Err(format!(
            "none of the {} samples has a finite energy and a weight above zero",
            idx.len()
        )
        .into());
    }
    let x: Vec<f64> = keep
        .iter()
        .flat_map(|&k| xs[k * d..(k + 1) * d].iter().copied())
        .collect();
    let e: Vec<f64> = keep.iter().map(|&k| energies_all[k]).collect();
    let lw: Vec<f64> = keep.iter().map(|&k| lw_all[k]).collect();
    let ess = match log_weights {
        Some(_) => kish_ess(&lw),
        None => 1.0,
    };
    Ok(Weighted {
        x,
        e,
        w: weights_from_log(&lw),
        ess,
        n_nonfinite: idx.len() - keep.len(),
        n_mirrored,
    })
}

/// At most `max` reference frames, strided in time (the order kept for the error blocks),
/// with their energies in kT.
fn reference_frames(system: &System, reference: &[f64], max: usize) -> (Vec<f64>, Vec<f64>) {
    let d = 3 * system.n_atoms();
    let beta = 1.0 / system.kt();
    let ridx = stride(reference.len() / d, max);
    let xr: Vec<f64> = ridx
        .iter()
        .flat_map(|&i| reference[i * d..(i + 1) * d].iter().copied())
        .collect();
    let e_r: Vec<f64> = system
        .energies_batch(&xr, None)
        .iter()
        .map(|e| e.total() * beta)
        .collect();
    (xr, e_r)
}

/// Basin populations (with block errors) and free energies per residue, of the samples and of
/// the reference, and the Ramachandran points for the plots.
struct Basins {
    samples: BTreeMap<String, Estimate>,
    reference: BTreeMap<String, Estimate>,
    free_energy_samples: BTreeMap<String, Estimate>,
    free_energy_reference: BTreeMap<String, Estimate>,
    ramachandran: Vec<Ramachandran>,
}

fn basins(
    system: &System,
    defs: &[bgen_system::topology::BackboneDihedral],
    ang_s: &[f64],
    ang_r: &[f64],
    w: &[f64],
    blocks: usize,
) -> Basins {
    let nd = defs.len();
    let pairs = phi_psi_pairs(&system.topology, defs);
    let names = ["beta", "alphaR", "alphaL"];
    let (mut basins_s, mut basins_r) = (BTreeMap::new(), BTreeMap::new());
    let (mut fe_s, mut fe_r) = (BTreeMap::new(), BTreeMap::new());
    let mut rama = Vec::new();
    let deg = |a: &[f64], p: usize, q: usize| -> Vec<[f64; 2]> {
        a.chunks(nd)
            .map(|r| [r[p].to_degrees(), r[q].to_degrees()])
            .collect()
    };
    for (label, p, q) in &pairs {
        let (rs, rr) = (deg(ang_s, *p, *q), deg(ang_r, *p, *q));
        let ls: Vec<&str> = rs.iter().map(|v| basin(v[0], v[1])).collect();
        let lr: Vec<&str> = rr.iter().map(|v| basin(v[0], v[1])).collect();
        let ps = populations(&ls, w, &names, blocks);
        let pr = populations(&lr, &vec![1.0; lr.len()], &names, blocks);
        let prefix = if pairs.len() > 1 {
            format!("{label} ")
        } else {
            String::new()
        };
        for (map, fe, pops) in [
            (&mut basins_s, &mut fe_s, &ps),
            (&mut basins_r, &mut fe_r, &pr),
        ] {
            for (k, v) in pops {
                map.insert(format!("{prefix}{k}"), *v);
            }
            if pops["beta"].value > 0.0 {
                for (k, v) in free_energies(pops, "beta") {
                    fe.insert(format!("{prefix}{k}"), v);
                }
            }
        }
        rama.push((label.clone(), rs, rr));
    }
    Basins {
        samples: basins_s,
        reference: basins_r,
        free_energy_samples: fe_s,
        free_energy_reference: fe_r,
        ramachandran: rama,
    }
}

/// TICA fitted on the reference trajectory (all frames, in order; heavy-atom distances and the
/// backbone dihedrals' sin/cos), its first two components: W2 between samples and reference
/// there (none when the reference is too short or never moves), the eigenvalues and the points.
struct TicaW2 {
    w2: Option<f64>,
    eigenvalues: Vec<f64>,
    samples: Vec<[f64; 2]>,
    reference: Vec<[f64; 2]>,
}

fn tica_w2(
    system: &System,
    x: &[f64],
    xr: &[f64],
    wopt: Option<&[f64]>,
    defs: &[bgen_system::topology::BackboneDihedral],
    lag: usize,
) -> TicaW2 {
    let na = system.n_atoms();
    let hp = heavy_pairs(&system.topology);
    let (fr, dim) = tica_features(xr, na, &hp, defs);
    let lag = lag.max(1);
    let frames = xr.len() / (3 * na);
    let tica = (frames > lag + 2 * dim.min(50))
        .then(|| Tica::fit(&fr, dim, lag, 2))
        .filter(|t| t.components.ncols() > 0);
    let Some(tica) = tica else {
        return TicaW2 {
            w2: None,
            eigenvalues: vec![],
            samples: vec![],
            reference: vec![],
        };
    };
    let (fs, _) = tica_features(x, na, &hp, defs);
    let (ps, pr) = (tica.transform(&fs), tica.transform(&fr));
    let k = tica.components.ncols();
    let w2 = euclidean_w2(&ps, wopt, &pr, None, k);
    let two = |v: &[f64]| -> Vec<[f64; 2]> {
        v.chunks(k)
            .map(|c| [c[0], *c.get(1).unwrap_or(&0.0)])
            .collect()
    };
    TicaW2 {
        w2: Some(w2),
        eigenvalues: tica.eigenvalues.clone(),
        samples: two(&ps),
        reference: two(&pr),
    }
}
