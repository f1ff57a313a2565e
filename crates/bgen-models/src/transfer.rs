//! Molecules as a transferable model sees them: each molecule's own Z-matrix (from its
//! topology), its internal coordinates standardised by statistics that belong to atom types
//! rather than to one molecule, and the labels of its tokens (see [`crate::tarflow::Labels`]).
//!
//! A coordinate's class is the force-field types of the atoms that define it (a bond's two, an
//! angle's three, a torsion's four, read in the direction that sorts first). [`Standards`]
//! pools every training molecule's values per class (mean and std; for a torsion also the cut
//! of its circle, where the pooled values are sparsest), so that a molecule never seen is
//! standardised by the classes it shares with the training set; a class never seen falls back
//! to the force field itself: a bond or angle at its equilibrium value with the thermal spread
//! sqrt(kT / k) of its spring, a torsion cut at 0 (eclipsed) with the spread of a uniform angle.

use crate::internal::{column_stats, Internal};
use bgen_system::zmatrix::{IcKind, ZMatrix};
use bgen_system::System;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Statistics of one class of internal coordinates: (cut, mean, std, spread) as in
/// [`Internal`], and how many values they pooled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassStats {
    pub cut: f64,
    pub mean: f64,
    pub std: f64,
    pub spread: f64,
    pub count: usize,
}

/// Per-class statistics pooled over training molecules.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Standards {
    pub classes: BTreeMap<String, ClassStats>,
}

/// The class of each coordinate of `z` in the molecule `sys`, in the Z-matrix's order. The angle
/// and torsion that close a ring from both neighbours ([`bgen_system::RingClosure::Both`]; their
/// k is not bonded to j) are classes of their own ("ra", "rt"): an angle over a ring's chord is
/// no bond angle of the same types.
pub fn classes(sys: &System, z: &ZMatrix) -> Vec<String> {
    let ty = |a: usize| sys.params.atom_type[a].as_str();
    let nb = sys.topology.bonded_to();
    let canon = |mut v: Vec<&str>| {
        let mut r = v.clone();
        r.reverse();
        if r < v {
            v = r;
        }
        v.join(" ")
    };
    z.kinds()
        .into_iter()
        .zip(coordinate_atoms(z))
        .map(|(k, atoms)| {
            let names: Vec<&str> = atoms.iter().map(|&a| ty(a)).collect();
            let chord = atoms.len() > 2 && !nb[atoms[1]].contains(&atoms[2]);
            let tag = match (k, chord) {
                (IcKind::Bond, _) => "b",
                (IcKind::Angle, false) => "a",
                (IcKind::Torsion, false) => "t",
                (IcKind::Angle, true) => "ra",
                (IcKind::Torsion, true) => "rt",
            };
            format!("{tag}: {}", canon(names))
        })
        .collect()
}

/// The atoms that define each coordinate of `z`: a bond (atom, j), an angle (atom, j, k), a
/// torsion (atom, j, k, l), in the Z-matrix's coordinate order.
fn coordinate_atoms(z: &ZMatrix) -> Vec<Vec<usize>> {
    let r = &z.rows;
    let mut out = vec![vec![r[1].atom, r[1].j], vec![r[2].atom, r[2].j]];
    out.push(vec![r[2].atom, r[2].j, r[2].k]);
    for row in &r[3..] {
        out.push(vec![row.atom, row.j]);
        out.push(vec![row.atom, row.j, row.k]);
        out.push(vec![row.atom, row.j, row.k, row.l]);
    }
    out
}

