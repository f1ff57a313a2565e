//! Bonded terms: harmonic bonds, harmonic angles and periodic torsions, with gradients.
//! Positions nm, energies kJ/mol, gradients kJ/mol/nm.

use crate::forcefield::{Angle, Bond, Torsion};

#[inline(always)]
fn get(x: &[f64], i: usize) -> [f64; 3] {
    [x[3 * i], x[3 * i + 1], x[3 * i + 2]]
}
#[inline(always)]
fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
#[inline(always)]
fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
#[inline(always)]
fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}
#[inline(always)]
fn add_to(g: &mut [f64], i: usize, v: [f64; 3], s: f64) {
    g[3 * i] += s * v[0];
    g[3 * i + 1] += s * v[1];
    g[3 * i + 2] += s * v[2];
}

/// Sum of k/2 (r - r0)^2; adds dE/dx to `grad` when given.
pub fn bonds(x: &[f64], bonds: &[Bond], mut grad: Option<&mut [f64]>) -> f64 {
    let mut e = 0.0;
    for b in bonds {
        let d = sub(get(x, b.i), get(x, b.j));
        let r = dot(d, d).sqrt();
        let dr = r - b.length;
        e += 0.5 * b.k * dr * dr;
        if let Some(g) = grad.as_deref_mut() {
            let s = b.k * dr / r;
            add_to(g, b.i, d, s);
            add_to(g, b.j, d, -s);
        }
    }
    e
}

/// Angle at the apex `atoms[1]` in rad (robust near 0 and pi).
pub fn angle(x: &[f64], atoms: [usize; 3]) -> f64 {
    let u = sub(get(x, atoms[0]), get(x, atoms[1]));
    let v = sub(get(x, atoms[2]), get(x, atoms[1]));
    let p = cross(u, v);
    dot(p, p).sqrt().atan2(dot(u, v))
}

/// Sum of k/2 (theta - theta0)^2; adds dE/dx to `grad` when given.
pub fn angles(x: &[f64], angles: &[Angle], mut grad: Option<&mut [f64]>) -> f64 {
    let mut e = 0.0;
    for a in angles {
        let [i, j, k] = a.atoms;
        let u = sub(get(x, i), get(x, j));
        let v = sub(get(x, k), get(x, j));
        let p = cross(u, v);
        let pn = dot(p, p).sqrt();
        let theta = pn.atan2(dot(u, v));
        let d = theta - a.angle;
        e += 0.5 * a.k * d * d;
        if let Some(g) = grad.as_deref_mut() {
            // dtheta/du = u x p / (|u|^2 |p|), dtheta/dv = p x v / (|v|^2 |p|).
            let pn = pn.max(1e-30);
            let de = a.k * d;
            let gu = cross(u, p);
            let gv = cross(p, v);
            let su = de / (dot(u, u) * pn);
            let sv = de / (dot(v, v) * pn);
            add_to(g, i, gu, su);
            add_to(g, k, gv, sv);
            add_to(g, j, gu, -su);
            add_to(g, j, gv, -sv);
        }
    }
    e
}

/// Vectors of the dihedral p0-p1-p2-p3: F = p0 - p1, G = p1 - p2, H = p3 - p2, A = F x G,
/// B = H x G, |G|, and (cos phi, sin phi) with the IUPAC sign convention (as OpenMM's
/// `theta` and mdtraj: positive when p0 must turn clockwise, seen along p1 -> p2, to eclipse p3).
struct TorsionFrame {
    f: [f64; 3],
    g: [f64; 3],
    h: [f64; 3],
    a: [f64; 3],
    b: [f64; 3],
    gn: f64,
    a2: f64,
    b2: f64,
    cos: f64,
    sin: f64,
}

#[inline(always)]
fn torsion_frame(x: &[f64], atoms: [usize; 4]) -> TorsionFrame {
    let [p0, p1, p2, p3] = atoms.map(|a| get(x, a));
    let (f, g, h) = (sub(p0, p1), sub(p1, p2), sub(p3, p2));
    let (a, b) = (cross(f, g), cross(h, g));
    let gn = dot(g, g).sqrt();
    let a2 = dot(a, a).max(1e-300);
    let b2 = dot(b, b).max(1e-300);
    let inv_ab = 1.0 / (a2 * b2).sqrt();
    // sin(phi) |A||B| = (B x A).G / |G|, cos(phi) |A||B| = A.B
    TorsionFrame {
        f,
        g,
        h,
        a,
        b,
        gn,
        a2,
        b2,
        cos: dot(a, b) * inv_ab,
        sin: dot(cross(b, a), g) / gn * inv_ab,
    }
}

