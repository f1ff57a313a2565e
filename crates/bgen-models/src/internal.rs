//! Internal coordinates as a model sees them: the Z-matrix's bonds, angles and torsions
//! (`bgen_system::zmatrix`) standardised one by one. Bonds and angles are shifted by their mean
//! and divided by their std. A torsion is periodic: it is cut open at the angle where the
//! training data are sparsest (so no mode straddles the cut), unwrapped onto (cut, cut + 2 pi),
//! and mapped onto the real line by atanh, which is a bijection with an exact Jacobian, so the
//! model's density on the circle is normalised; then standardised.
//!
//! Model features are laid out as the internal coordinates: `[b1, b2, theta2 | b3, theta3,
//! phi3 | ...]`, i.e. N - 2 tokens of 3 (one per atom from the fourth on, the first three atoms'
//! coordinates together).

use bgen_system::zmatrix::{IcKind, ZMatrix, ZRow};
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// The fitted transform between internal coordinates and model features.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Internal {
    /// Z-matrix rows (atom, j, k, l) in placement order.
    pub rows: Vec<[usize; 4]>,
    /// Per coordinate: 0 bond (nm), 1 angle (rad), 2 torsion (rad).
    pub kinds: Vec<u8>,
    /// Torsions: the branch cut (rad); 0 for the others.
    pub cut: Vec<f64>,
    /// Mean and std of each feature before standardising (atanh units for torsions).
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// Spread of each internal coordinate in its own units (nm or rad) on the training data:
    /// the scale of Langevin moves in these coordinates.
    pub spread: Vec<f64>,
}

/// Smallest std kept (a coordinate that never moves in the data).
const MIN_STD: f64 = 1e-6;
/// Bins of the torsion histograms that place the cuts (5 degrees each).
const CUT_BINS: usize = 72;

fn kind_code(k: IcKind) -> u8 {
    match k {
        IcKind::Bond => 0,
        IcKind::Angle => 1,
        IcKind::Torsion => 2,
    }
}

/// u in (-1, 1) of a torsion: the angle unwrapped onto (cut, cut + 2 pi), rescaled.
fn unwrap_u(phi: f64, cut: f64) -> f64 {
    let t = (phi - cut).rem_euclid(2.0 * PI);
    // Keep strictly inside (-1, 1): the cut itself has zero density.
    (t / PI - 1.0).clamp(-1.0 + 1e-15, 1.0 - 1e-15)
}

/// (cut, mean, std, spread) of one internal coordinate of `kind` (0 bond, 1 angle, 2 torsion)
/// from its values: a torsion is cut where its values, smoothed over +-30 degrees, are
/// sparsest, and its mean and std are those of atanh of the unwrapped angle.
pub fn column_stats(kind: u8, col: &[f64]) -> (f64, f64, f64, f64) {
    let moments = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let s = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        (m, s.max(MIN_STD))
    };
    if kind != 2 {
        let (m, s) = moments(col);
        return (0.0, m, s, s);
    }
    let mut h = [0usize; CUT_BINS];
    for &v in col {
        let b = ((v.rem_euclid(2.0 * PI)) / (2.0 * PI) * CUT_BINS as f64) as usize;
        h[b.min(CUT_BINS - 1)] += 1;
    }
    let smooth = |b: usize| -> f64 {
        (0..CUT_BINS)
            .map(|c| {
                let k = (b + CUT_BINS - c) % CUT_BINS;
                let dist = k.min(CUT_BINS - k) as f64 / 6.0;
                h[c] as f64 * (-0.5 * dist * dist).exp()
            })
            .sum()
    };
    let best = (0..CUT_BINS)
        .min_by(|&a, &b| smooth(a).total_cmp(&smooth(b)))
        .unwrap_or(0);
    let cut = (best as f64 + 0.5) / CUT_BINS as f64 * 2.0 * PI;
    let zs: Vec<f64> = col.iter().map(|&v| unwrap_u(v, cut).atanh()).collect();
    let (m, s) = moments(&zs);
    let ts: Vec<f64> = col.iter().map(|&v| (unwrap_u(v, cut) + 1.0) * PI).collect();
    (cut, m, s, moments(&ts).1)
}