impl Standards {
    /// Pools the internal coordinates of `molecules` (system, its Z-matrix, frames n x N x 3
    /// nm) by class.
    pub fn fit(molecules: &[(&System, &ZMatrix, &[f64])]) -> Standards {
        let mut pooled: BTreeMap<String, (u8, Vec<f64>)> = BTreeMap::new();
        for (sys, z, frames) in molecules {
            let (d, dx) = (z.dim(), 3 * z.n_atoms());
            let mut ic = vec![0.0; d];
            let cls = classes(sys, z);
            let kinds = kind_codes(z);
            for f in frames.chunks(dx) {
                z.to_internal(f, &mut ic);
                for q in 0..d {
                    let e = pooled
                        .entry(cls[q].clone())
                        .or_insert((kinds[q], Vec::new()));
                    e.1.push(ic[q]);
                }
            }
        }
        let classes = pooled
            .into_iter()
            .map(|(k, (kind, v))| {
                let (cut, mean, std, spread) = column_stats(kind, &v);
                let s = ClassStats {
                    cut,
                    mean,
                    std,
                    spread,
                    count: v.len(),
                };
                (k, s)
            })
            .collect();
        Standards { classes }
    }

    /// The standardisation of molecule `sys` with Z-matrix `z`: each coordinate by its class,
    /// else by the force field; and how many coordinates fell back.
    pub fn internal(&self, sys: &System, z: &ZMatrix) -> (Internal, usize) {
        let cls = classes(sys, z);
        let kinds = kind_codes(z);
        let atoms = coordinate_atoms(z);
        let kt = sys.kt();
        let d = z.dim();
        let (mut cut, mut mean, mut std, mut spread) =
            (vec![0.0; d], vec![0.0; d], vec![1.0; d], vec![1.0; d]);
        let mut fallback = 0;
        for q in 0..d {
            let s = match self.classes.get(&cls[q]) {
                Some(s) => (s.cut, s.mean, s.std, s.spread),
                None => {
                    fallback += 1;
                    force_field_stats(sys, kinds[q], &atoms[q], kt)
                }
            };
            (cut[q], mean[q], std[q], spread[q]) = s;
        }
        let internal = Internal {
            rows: z.rows.iter().map(|r| [r.atom, r.j, r.k, r.l]).collect(),
            kinds,
            cut,
            mean,
            std,
            spread,
        };
        (internal, fallback)
    }
}

fn kind_codes(z: &ZMatrix) -> Vec<u8> {
    z.kinds()
        .into_iter()
        .map(|k| match k {
            IcKind::Bond => 0,
            IcKind::Angle => 1,
            IcKind::Torsion => 2,
        })
        .collect()
}

/// (cut, mean, std, spread) of a coordinate from the force field: a bond or angle at its
/// equilibrium with std sqrt(kT / k) (an angle without a spring at its value in the molecule's
/// structure); a torsion cut at 0 with atanh of a uniform angle's
/// moments (mean 0, std pi / sqrt(12)), spread pi / sqrt(3).
fn force_field_stats(sys: &System, kind: u8, atoms: &[usize], kt: f64) -> (f64, f64, f64, f64) {
    let p = &sys.params;
    let spring = match kind {
        0 => p
            .bonds
            .iter()
            .find(|b| (b.i, b.j) == (atoms[0], atoms[1]) || (b.j, b.i) == (atoms[0], atoms[1]))
            .map(|b| (b.length, b.k)),
        1 => p
            .angles
            .iter()
            .find(|a| {
                a.atoms[1] == atoms[1]
                    && ((a.atoms[0], a.atoms[2]) == (atoms[0], atoms[2])
                        || (a.atoms[2], a.atoms[0]) == (atoms[0], atoms[2]))
            })
            .map(|a| (a.angle, a.k)),
        _ => None,
    };
    match (kind, spring) {
        (0 | 1, Some((x0, k))) => {
            let s = (kt / k).sqrt();
            (0.0, x0, s, s)
        }
        // No spring (a ring's chord angle): the value in the molecule's own structure.
        (0, None) => (0.0, 0.15, 0.005, 0.005),
        (1, None) => {
            let a = [atoms[0], atoms[1], atoms[2]];
            let x0 = bgen_system::energy::bonded::angle(&sys.positions, a);
            (0.0, x0, 0.1, 0.1)
        }
        _ => {
            let pi = std::f64::consts::PI;
            (0.0, 0.0, pi / 12f64.sqrt(), pi / 3f64.sqrt())
        }
    }
}

