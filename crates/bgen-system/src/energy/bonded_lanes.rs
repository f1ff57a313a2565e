//! The O(N) terms (bonds, angles, torsions, scaled 1-4 pairs) with `LANES` terms side by side in
//! f64 lanes: positions gathered per lane, gradients scattered back. The same formulas as
//! [`super::bonded`] and the exceptions of [`super::EnergyModel`], rearranged only where that is
//! exact algebra: a dihedral's periodic terms are summed as one Fourier series in phi. Padding
//! lanes repeat a real term with zero force constant. Positions nm, energies kJ/mol, gradients
//! kJ/mol/nm.

// Lane and coordinate loops index several arrays at once, on purpose: they are what vectorises.
#![allow(clippy::needless_range_loop)]

use super::bonded::Torsions;
use super::lanes::Lane;
use super::EnergyModel;

/// Terms of one kind in lane blocks: atom indices (`A` per term) and parameters (`P` per term),
/// each as blocks of `LANES` lanes.
#[derive(Clone, Debug)]
struct Blocks<const A: usize, const P: usize> {
    atoms: Vec<[usize; A]>,
    params: [Vec<f64>; P],
}

impl<const A: usize, const P: usize> Blocks<A, P> {
    /// `terms` padded to whole blocks of `lanes` by copies of the first with zero parameters.
    fn new(mut terms: Vec<([usize; A], [f64; P])>, lanes: usize) -> Blocks<A, P> {
        if let Some(&(atoms, _)) = terms.first() {
            terms.resize(terms.len().div_ceil(lanes) * lanes, (atoms, [0.0; P]));
        }
        Blocks {
            atoms: terms.iter().map(|t| t.0).collect(),
            params: std::array::from_fn(|k| terms.iter().map(|t| t.1[k]).collect()),
        }
    }

    /// Bytes of memory held (8-byte indices and parameters).
    fn bytes(&self) -> usize {
        8 * (A + P) * self.atoms.len()
    }

    /// Parameter `k` of the terms of lane block `block`.
    #[inline(always)]
    fn param<S: Lane<T = f64>>(&self, k: usize, block: usize) -> S {
        S::load(&self.params[k], block * S::LANES)
    }
}

/// The O(N) terms of a model in lanes of `S`.
#[derive(Clone, Debug)]
pub struct BondedLanes<S> {
    /// (i, j), (length, k)
    bonds: Blocks<2, 2>,
    /// (i, j, k), (angle, k)
    angles: Blocks<3, 2>,
    /// (p0, p1, p2, p3), (c_0, a_1, b_1, ..., a_M, b_M): E = c_0 + sum_m a_m cos(m phi) +
    /// b_m sin(m phi)
    torsions: Blocks<4, 13>,
    /// Highest periodicity (M <= 6).
    max_n: usize,
    /// (i, j), (q_i q_j COULOMB scale, sigma, 4 epsilon)
    pairs14: Blocks<2, 3>,
    _lane: std::marker::PhantomData<S>,
}

/// Energies of the O(N) terms, kJ/mol.
#[derive(Clone, Copy, Debug, Default)]
pub struct BondedEnergies {
    pub bond: f64,
    pub angle: f64,
    pub torsion: f64,
    pub coulomb_14: f64,
    pub lj_14: f64,
}

impl<S: Lane<T = f64>> BondedLanes<S> {
    pub fn new(m: &EnergyModel) -> BondedLanes<S> {
        let l = S::LANES;
        let bonds = m
            .bonds
            .iter()
            .map(|b| ([b.i, b.j], [b.length, b.k]))
            .collect();
        let angles = m.angles.iter().map(|a| (a.atoms, [a.angle, a.k])).collect();
        let (torsions, max_n) = fourier(&m.torsions);
        let pairs14 = m
            .pairs14
            .iter()
            .map(|p| ([p.i, p.j], [p.qq, p.sigma, p.eps4]))
            .collect();
        BondedLanes {
            bonds: Blocks::new(bonds, l),
            angles: Blocks::new(angles, l),
            torsions: Blocks::new(torsions, l),
            max_n,
            pairs14: Blocks::new(pairs14, l),
            _lane: std::marker::PhantomData,
        }
    }