impl Internal {
    /// Fits the transform on Cartesian frames (n x N x 3, nm) with the Z-matrix `z`.
    pub fn fit(frames: &[f64], z: &ZMatrix) -> Internal {
        let (d, dx) = (z.dim(), 3 * z.n_atoms());
        let n = frames.len() / dx;
        let kinds: Vec<u8> = z.kinds().into_iter().map(kind_code).collect();
        let mut ic = vec![0.0; n * d];
        for (f, c) in frames.chunks(dx).zip(ic.chunks_mut(d)) {
            z.to_internal(f, c);
        }
        let mut cut = vec![0.0; d];
        let (mut mean, mut std, mut spread) = (vec![0.0; d], vec![1.0; d], vec![1.0; d]);
        for q in 0..d {
            let col: Vec<f64> = (0..n).map(|i| ic[i * d + q]).collect();
            (cut[q], mean[q], std[q], spread[q]) = column_stats(kinds[q], &col);
        }
        Internal {
            rows: z.rows.iter().map(|r| [r.atom, r.j, r.k, r.l]).collect(),
            kinds,
            cut,
            mean,
            std,
            spread,
        }
    }

    /// The Z-matrix.
    pub fn zmatrix(&self) -> ZMatrix {
        ZMatrix {
            rows: self
                .rows
                .iter()
                .map(|&[atom, j, k, l]| ZRow { atom, j, k, l })
                .collect(),
        }
    }

    /// Internal coordinates (= model features) per sample, 3N - 6.
    pub fn dim(&self) -> usize {
        self.kinds.len()
    }

    /// Atoms.
    pub fn n_atoms(&self) -> usize {
        self.rows.len()
    }

    /// Model features `y` of internal coordinates `ic` (rows x dim), in place of a copy; returns
    /// per row log|det dy/d ic|, and with `dlog` the derivative of that log-det with respect to
    /// each coordinate together with dy/d ic (both rows x dim).
    pub fn to_model(
        &self,
        ic: &[f64],
        y: &mut [f64],
        mut deriv: Option<(&mut [f64], &mut [f64])>,
    ) -> Vec<f64> {
        let d = self.dim();
        let mut logdet = vec![0.0; ic.len() / d];
        for (i, (c, yy)) in ic.chunks(d).zip(y.chunks_mut(d)).enumerate() {
            for q in 0..d {
                let (dy, dl) = if self.kinds[q] == 2 {
                    let u = unwrap_u(c[q], self.cut[q]);
                    yy[q] = (u.atanh() - self.mean[q]) / self.std[q];
                    let one_m = 1.0 - u * u;
                    logdet[i] -= (PI * self.std[q] * one_m).ln();
                    (1.0 / (PI * self.std[q] * one_m), 2.0 * u / (PI * one_m))
                } else {
                    yy[q] = (c[q] - self.mean[q]) / self.std[q];
                    logdet[i] -= self.std[q].ln();
                    (1.0 / self.std[q], 0.0)
                };
                if let Some((dyq, dlq)) = deriv.as_mut() {
                    dyq[i * d + q] = dy;
                    dlq[i * d + q] = dl;
                }
            }
        }
        logdet
    }

    /// Internal coordinates of model features `y` (rows x dim) into `ic` (torsions in (cut,
    /// cut + 2 pi)); returns per row log|det dy/d ic| at the result.
    pub fn from_model(&self, y: &[f64], ic: &mut [f64]) -> Vec<f64> {
        let d = self.dim();
        let mut logdet = vec![0.0; y.len() / d];
        for (i, (yy, c)) in y.chunks(d).zip(ic.chunks_mut(d)).enumerate() {
            for q in 0..d {
                let v = yy[q] * self.std[q] + self.mean[q];
                if self.kinds[q] == 2 {
                    let u = v.tanh().clamp(-1.0 + 1e-15, 1.0 - 1e-15);
                    c[q] = self.cut[q] + (u + 1.0) * PI;
                    logdet[i] -= (PI * self.std[q] * (1.0 - u * u)).ln();
                } else {
                    c[q] = v;
                    logdet[i] -= self.std[q].ln();
                }
            }
        }
        logdet
    }