/// The labels of a molecule's tokens (N - 2 of them: the first three atoms' coordinates
/// together, then one per atom in Z-matrix order), each the atom it places: (force-field type
/// index + 1, residue template index + 1, residue index), and the molecule's residues. Indices
/// are into the molecule's force field ([`bgen_system::Setup::data`]), so that they mean the same
/// for every molecule of that force field.
pub fn labels(sys: &System, z: &ZMatrix) -> (Vec<i64>, Vec<i64>, Vec<i64>, i64) {
    let ff = sys.params.setup.data();
    let type_id = |a: usize| {
        ff.type_by_name
            .get(&sys.params.atom_type[a])
            .map_or(0, |&t| t as i64 + 1)
    };
    let template_id = |r: usize| {
        ff.templates
            .iter()
            .position(|t| t.name == sys.params.residue_template[r])
            .map_or(0, |t| t as i64 + 1)
    };
    let placed: Vec<usize> = std::iter::once(z.rows[2].atom)
        .chain(z.rows[3..].iter().map(|r| r.atom))
        .collect();
    let res = |a: usize| sys.topology.atoms[a].residue;
    (
        placed.iter().map(|&a| type_id(a)).collect(),
        placed.iter().map(|&a| template_id(res(a))).collect(),
        placed.iter().map(|&a| res(a) as i64).collect(),
        sys.topology.residues.len() as i64,
    )
}

/// The labels of a molecule's tokens ([`labels`]) as one row of a flow of `tokens` tokens, the
/// rest padding, at the model's own temperature.
pub fn padded_labels(sys: &System, z: &ZMatrix, tokens: i64) -> crate::tarflow::Labels {
    let (atom, residue, index, residues) = labels(sys, z);
    let n_tok = atom.len() as i64;
    let pad = |mut v: Vec<i64>| {
        v.resize(tokens as usize, 0);
        tch::Tensor::from_slice(&v).unsqueeze(0)
    };
    crate::tarflow::Labels {
        atom: pad(atom),
        residue: pad(residue),
        index: pad(index),
        residues: tch::Tensor::from_slice(&[residues]),
        tokens: tch::Tensor::from_slice(&[n_tok]),
        temperature: tch::Tensor::zeros([1], (tch::Kind::Float, tch::Device::Cpu)),
    }
}

/// Whether molecule `sys` fits a transferable model of `tokens` tokens and label vocabularies
/// `conditioning`: its atoms within the tokens (N - 2) and its residues within the
/// residue-index table; else a message saying which.
pub fn check_fits(
    sys: &System,
    tokens: i64,
    conditioning: Option<&crate::tarflow::Conditioning>,
) -> Result<(), String> {
    let needs = sys.n_atoms() as i64 - 2;
    if needs > tokens {
        return Err(format!(
            "{} atoms, the model takes at most {}",
            sys.n_atoms(),
            tokens + 2
        ));
    }
    let residues = sys.topology.residues.len() as i64;
    match conditioning {
        Some(k) if residues > k.max_residues => Err(format!(
            "{residues} residues, the model takes at most {}",
            k.max_residues
        )),
        _ => Ok(()),
    }
}

/// One molecule of a transferable training set: its system, Z-matrix, frames and name.
pub struct Molecule {
    pub name: String,
    pub system: System,
    pub zmatrix: ZMatrix,
    /// Frames at the run's temperature, n x N x 3, nm.
    pub frames: Vec<f64>,
    /// Each frame's production time within its trajectory, ps (the rungs of one replica
    /// exchange share its clock).
    pub time_ps: Vec<f64>,
    /// Training frames from raised rungs of its replica exchange (may be none), lowest first.
    pub raised: Vec<Rung>,
}