    /// Bytes of memory held.
    pub fn bytes(&self) -> usize {
        self.bonds.bytes() + self.angles.bytes() + self.torsions.bytes() + self.pairs14.bytes()
    }

    /// Energies of the O(N) terms at `x` (atoms x 3, nm); adds their gradient to `grad` when
    /// `GRAD`.
    #[inline(always)]
    pub fn eval<const GRAD: bool>(&self, x: &[f64], grad: &mut [f64]) -> BondedEnergies {
        BondedEnergies {
            bond: self.bonds::<GRAD>(x, grad),
            angle: self.angles::<GRAD>(x, grad),
            torsion: self.torsions::<GRAD>(x, grad),
            ..self.pairs14::<GRAD>(x, grad)
        }
    }

    #[inline(always)]
    fn bonds<const GRAD: bool>(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        let mut e = S::c(0.0);
        for (b, atoms) in self.bonds.atoms.chunks_exact(S::LANES).enumerate() {
            let [pi, pj] = gather::<S, _>(x, atoms);
            let d = sub(pi, pj);
            let r = dot(d, d).sqrt();
            let (length, k) = (self.bonds.param::<S>(0, b), self.bonds.param::<S>(1, b));
            let dr = r - length;
            e += S::c(0.5) * k * dr * dr;
            if GRAD {
                let s = k * dr / r;
                scatter(grad, atoms, 0, scale(d, s));
                scatter(grad, atoms, 1, scale(d, -s));
            }
        }
        e.sum()
    }

    #[inline(always)]
    fn angles<const GRAD: bool>(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        let mut e = S::c(0.0);
        for (b, atoms) in self.angles.atoms.chunks_exact(S::LANES).enumerate() {
            let [pi, pj, pk] = gather::<S, _>(x, atoms);
            let (u, v) = (sub(pi, pj), sub(pk, pj));
            let p = cross(u, v);
            let pn = dot(p, p).sqrt();
            let theta = atan2(pn, dot(u, v));
            let (angle, k) = (self.angles.param::<S>(0, b), self.angles.param::<S>(1, b));
            let d = theta - angle;
            e += S::c(0.5) * k * d * d;
            if GRAD {
                // dtheta/du = u x p / (|u|^2 |p|), dtheta/dv = p x v / (|v|^2 |p|)
                let pn = S::select(pn.lt(S::c(1e-30)), S::c(1e-30), pn);
                let de = k * d;
                let (gu, gv) = (cross(u, p), cross(p, v));
                let su = de / (dot(u, u) * pn);
                let sv = de / (dot(v, v) * pn);
                scatter(grad, atoms, 0, scale(gu, su));
                scatter(grad, atoms, 2, scale(gv, sv));
                let gj = [
                    -(gu[0] * su + gv[0] * sv),
                    -(gu[1] * su + gv[1] * sv),
                    -(gu[2] * su + gv[2] * sv),
                ];
                scatter(grad, atoms, 1, gj);
            }
        }
        e.sum()
    }

