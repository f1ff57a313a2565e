//! Wasserstein distances: exact in one dimension (weighted quantile coupling) and on the torus of
//! dihedral angles (exact optimal transport, [`crate::ot`]).

use crate::ot::exact_ot;
use std::f64::consts::PI;

/// Normalised weights: `w` divided by its sum, or uniform when `w` is None.
pub fn normalised(w: Option<&[f64]>, n: usize) -> Vec<f64> {
    match w {
        Some(w) => {
            assert_eq!(w.len(), n, "one weight per sample");
            let t: f64 = w.iter().sum();
            w.iter().map(|v| v / t).collect()
        }
        None => vec![1.0 / n as f64; n],
    }
}

/// Exact p-Wasserstein distance (p >= 1) between weighted samples on the line:
/// (integral over t in (0,1) of |F^-1(t) - G^-1(t)|^p)^(1/p). Weights None = uniform.
pub fn wasserstein_1d(x: &[f64], wx: Option<&[f64]>, y: &[f64], wy: Option<&[f64]>, p: f64) -> f64 {
    let sorted = |v: &[f64], w: Option<&[f64]>| {
        let w = normalised(w, v.len());
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
        idx.into_iter().map(|i| (v[i], w[i])).collect::<Vec<_>>()
    };
    let (a, b) = (sorted(x, wx), sorted(y, wy));
    // Walk the union of the two CDFs' breakpoints (cumulative weights), pairing the quantiles
    // of each segment; identical inputs give exactly zero.
    let cum = |v: &[(f64, f64)]| {
        let mut c = 0.0;
        v.iter()
            .map(|&(_, w)| {
                c += w;
                c
            })
            .collect::<Vec<f64>>()
    };
    let (ca, cb) = (cum(&a), cum(&b));
    let (mut i, mut j, mut t) = (0, 0, 0.0);
    let mut total = 0.0;
    while i < a.len() && j < b.len() {
        let next = ca[i].min(cb[j]);
        total += (next - t).max(0.0) * (a[i].0 - b[j].0).abs().powf(p);
        t = next;
        if ca[i] <= next {
            i += 1;
        }
        if cb[j] <= next {
            j += 1;
        }
    }
    total.max(0.0).powf(1.0 / p)
}

/// Signed angle difference wrapped into [-pi, pi), rad.
#[inline]
pub fn wrap(d: f64) -> f64 {
    (d + PI).rem_euclid(2.0 * PI) - PI
}

/// Squared geodesic distance on the flat torus between two angle vectors (rad, each in
/// [-pi, pi]).
#[inline]
pub fn torus_dist2(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = (x - y).abs();
            let d = if d > PI { 2.0 * PI - d } else { d };
            d * d
        })
        .sum()
}

/// Exact 2-Wasserstein distance on the torus between weighted sets of angle vectors
/// (`x`: n x d, `y`: m x d, rad, row-major), with the wrapped squared distance as cost.
pub fn torus_w2(x: &[f64], wx: Option<&[f64]>, y: &[f64], wy: Option<&[f64]>, d: usize) -> f64 {
    let (x, y): (Vec<f64>, Vec<f64>) = (
        x.iter().map(|&v| wrap(v)).collect(),
        y.iter().map(|&v| wrap(v)).collect(),
    );
    w2_points(&x, wx, &y, wy, d, torus_dist2)
}

/// Squared Euclidean distance.
#[inline]
pub fn euclidean_dist2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Exact 2-Wasserstein distance between weighted point sets in R^d (`x`: n x d, `y`: m x d).
pub fn euclidean_w2(x: &[f64], wx: Option<&[f64]>, y: &[f64], wy: Option<&[f64]>, d: usize) -> f64 {
    w2_points(x, wx, y, wy, d, euclidean_dist2)
}