/// How a transferable run splits each molecule's frames into training and validation; a resumed
/// run keeps its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ValidationSplit {
    /// The last tenth of the frames at the target temperature; raised rungs train whole (runs
    /// begun before 2026-12-06: with several ladders, that is the last ladders' frames, beside
    /// their raised rungs, which exchanges tie to them).
    LastFrames,
    /// The last tenth of the simulated time at the target temperature, every ladder at once; no
    /// raised frame over that time trains.
    LastTime,
}

/// The frames of one raised rung of a molecule's replica exchange.
#[derive(Clone)]
pub struct Rung {
    /// The rung's temperature, K.
    pub temperature_k: f64,
    /// Its frames, n x N x 3, nm.
    pub x: Vec<f64>,
    /// Each frame's production time, ps.
    pub time_ps: Vec<f64>,
}

/// The `rungs` lowest raised rungs of the replica-exchange run `path`, lowest first (none for
/// 0; an error if the run has fewer raised rungs or no ladder).
pub fn raised_frames(path: &std::path::Path, rungs: usize) -> crate::Result<Vec<Rung>> {
    if rungs == 0 {
        return Ok(Vec::new());
    }
    let apart = bgen_md::dataset::load_raised_rungs_apart(path, rungs)?;
    Ok(apart
        .into_iter()
        .map(|(t, f)| Rung {
            temperature_k: t,
            x: f.x,
            time_ps: f.time_ps,
        })
        .collect())
}

/// `keep` of the frames `x` (frames of `dx` values), evenly spaced from the first, in order; all
/// of them when there are no more. A molecule whose MD ran longer (to pin a slow basin) keeps
/// the longer run's reach, not more weight in training.
pub fn thin(x: Vec<f64>, dx: usize, keep: usize) -> Vec<f64> {
    let n = x.len() / dx;
    if keep >= n {
        return x;
    }
    (0..keep)
        .flat_map(|k| {
            let f = k * n / keep;
            x[f * dx..(f + 1) * dx].iter().copied()
        })
        .collect()
}

/// The molecules of a merged many-peptide data set (`bgen dataset merge`): its training ones,
/// or its held-out ones, each with as many frames per rung as the shortest run's (its
/// [`thin`]ned frames).
pub fn load_dataset(
    path: &std::path::Path,
    held_out: bool,
    rings: bgen_system::RingClosure,
    raised_rungs: usize,
) -> crate::Result<Vec<Molecule>> {
    use bgen_system::error::Context;
    let file = if path.is_dir() {
        path.join("dataset.json")
    } else {
        path.to_path_buf()
    };
    let ds: bgen_md::shards::ShardedDataset = serde_json::from_str(
        &std::fs::read_to_string(&file).with_context(|| file.display().to_string())?,
    )
    .with_context(|| format!("{}: not a merged data set", file.display()))?;
    let setup = bgen_system::Setup::from_name(&ds.forcefield)?;
    let entries = if held_out { &ds.held_out } else { &ds.train };
    // Every molecule as many frames per rung as the shortest run's, spread over its whole run.
    let keep = entries.iter().map(|e| e.frames).min().unwrap_or(0);
    entries
        .iter()
        .map(|e| {
            let system =
                System::from_pdb_file(&e.path.join("topology.pdb"), setup, Some(ds.temperature_k))?;
            let zmatrix = ZMatrix::from_topology_with(&system.topology, rings)?;
            let dx = 3 * system.n_atoms();
            let frames = bgen_md::dataset::load_run_temperature(&e.path)?;
            // The frames the merge counted (a shard lengthened since holds more).
            if frames.x.len() != e.frames * dx || keep == 0 {
                bgen_system::bail!(
                    "{}: {} holds {} frames at the run's temperature, the data set {}; merge the run again \
                     into another --out and train on that (a model resumed on this data set \
                     keeps to it)",
                    file.display(),
                    e.name,
                    frames.x.len() / dx,
                    e.frames
                );
            }
            let time_ps = thin(frames.time_ps, 1, keep);
            let frames = thin(frames.x, dx, keep);
            let raised = raised_frames(&e.path, raised_rungs)?
                .into_iter()
                .map(|r| Rung {
                    x: thin(r.x, dx, keep),
                    time_ps: thin(r.time_ps, 1, keep),
                    ..r
                })
                .collect();
            Ok(Molecule {
                name: e.name.clone(),
                system,
                zmatrix,
                frames,
                time_ps,
                raised,
            })
        })
        .collect()
}