    #[inline(always)]
    fn torsions<const GRAD: bool>(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        let mut e = S::c(0.0);
        for (b, atoms) in self.torsions.atoms.chunks_exact(S::LANES).enumerate() {
            let [p0, p1, p2, p3] = gather::<S, _>(x, atoms);
            let (f, g, h) = (sub(p0, p1), sub(p1, p2), sub(p3, p2));
            let (a, bv) = (cross(f, g), cross(h, g));
            let gn = dot(g, g).sqrt();
            let tiny = S::c(1e-300);
            let (a2, b2) = (dot(a, a), dot(bv, bv));
            let inv_a2 = S::c(1.0) / S::select(a2.lt(tiny), tiny, a2);
            let inv_b2 = S::c(1.0) / S::select(b2.lt(tiny), tiny, b2);
            let inv_gn = S::c(1.0) / gn;
            let inv_ab = (inv_a2 * inv_b2).sqrt();
            let c1 = dot(a, bv) * inv_ab;
            let s1 = dot(cross(bv, a), g) * inv_gn * inv_ab;
            // E = c0 + sum_m a_m cos(m phi) + b_m sin(m phi); de = -dE/dphi
            let mut en = self.torsions.param::<S>(0, b);
            let mut de = S::c(0.0);
            let (mut cn, mut sn) = (S::c(1.0), S::c(0.0));
            for m in 1..=self.max_n {
                (cn, sn) = (cn * c1 - sn * s1, sn * c1 + cn * s1);
                let (am, bm) = (
                    self.torsions.param::<S>(2 * m - 1, b),
                    self.torsions.param::<S>(2 * m, b),
                );
                en += am * cn + bm * sn;
                de += S::c(m as f64) * (am * sn - bm * cn);
            }
            e += en;
            if GRAD {
                let s0 = gn * inv_a2;
                let s3 = -gn * inv_b2;
                let fg = dot(f, g) * inv_a2 * inv_gn;
                let hg = dot(h, g) * inv_b2 * inv_gn;
                scatter(grad, atoms, 0, scale(a, de * s0));
                scatter(grad, atoms, 3, scale(bv, de * s3));
                let (k1, k2) = (de * (-s0 - fg), de * hg);
                let (k3, k4) = (de * (-s3 - hg), de * fg);
                let g1 = [
                    k1 * a[0] + k2 * bv[0],
                    k1 * a[1] + k2 * bv[1],
                    k1 * a[2] + k2 * bv[2],
                ];
                let g2 = [
                    k3 * bv[0] + k4 * a[0],
                    k3 * bv[1] + k4 * a[1],
                    k3 * bv[2] + k4 * a[2],
                ];
                scatter(grad, atoms, 1, g1);
                scatter(grad, atoms, 2, g2);
            }
        }
        e.sum()
    }

    #[inline(always)]
    fn pairs14<const GRAD: bool>(&self, x: &[f64], grad: &mut [f64]) -> BondedEnergies {
        let (mut ec, mut elj) = (S::c(0.0), S::c(0.0));
        for (b, atoms) in self.pairs14.atoms.chunks_exact(S::LANES).enumerate() {
            let [pi, pj] = gather::<S, _>(x, atoms);
            let d = sub(pj, pi);
            let inv_r2 = S::c(1.0) / dot(d, d);
            let inv_r = inv_r2.sqrt();
            let (qq, sigma, eps4) = (
                self.pairs14.param::<S>(0, b),
                self.pairs14.param::<S>(1, b),
                self.pairs14.param::<S>(2, b),
            );
            let s2 = sigma * sigma * inv_r2;
            let s6 = s2 * s2 * s2;
            let c = qq * inv_r;
            ec += c;
            elj += eps4 * (s6 * s6 - s6);
            if GRAD {
                let s = (-c - eps4 * (S::c(12.0) * s6 * s6 - S::c(6.0) * s6)) * inv_r2;
                scatter(grad, atoms, 1, scale(d, s));
                scatter(grad, atoms, 0, scale(d, -s));
            }
        }
        BondedEnergies {
            coulomb_14: ec.sum(),
            lj_14: elj.sum(),
            ..Default::default()
        }
    }
}

/// A dihedral's four atoms and its Fourier coefficients (c_0, a_1, b_1, ..., a_6, b_6).
type Series = ([usize; 4], [f64; 13]);

/// Each dihedral's terms ([`Torsions`], grouped by atoms) as one Fourier series:
/// c_0 = sum k (1 + cos phase [n = 0]), a_n += k cos(phase), b_n += k sin(phase).
fn fourier(torsions: &Torsions) -> (Vec<Series>, usize) {
    let mut max_n = 0;
    let series = torsions
        .groups()
        .map(|(atoms, terms)| {
            let mut c = [0.0; 13];
            for &(n, k, cp, sp) in terms {
                let n = n as usize;
                assert!(n <= 6, "torsion periodicity {n} above 6");
                max_n = max_n.max(n);
                if n == 0 {
                    c[0] += k * (1.0 + cp);
                } else {
                    c[0] += k;
                    c[2 * n - 1] += k * cp;
                    c[2 * n] += k * sp;
                }
            }
            (atoms, c)
        })
        .collect();
    (series, max_n)
}