/// Exact W2 between weighted point sets under the squared distance `dist2`.
///
/// The exact solver ([`exact_ot`]) is seeded by a coarse problem: both sets are clustered around
/// up to 64 centres (farthest-point sampling), the clusters' transport is solved exactly, and
/// each point gets arcs to members of the clusters its cluster sends mass to. The seeds only
/// speed the solver up; optimality is certified over all pairs either way.
pub fn w2_points(
    x: &[f64],
    wx: Option<&[f64]>,
    y: &[f64],
    wy: Option<&[f64]>,
    d: usize,
    dist2: fn(&[f64], &[f64]) -> f64,
) -> f64 {
    let (n, m) = (x.len() / d, y.len() / d);
    let (a, b) = (normalised(wx, n), normalised(wy, m));
    let px = |i: usize| &x[i * d..(i + 1) * d];
    let py = |j: usize| &y[j * d..(j + 1) * d];
    let seeds = coarse_seeds(x, &a, y, &b, d, 64, 8, dist2);
    let t = exact_ot(&a, &b, |i, j| dist2(px(i), py(j)), 8, &seeds);
    t.cost.max(0.0).sqrt()
}

/// Seed arcs from a coarse transport between clusters (see [`torus_w2`]).
#[allow(clippy::too_many_arguments)]
fn coarse_seeds(
    x: &[f64],
    a: &[f64],
    y: &[f64],
    b: &[f64],
    d: usize,
    clusters: usize,
    per: usize,
    dist2: fn(&[f64], &[f64]) -> f64,
) -> Vec<(u32, u32)> {
    use rayon::prelude::*;
    let (n, m) = (a.len(), b.len());
    let point = |k: usize| {
        if k < n {
            &x[k * d..(k + 1) * d]
        } else {
            &y[(k - n) * d..(k - n + 1) * d]
        }
    };
    // Farthest-point sampling over both sets.
    let c = clusters.min(n + m);
    let mut centres = vec![0usize];
    let mut dist: Vec<f64> = (0..n + m).map(|k| dist2(point(k), point(0))).collect();
    while centres.len() < c {
        let (far, _) =
            dist.iter().enumerate().fold(
                (0, -1.0),
                |acc, (k, &v)| if v > acc.1 { (k, v) } else { acc },
            );
        centres.push(far);
        for (k, dk) in dist.iter_mut().enumerate() {
            *dk = dk.min(dist2(point(k), point(far)));
        }
    }
    let assign: Vec<usize> = (0..n + m)
        .into_par_iter()
        .map(|k| {
            (0..c)
                .map(|q| (q, dist2(point(k), point(centres[q]))))
                .fold(
                    (0, f64::INFINITY),
                    |acc, v| if v.1 < acc.1 { v } else { acc },
                )
                .0
        })
        .collect();
    let (mut ca, mut cb) = (vec![0.0; c], vec![0.0; c]);
    let mut members_y: Vec<Vec<u32>> = vec![Vec::new(); c];
    for i in 0..n {
        ca[assign[i]] += a[i];
    }
    for j in 0..m {
        cb[assign[n + j]] += b[j];
        members_y[assign[n + j]].push(j as u32);
    }
    // Clusters without mass on one side take none; give them a tiny share to keep it feasible.
    let coarse = exact_ot(
        &ca,
        &cb,
        |p, q| dist2(point(centres[p]), point(centres[q])),
        c,
        &[],
    );
    let mut sends: Vec<Vec<u32>> = vec![Vec::new(); c];
    for &(p, q, f) in &coarse.plan {
        if f > 0.0 {
            sends[p as usize].push(q);
        }
    }
    (0..n)
        .into_par_iter()
        .flat_map_iter(|i| {
            let mut out = Vec::new();
            for &q in &sends[assign[i]] {
                // Spread over the receiving cluster (its nearest members alone would congest):
                // `per` members at pseudo-random positions, different for each source.
                let mem = &members_y[q as usize];
                let mut h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ q as u64;
                for _ in 0..per.min(mem.len()) {
                    h ^= h >> 33;
                    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
                    h ^= h >> 29;
                    out.push((i as u32, mem[(h % mem.len() as u64) as usize]));
                }
            }
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaussian(n: usize, mu: f64, sigma: f64) -> Vec<f64> {
        // quantiles of N(mu, sigma): deterministic, so the empirical W2 is close to the exact one
        (0..n)
            .map(|i| mu + sigma * probit((i as f64 + 0.5) / n as f64))
            .collect()
    }

    /// Inverse normal CDF (Acklam's rational approximation, |error| < 1.2e-9).
    #[allow(clippy::excessive_precision)]
    fn probit(p: f64) -> f64 {
        let a = [
            -3.969683028665376e1,
            2.209460984245205e2,
            -2.759285104469687e2,
            1.383577518672690e2,
            -3.066479806614716e1,
            2.506628277459239,
        ];
        let b = [
            -5.447609879822406e1,
            1.615858368580409e2,
            -1.556989798598866e2,
            6.680131188771972e1,
            -1.328068155288572e1,
        ];
        let c = [
            -7.784894002430293e-3,
            -3.223964580411365e-1,
            -2.400758277161838,
            -2.549732539343734,
            4.374664141464968,
            2.938163982698783,
        ];
        let d = [
            7.784695709041462e-3,
            3.224671290700398e-1,
            2.445134137142996,
            3.754408661907416,
        ];
        let tail = |q: f64| {
            (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5])
                / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0)
        };
        if p < 0.02425 {
            tail((-2.0 * p.ln()).sqrt())
        } else if p > 1.0 - 0.02425 {
            -tail((-2.0 * (1.0 - p).ln()).sqrt())
        } else {
            let q = p - 0.5;
            let r = q * q;
            (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
                / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0)
        }
    }

    /// W2(N(m1, s1), N(m2, s2))^2 = (m1 - m2)^2 + (s1 - s2)^2.
    #[test]
    fn gaussians_in_one_dimension() {
        let (x, y) = (gaussian(20_000, 0.3, 1.0), gaussian(30_000, -0.2, 1.5));
        let w2 = wasserstein_1d(&x, None, &y, None, 2.0);
        let want = (0.5f64.powi(2) + 0.5f64.powi(2)).sqrt();
        assert!((w2 - want).abs() < 2e-3, "{w2} vs {want}");
        // A shift: W1 = W2 = |shift|.
        let z: Vec<f64> = x.iter().map(|v| v + 0.7).collect();
        assert!((wasserstein_1d(&x, None, &z, None, 1.0) - 0.7).abs() < 1e-12);
        // Weights: duplicating a sample equals doubling its weight.
        let (u, w) = ([0.0, 1.0], [2.0, 1.0]);
        let v = [0.0, 0.0, 1.0];
        assert!(wasserstein_1d(&u, Some(&w), &v, None, 2.0) < 1e-12);
    }

    /// The coarse seeds change the path, not the answer: seeded and unseeded solves agree, with
    /// weights, across the seam.
    #[test]
    fn seeded_torus_w2_equals_plain_exact_ot() {
        let mut s = 5u64;
        let mut u = move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let (n, m, d) = (400, 300, 3);
        let x: Vec<f64> = (0..n * d).map(|_| wrap(3.0 + u())).collect();
        let y: Vec<f64> = (0..m * d).map(|_| wrap(-2.8 + 1.5 * u())).collect();
        let wx: Vec<f64> = (0..n).map(|_| u() + 0.05).collect();
        let got = torus_w2(&x, Some(&wx), &y, None, d);
        let (a, b) = (normalised(Some(&wx), n), normalised(None, m));
        let plain = exact_ot(
            &a,
            &b,
            |i, j| torus_dist2(&x[i * d..(i + 1) * d], &y[j * d..(j + 1) * d]),
            3,
            &[],
        );
        assert!(
            (got - plain.cost.sqrt()).abs() < 1e-10,
            "{got} vs {}",
            plain.cost.sqrt()
        );
    }

    #[test]
    fn torus_distance_wraps_across_the_seam() {
        let a = [179f64.to_radians(), -170f64.to_radians()];
        let b = [-179f64.to_radians(), 170f64.to_radians()];
        let want = 2f64.to_radians().powi(2) + 20f64.to_radians().powi(2);
        assert!((torus_dist2(&a, &b) - want).abs() < 1e-12);
        // A set and its copy shifted across the seam by 4 degrees: W2 = 4 degrees.
        let x: Vec<f64> = (0..200)
            .map(|i| (178.0 + (i % 7) as f64 * 0.1f64).to_radians())
            .collect();
        let y: Vec<f64> = x.iter().map(|v| wrap(v + 4f64.to_radians())).collect();
        let w = torus_w2(&x, None, &y, None, 1);
        assert!((w - 4f64.to_radians()).abs() < 1e-9, "{}", w.to_degrees());
    }
}
