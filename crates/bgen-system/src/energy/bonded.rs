//! Bonded terms: harmonic bonds, harmonic angles and periodic torsions, with gradients.
//! Positions nm, energies kJ/mol, gradients kJ/mol/nm.

use crate::forcefield::{Angle, Bond, Torsion};

#[inline(always)]
pub(crate) fn get(x: &[f64], i: usize) -> [f64; 3] {
    [x[3 * i], x[3 * i + 1], x[3 * i + 2]]
}
#[inline(always)]
pub(crate) fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
#[inline(always)]
pub(crate) fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
/// Distance between atoms `i` and `j` of `x` (atoms x 3).
#[inline(always)]
pub(crate) fn distance(x: &[f64], i: usize, j: usize) -> f64 {
    let d = sub(get(x, i), get(x, j));
    dot(d, d).sqrt()
}
#[inline(always)]
pub(crate) fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
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
/// B = H x G, 1/|G|, 1/|A|^2, 1/|B|^2 and (cos phi, sin phi) with the IUPAC sign convention (as
/// OpenMM's `theta` and mdtraj: positive when p0 must turn clockwise, seen along p1 -> p2, to
/// eclipse p3). Three divisions and no square root beyond |G|'s.
struct TorsionFrame {
    f: [f64; 3],
    g: [f64; 3],
    h: [f64; 3],
    a: [f64; 3],
    b: [f64; 3],
    gn: f64,
    inv_gn: f64,
    inv_a2: f64,
    inv_b2: f64,
    cos: f64,
    sin: f64,
}

#[inline(always)]
fn torsion_frame(x: &[f64], atoms: [usize; 4]) -> TorsionFrame {
    let [p0, p1, p2, p3] = atoms.map(|a| get(x, a));
    let (f, g, h) = (sub(p0, p1), sub(p1, p2), sub(p3, p2));
    let (a, b) = (cross(f, g), cross(h, g));
    let gn = dot(g, g).sqrt();
    let inv_a2 = 1.0 / dot(a, a).max(1e-300);
    let inv_b2 = 1.0 / dot(b, b).max(1e-300);
    let inv_gn = 1.0 / gn;
    let inv_ab = (inv_a2 * inv_b2).sqrt();
    // sin(phi) |A||B| = (B x A).G / |G|, cos(phi) |A||B| = A.B
    TorsionFrame {
        f,
        g,
        h,
        a,
        b,
        gn,
        inv_gn,
        inv_a2,
        inv_b2,
        cos: dot(a, b) * inv_ab,
        sin: dot(cross(b, a), g) * inv_gn * inv_ab,
    }
}

/// Dihedral angle p0-p1-p2-p3 in rad, in (-pi, pi], with OpenMM's (IUPAC) sign convention.
pub fn dihedral(x: &[f64], atoms: [usize; 4]) -> f64 {
    let t = torsion_frame(x, atoms);
    t.sin.atan2(t.cos)
}

/// A periodic torsion term: periodicity, k (kJ/mol), cos(phase), sin(phase).
pub type Term = (u32, f64, f64, f64);

/// Periodic torsions grouped by their four atoms (a proper dihedral of AMBER carries up to four
/// terms), so that the geometry and its gradient are computed once per group. Phases are stored
/// as cos/sin, and cos(n phi), sin(n phi) come from the Chebyshev recurrence: no trigonometric
/// function is called during evaluation.
#[derive(Clone, Debug, Default)]
pub struct Torsions {
    /// Atoms of each group and the range of its terms.
    groups: Vec<([usize; 4], u32, u32)>,
    terms: Vec<Term>,
}

impl Torsions {
    /// Groups `torsions` by atoms (keeping the order of first appearance).
    pub fn new(torsions: &[Torsion]) -> Torsions {
        let mut order: Vec<[usize; 4]> = Vec::new();
        let mut by_atoms: std::collections::HashMap<[usize; 4], Vec<&Torsion>> =
            std::collections::HashMap::new();
        for t in torsions {
            by_atoms.entry(t.atoms).or_insert_with(|| {
                order.push(t.atoms);
                Vec::new()
            });
            by_atoms.get_mut(&t.atoms).unwrap().push(t);
        }
        let mut out = Torsions::default();
        for atoms in order {
            let start = out.terms.len() as u32;
            for t in &by_atoms[&atoms] {
                let n = t.periodicity.max(0) as u32;
                out.terms.push((n, t.k, t.phase.cos(), t.phase.sin()));
            }
            out.groups.push((atoms, start, out.terms.len() as u32));
        }
        out
    }

    /// Each group's four atoms and its terms (periodicity, k kJ/mol, cos(phase), sin(phase)),
    /// in order of first appearance.
    pub fn groups(&self) -> impl Iterator<Item = ([usize; 4], &[Term])> {
        self.groups
            .iter()
            .map(|&(atoms, t0, t1)| (atoms, &self.terms[t0 as usize..t1 as usize]))
    }

    /// Sum of k (1 + cos(n phi - phase)) in kJ/mol; adds dE/dx to `grad` when given.
    pub fn energy(&self, x: &[f64], mut grad: Option<&mut [f64]>) -> f64 {
        let mut e = 0.0;
        for &(atoms, t0, t1) in &self.groups {
            let [i0, i1, i2, i3] = atoms;
            let TorsionFrame {
                f,
                g: gv,
                h,
                a,
                b,
                gn,
                inv_gn,
                inv_a2,
                inv_b2,
                cos: c1,
                sin: s1,
            } = torsion_frame(x, atoms);
            let mut de = 0.0; // -dE/dphi (see below)
            for &(n, k, cp, sp) in &self.terms[t0 as usize..t1 as usize] {
                // (cos n phi, sin n phi); n = 0 gives (1, 0)
                let (mut cn, mut sn) = (1.0, 0.0);
                for _ in 0..n {
                    (cn, sn) = (cn * c1 - sn * s1, sn * c1 + cn * s1);
                }
                // cos(n phi - phase), sin(n phi - phase)
                e += k * (1.0 + cn * cp + sn * sp);
                de += k * n as f64 * (sn * cp - cn * sp);
            }
            if let Some(g) = grad.as_deref_mut() {
                // The geometric factors below are the gradient of -phi (Blondel & Karplus 1996
                // with the opposite sign convention), so they take -dE/dphi.
                let s0 = gn * inv_a2;
                let s3 = -gn * inv_b2;
                let fg = dot(f, gv) * inv_a2 * inv_gn;
                let hg = dot(h, gv) * inv_b2 * inv_gn;
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
            let tors = Torsions::new(&t);
            let e = tors.energy(&x, Some(&mut g));
            let phi = dihedral(&x, [0, 1, 2, 3]);
            assert!((e - 2.5 * (1.0 + (n as f64 * phi - phase).cos())).abs() < 1e-12);
            for k in 0..12 {
                let (mut xp, mut xm) = (x, x);
                xp[k] += 1e-6;
                xm[k] -= 1e-6;
                let fd = (tors.energy(&xp, None) - tors.energy(&xm, None)) / 2e-6;
                assert!(
                    (fd - g[k]).abs() < 1e-6 * g[k].abs().max(1.0),
                    "n={n} coord {k}: {fd} vs {}",
                    g[k]
                );
            }
        }
    }
}