/// Dihedral angle p0-p1-p2-p3 in rad, in (-pi, pi], with OpenMM's (IUPAC) sign convention.
pub fn dihedral(x: &[f64], atoms: [usize; 4]) -> f64 {
    let t = torsion_frame(x, atoms);
    t.sin.atan2(t.cos)
}

/// Sum of k (1 + cos(n phi - phase)); adds dE/dx to `grad` when given.
/// cos(n phi) and sin(n phi) come from cos(phi), sin(phi) by the Chebyshev recurrence, so no
/// trigonometric function is called.
pub fn torsions(x: &[f64], torsions: &[Torsion], mut grad: Option<&mut [f64]>) -> f64 {
    let mut e = 0.0;
    for t in torsions {
        let [i0, i1, i2, i3] = t.atoms;
        let TorsionFrame {
            f,
            g: gv,
            h,
            a,
            b,
            gn,
            a2,
            b2,
            cos: c1,
            sin: s1,
        } = torsion_frame(x, t.atoms);
        // (cos n phi, sin n phi)
        let (mut cn, mut sn) = (c1, s1);
        for _ in 1..t.periodicity {
            (cn, sn) = (cn * c1 - sn * s1, sn * c1 + cn * s1);
        }
        let (cp, sp) = (t.phase.cos(), t.phase.sin());
        // cos(n phi - phase), sin(n phi - phase)
        let cos_arg = cn * cp + sn * sp;
        e += t.k * (1.0 + cos_arg);
        if let Some(g) = grad.as_deref_mut() {
            let sin_arg = sn * cp - cn * sp;
            // The geometric factors below are the gradient of -phi (Blondel & Karplus 1996 with
            // the opposite sign convention), so they take -dE/dphi.
            let de = t.k * t.periodicity as f64 * sin_arg;
            let s0 = gn / a2;
            let s3 = -gn / b2;
            let fg = dot(f, gv) / (a2 * gn);
            let hg = dot(h, gv) / (b2 * gn);
            add_to(g, i0, a, de * s0);
            add_to(g, i3, b, de * s3);
            // The inner atoms take the rest: dphi/dp1 = -(s0 + fg) A + hg B,
            // dphi/dp2 = fg A - (s3 + hg) B (the four sum to zero).
            add_to(g, i1, a, de * (-s0 - fg));
            add_to(g, i1, b, de * hg);
            add_to(g, i2, b, de * (-s3 - hg));
            add_to(g, i2, a, de * fg);
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IUPAC sign: p0 on +x, axis p1 -> p2 along +z, p3 rotated by +theta about z gives
    /// phi = +theta. Checked against OpenMM 8.6.1 (CustomTorsionForce "theta" gives +60 deg for
    /// theta = 60 deg); the shared spec sheet's `dihedral()` has the opposite sign, which its
    /// energies cannot see because every AMBER phase here is 0 or 180 deg.
    #[test]
    fn dihedral_sign_convention() {
        for deg in [-150.0f64, -60.0, 30.0, 90.0, 179.0] {
            let t = deg.to_radians();
            let x = [
                1.0,
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
                1.0,
                t.cos(),
                t.sin(),
                1.0,
            ];
            let phi = dihedral(&x, [0, 1, 2, 3]);
            assert!(
                (phi - t).abs() < 1e-12,
                "theta {deg}: phi {}",
                phi.to_degrees()
            );
        }
    }

    #[test]
    fn torsion_gradient_matches_finite_difference() {
        let x = [
            0.1, 0.02, -0.03, 0.0, 0.0, 0.0, 0.01, 0.0, 0.15, 0.12, 0.08, 0.2,
        ];
        for (n, phase) in [(1, 0.0), (2, std::f64::consts::PI), (3, 0.7), (6, -1.3)] {
            let t = [Torsion {
                atoms: [0, 1, 2, 3],
                periodicity: n,
                phase,
                k: 2.5,
            }];
            let mut g = [0.0; 12];
            let e = torsions(&x, &t, Some(&mut g));
            let phi = dihedral(&x, [0, 1, 2, 3]);
            assert!((e - 2.5 * (1.0 + (n as f64 * phi - phase).cos())).abs() < 1e-12);
            for k in 0..12 {
                let (mut xp, mut xm) = (x, x);
                xp[k] += 1e-6;
                xm[k] -= 1e-6;
                let fd = (torsions(&xp, &t, None) - torsions(&xm, &t, None)) / 2e-6;
                assert!(
                    (fd - g[k]).abs() < 1e-6 * g[k].abs().max(1.0),
                    "n={n} coord {k}: {fd} vs {}",
                    g[k]
                );
            }
        }
    }
}