    /// Features of a binned model (ArBG) for coordinates `cols` of internal coordinates `ic`
    /// (rows x cols.len()) into `y`: bonds and angles standardised; each torsion mapped
    /// linearly from the circle, cut open at its cut, onto [-range, range], so that the bins
    /// tile the circle (a torsion is never outside them) and a bin is an arc. The map is affine
    /// per coordinate; returns its log|det dy/d ic| per row (the same for every row).
    pub fn to_binned(
        &self,
        ic: &[f64],
        cols: std::ops::Range<usize>,
        y: &mut [f64],
        range: f64,
    ) -> f64 {
        let w = cols.len();
        for (c, yy) in ic.chunks(w).zip(y.chunks_mut(w)) {
            for (k, q) in cols.clone().enumerate() {
                yy[k] = match self.kinds[q] {
                    2 => range * unwrap_u(c[k], self.cut[q]),
                    _ => (c[k] - self.mean[q]) / self.std[q],
                };
            }
        }
        self.binned_log_det(cols, range)
    }

    /// The inverse of [`Internal::to_binned`] (torsions in (cut, cut + 2 pi)); returns the same
    /// log|det dy/d ic| per row.
    pub fn from_binned(
        &self,
        y: &[f64],
        cols: std::ops::Range<usize>,
        ic: &mut [f64],
        range: f64,
    ) -> f64 {
        let w = cols.len();
        for (yy, c) in y.chunks(w).zip(ic.chunks_mut(w)) {
            for (k, q) in cols.clone().enumerate() {
                c[k] = match self.kinds[q] {
                    2 => self.cut[q] + (yy[k] / range + 1.0) * PI,
                    _ => yy[k] * self.std[q] + self.mean[q],
                };
            }
        }
        self.binned_log_det(cols, range)
    }

    /// log|det dy/d ic| of the binned features of coordinates `cols`, per row.
    fn binned_log_det(&self, cols: std::ops::Range<usize>, range: f64) -> f64 {
        cols.map(|q| match self.kinds[q] {
            2 => (range / PI).ln(),
            _ => -self.std[q].ln(),
        })
        .sum()
    }

    /// Cartesian positions (rows x N x 3, nm, canonical frame) of internal coordinates.
    pub fn to_cartesian(&self, ic: &[f64]) -> Vec<f64> {
        let z = self.zmatrix();
        let (d, dx) = (self.dim(), 3 * self.n_atoms());
        let mut x = vec![0.0; ic.len() / d * dx];
        for (c, xx) in ic.chunks(d).zip(x.chunks_mut(dx)) {
            z.to_cartesian(c, xx);
        }
        x
    }