/// The positions of each role's atom across the block's lanes.
#[inline(always)]
fn gather<S: Lane<T = f64>, const A: usize>(x: &[f64], atoms: &[[usize; A]]) -> [[S; 3]; A] {
    let mut out = [[S::c(0.0); 3]; A];
    for (role, o) in out.iter_mut().enumerate() {
        let mut v = [[0.0; 16]; 3];
        for (l, t) in atoms.iter().enumerate() {
            let p = &x[3 * t[role]..3 * t[role] + 3];
            v[0][l] = p[0];
            v[1][l] = p[1];
            v[2][l] = p[2];
        }
        *o = [S::load(&v[0], 0), S::load(&v[1], 0), S::load(&v[2], 0)];
    }
    out
}

/// Adds `g` to the gradient of each lane's atom in `role`.
#[inline(always)]
fn scatter<S: Lane<T = f64>, const A: usize>(
    grad: &mut [f64],
    atoms: &[[usize; A]],
    role: usize,
    g: [S; 3],
) {
    let mut v = [[0.0; 16]; 3];
    g[0].store(&mut v[0], 0);
    g[1].store(&mut v[1], 0);
    g[2].store(&mut v[2], 0);
    for (l, t) in atoms.iter().enumerate() {
        let p = &mut grad[3 * t[role]..3 * t[role] + 3];
        p[0] += v[0][l];
        p[1] += v[1][l];
        p[2] += v[2][l];
    }
}

#[inline(always)]
fn sub<S: Lane>(a: [S; 3], b: [S; 3]) -> [S; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
#[inline(always)]
fn dot<S: Lane>(a: [S; 3], b: [S; 3]) -> S {
    a[0].mul_add(b[0], a[1].mul_add(b[1], a[2] * b[2]))
}
#[inline(always)]
fn cross<S: Lane>(a: [S; 3], b: [S; 3]) -> [S; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}
#[inline(always)]
fn scale<S: Lane>(a: [S; 3], s: S) -> [S; 3] {
    [a[0] * s, a[1] * s, a[2] * s]
}

/// atan2(y, x) for y >= 0, in [0, pi]: the argument reduced to [0, tan(pi/8)] and a degree-10
/// polynomial in its square (least-squares fit on Chebyshev nodes, relative error 5e-18).
#[inline(always)]
pub fn atan2<S: Lane>(y: S, x: S) -> S {
    #[allow(clippy::excessive_precision)] // the fit's digits, as computed
    const C: [f64; 11] = [
        -0.333_333_333_333_333_302_72,
        0.199_999_999_999_956_505_77,
        -0.142_857_142_846_913_806_17,
        0.111_111_110_171_003_266_38,
        -0.090_909_046_476_956_795_219,
        0.076_921_846_993_717_772_842,
        -0.066_645_313_698_050_088_496,
        0.058_583_118_105_011_530_387,
        -0.050_862_548_858_231_431_294,
        0.039_253_696_320_618_562_961,
        -0.019_202_529_268_412_281_379,
    ];
    let ax = x.abs();
    let steep = ax.lt(y);
    let (num, den) = (S::select(steep, ax, y), S::select(steep, y, ax));
    let den = S::select(den.lt(S::c(1e-300)), S::c(1e-300), den);
    let t = num / den; // [0, 1]
    let mid = S::c(0.414_213_562_373_095_1).lt(t);
    let t = S::select(mid, (t - S::c(1.0)) / (t + S::c(1.0)), t);
    let z = t * t;
    let mut p = S::c(C[10]);
    for &c in C[..10].iter().rev() {
        p = p.mul_add(z, S::c(c));
    }
    let mut a = (t * z).mul_add(p, t);
    a += S::select(mid, S::c(std::f64::consts::FRAC_PI_4), S::c(0.0));
    a = S::select(steep, S::c(std::f64::consts::FRAC_PI_2) - a, a);
    S::select(x.lt(S::c(0.0)), S::c(std::f64::consts::PI) - a, a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::lanes::V;

    #[test]
    fn atan2_matches_libm_on_the_upper_half_plane() {
        let mut worst = 0.0f64;
        for k in 0..20_000 {
            let phi = std::f64::consts::PI * k as f64 / 19_999.0;
            let r = 0.1 + (k % 7) as f64;
            let (y, x) = (r * phi.sin().abs(), r * phi.cos());
            let got = atan2(V::<f64, 1>([y]), V([x])).0[0];
            let want = y.atan2(x);
            worst = worst.max((got - want).abs() / f64::EPSILON);
        }
        assert!(worst < 4.0, "atan2 off by {worst} ulp of 1");
    }
}