/// A molecule's rows for a transferable model of `tokens` tokens: model features (n, 3 tokens)
/// padded with zeros (a TarFlow's; an ArBG's, with `binned` its range, binned as
/// [`Internal::to_binned`] says), and the labels of each row, whose frame's
/// [`temperature_feature`] is `temperature`.
///
/// [`temperature_feature`]: crate::tarflow::temperature_feature
pub fn rows(
    m: &Molecule,
    internal: &Internal,
    frames: &[f64],
    tokens: i64,
    temperature: f64,
    binned: Option<f64>,
) -> crate::Result<(tch::Tensor, crate::tarflow::Labels)> {
    use tch::{Kind, Tensor};
    let n_tok = m.system.n_atoms() as i64 - 2;
    if n_tok > tokens {
        bgen_system::bail!(
            "{}: {} tokens, more than the model's {tokens}",
            m.name,
            n_tok
        );
    }
    let ic = internal.from_cartesian(frames);
    let mut y = vec![0.0; ic.len()];
    match binned {
        Some(range) => {
            internal.to_binned(&ic, 0..internal.dim(), &mut y, range);
        }
        None => {
            internal.to_model(&ic, &mut y, None);
        }
    }
    let d = internal.dim() as i64;
    let n = ic.len() as i64 / d;
    let x = Tensor::from_slice(&y).view([n, d]).to_kind(Kind::Float);
    let x = Tensor::cat(
        &[
            x,
            Tensor::zeros([n, 3 * tokens - d], (Kind::Float, tch::Device::Cpu)),
        ],
        1,
    );
    let mut l = padded_labels(&m.system, &m.zmatrix, tokens).repeat(n);
    l.temperature = Tensor::full([n], temperature, (Kind::Float, tch::Device::Cpu));
    Ok((x, l))
}

/// A toy molecule for tests and examples: the zwitterion of `sequence` as built (amber14-obc1),
/// its Z-matrix, `n` copies of its structure with each coordinate moved by up to 3 pm (n x N x
/// 3, nm; deterministic), and the standardisation that per-class standards fitted to them give.
pub fn toy_molecule(
    sequence: &str,
    n: usize,
) -> crate::Result<(System, ZMatrix, Vec<f64>, Internal)> {
    use bgen_system::peptide::{build, Caps};
    let sys = build(sequence, Caps::None, bgen_system::Setup::Amber14Obc1)?;
    let z = ZMatrix::from_topology(&sys.topology)?;
    let frames: Vec<f64> = (0..n)
        .flat_map(|k| {
            sys.positions
                .iter()
                .enumerate()
                .map(move |(i, x)| x + 0.003 * (((i * 7 + k * 13) % 11) as f64 - 5.0) / 5.0)
        })
        .collect();
    let (internal, _) = Standards::fit(&[(&sys, &z, &frames)]).internal(&sys, &z);
    Ok((sys, z, frames, internal))
}

#[cfg(test)]
mod tests {
    use super::thin;

    /// Thinning keeps whole frames, evenly spaced from the first and in order, and all of them
    /// when asked for as many or more.
    #[test]
    fn thin_keeps_whole_frames_evenly_spaced() {
        let x: Vec<f64> = (0..24).map(f64::from).collect(); // 8 frames of 3
        assert_eq!(
            thin(x.clone(), 3, 4),
            [0., 1., 2., 6., 7., 8., 12., 13., 14., 18., 19., 20.]
        );
        assert_eq!(
            thin(x.clone(), 3, 3),
            [0., 1., 2., 6., 7., 8., 15., 16., 17.]
        );
        assert_eq!(thin(x.clone(), 3, 8), x);
        assert_eq!(thin(x.clone(), 3, 9), x);
    }
}