    /// Internal coordinates of Cartesian frames (rows x N x 3, nm).
    pub fn from_cartesian(&self, x: &[f64]) -> Vec<f64> {
        let z = self.zmatrix();
        let (d, dx) = (self.dim(), 3 * self.n_atoms());
        let mut ic = vec![0.0; x.len() / dx * d];
        for (f, c) in x.chunks(dx).zip(ic.chunks_mut(d)) {
            z.to_internal(f, c);
        }
        ic
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgen_system::System;

    /// Frames of aldp jittered around its PDB structure.
    fn frames() -> (ZMatrix, Vec<f64>) {
        let sys = System::named("aldp", None, None).unwrap();
        let z = ZMatrix::from_topology(&sys.topology).unwrap();
        let noise = crate::data::normals(200 * 66, 3);
        let x: Vec<f64> = (0..200 * 66)
            .map(|k| sys.positions[k % 66] + 0.01 * noise[k])
            .collect();
        (z, x)
    }

    #[test]
    fn model_features_invert_and_their_log_det_is_exact() {
        let (z, x) = frames();
        let t = Internal::fit(&x, &z);
        let ic = t.from_cartesian(&x);
        let mut y = vec![0.0; ic.len()];
        let (mut dy, mut dl) = (vec![0.0; ic.len()], vec![0.0; ic.len()]);
        let ld = t.to_model(&ic, &mut y, Some((&mut dy, &mut dl)));
        // Standardised.
        let d = t.dim();
        let n = ic.len() / d;
        for q in 0..d {
            let m: f64 = (0..n).map(|i| y[i * d + q]).sum::<f64>() / n as f64;
            assert!(m.abs() < 1e-9, "feature {q} mean {m}");
        }
        let mut back = vec![0.0; ic.len()];
        let ld2 = t.from_model(&y, &mut back);
        for (k, (a, b)) in ic.iter().zip(&back).enumerate() {
            let diff = (a - b).rem_euclid(2.0 * PI);
            let diff = diff.min(2.0 * PI - diff);
            assert!(diff < 1e-9, "coordinate {k}: {a} vs {b}");
        }
        for (a, b) in ld.iter().zip(&ld2) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        // log det = sum log dy/dic, and its derivative matches finite differences.
        let row = &ic[..d];
        let s: f64 = dy[..d].iter().map(|v| v.ln()).sum();
        assert!((s - ld[0]).abs() < 1e-9);
        for q in 0..d {
            let h = 1e-6;
            let (mut p, mut m) = (row.to_vec(), row.to_vec());
            p[q] += h;
            m[q] -= h;
            let mut yy = vec![0.0; d];
            let fd =
                (t.to_model(&p, &mut yy, None)[0] - t.to_model(&m, &mut yy, None)[0]) / (2.0 * h);
            assert!(
                (fd - dl[q]).abs() < 1e-5 * fd.abs().max(1.0),
                "{q}: {fd} vs {}",
                dl[q]
            );
        }
    }

    /// Binned features: affine per coordinate, invertible, every torsion inside [-R, R], and
    /// the log-det of a block of columns adds up to that of the whole row.
    #[test]
    fn binned_features_invert_and_tile_the_circle() {
        let (z, x) = frames();
        let t = Internal::fit(&x, &z);
        let mut ic = t.from_cartesian(&x);
        let d = t.dim();
        // Torsions anywhere on the circle, in any branch.
        let tors: Vec<usize> = (0..d).filter(|&q| t.kinds[q] == 2).collect();
        for (i, c) in ic.chunks_mut(d).enumerate() {
            for (k, &q) in tors.iter().enumerate() {
                c[q] += (i * 7 + k) as f64 * 0.37 - 20.0;
            }
        }
        let r = 4.0;
        let mut y = vec![0.0; ic.len()];
        let ld = t.to_binned(&ic, 0..d, &mut y, r);
        assert!(tors.iter().all(|&q| y.chunks(d).all(|yy| yy[q].abs() < r)));
        let mut back = vec![0.0; ic.len()];
        assert_eq!(t.from_binned(&y, 0..d, &mut back, r), ld);
        for (k, (a, b)) in ic.iter().zip(&back).enumerate() {
            let diff = (a - b).rem_euclid(2.0 * PI);
            assert!(
                diff.min(2.0 * PI - diff) < 1e-10,
                "coordinate {k}: {a} vs {b}"
            );
        }
        // The log-det against finite differences of the map, one coordinate at a time.
        let row = &ic[..d];
        let mut fd_sum = 0.0;
        for q in 0..d {
            let h = 1e-7;
            let (mut p, mut m) = (row.to_vec(), row.to_vec());
            p[q] += h;
            m[q] -= h;
            let (mut yp, mut ym) = (vec![0.0; d], vec![0.0; d]);
            t.to_binned(&p, 0..d, &mut yp, r);
            t.to_binned(&m, 0..d, &mut ym, r);
            fd_sum += ((yp[q] - ym[q]) / (2.0 * h)).ln();
        }
        assert!((fd_sum - ld).abs() < 1e-5, "{fd_sum} vs {ld}");
        // Blocks of columns.
        let cols: Vec<f64> = row[3..9].to_vec();
        let mut yb = vec![0.0; 6];
        let lb = t.to_binned(&cols, 3..9, &mut yb, r);
        assert_eq!(&yb[..], &y[3..9]);
        let rest = t.binned_log_det(0..3, r) + t.binned_log_det(9..d, r);
        assert!((lb + rest - ld).abs() < 1e-12);
    }

    /// The cut of each torsion sits far from the data: on frames within 0.002 nm of one
    /// structure, every training torsion is more than 60 degrees from it.
    #[test]
    fn torsion_cuts_avoid_the_data() {
        let (z, x0) = frames();
        let sys = System::named("aldp", None, None).unwrap();
        let x: Vec<f64> = x0
            .iter()
            .enumerate()
            .map(|(k, v)| sys.positions[k % 66] + 0.2 * (v - sys.positions[k % 66]))
            .collect();
        let t = Internal::fit(&x, &z);
        let ic = t.from_cartesian(&x);
        let d = t.dim();
        for q in (0..d).filter(|&q| t.kinds[q] == 2) {
            for c in ic.chunks(d) {
                let u = unwrap_u(c[q], t.cut[q]);
                assert!(u.abs() < 1.0 - 60.0 / 180.0, "torsion {q} at u = {u}");
            }
        }
    }
}
