//! One conformation's energy in SIMD lanes: the pair terms (Coulomb, Lennard-Jones, GBSA-OBC)
//! with `S::LANES` partner atoms j of an atom i side by side, the same formulas and passes as the
//! scalar reference ([`super::EnergyModel`]'s `pairs`), laid out structure-of-arrays; the O(N)
//! terms in f64 lanes `B` ([`BondedLanes`]). f64 x 4 lanes are the double path, f32 x 8 the mixed
//! one (f32 pair math; energies summed per row of pairs, then in f64; Born radii, self and
//! surface terms in f64). Positions nm, energies kJ/mol, gradients kJ/mol/nm.
//!
//! The kernel is compiled for AVX2 + FMA (entered through a `#[target_feature]` function where
//! the CPU has them) and for any CPU (plain-array lanes), from the same source.

// Lane and coordinate loops index several arrays at once, on purpose: they are what vectorises.
#![allow(clippy::needless_range_loop)]

use super::bonded_lanes::BondedLanes;
use super::lanes::{Lane, Real};
use super::Energies;
use super::{gbsa, EnergyModel};
use crate::units::COULOMB;

/// Whether this CPU runs the AVX2 + FMA lanes (checked once, then cached by std).
pub fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Per-atom parameters and scratch memory of one conformation's evaluation in lanes.
#[derive(Clone, Debug)]
pub struct Lanes<S: Lane, B: Lane<T = f64>> {
    /// The O(N) terms, in f64 lanes.
    bonded: BondedLanes<B>,
    n: usize,
    /// Atoms plus L padding atoms (the last block of a row reaches past n); the padding atoms sit
    /// far apart and are masked out.
    np: usize,
    q: Vec<S::T>,
    sigma_half: Vec<S::T>,
    sqrt_eps4: Vec<S::T>,
    gb_or: Vec<S::T>,
    gb_sr: Vec<S::T>,
    gb_q: Vec<S::T>,
    /// Row i's exceptions (pairs without plain Coulomb + LJ) are `excl[excl_row[i]..excl_row[i +
    /// 1]]`: (first atom j0 of a lane block, a bit per excepted lane), blocks in increasing order;
    /// row i's blocks start at j0 = i + 1, i + 1 + L, ...
    excl_row: Vec<usize>,
    excl: Vec<(usize, u16)>,
    /// Lane offsets 0, 1, ..., S::LANES - 1.
    iota: S,
    // scratch
    x: [Vec<S::T>; 3],
    g: [Vec<S::T>; 3],
    isum: Vec<S::T>,
    born: Vec<S::T>,
    inv_born: Vec<S::T>,
    dedb: Vec<S::T>,
    dbdi: Vec<f64>,
    /// dI_i/dr and dI_j/dr of each lane block of pairs (when the model caches pairs).
    cache: Vec<[S; 2]>,
}

/// Energies of the pair terms, kJ/mol.
#[derive(Clone, Copy, Debug, Default)]
pub struct PairEnergies {
    pub coulomb: f64,
    pub lj: f64,
    pub gb_polar: f64,
    pub gb_sa: f64,
}

impl<S: Lane, B: Lane<T = f64>> Lanes<S, B> {
    /// The parameters of `m` padded to lanes, and scratch memory.
    pub fn new(m: &EnergyModel) -> Lanes<S, B> {
        let n = m.n;
        // every row's blocks start at j = i + 1; the last one may reach L - 1 atoms past n
        let np = n + S::LANES;
        // padding atoms: no charge, no LJ, and radii that keep their (masked) Born terms finite
        let pad_with = |v: &[f64], fill: f64| -> Vec<S::T> {
            let mut out: Vec<S::T> = v.iter().map(|&a| S::T::of(a)).collect();
            out.resize(np, S::T::of(fill));
            out
        };
        let pad = |v: &[f64]| pad_with(v, 0.0);
        assert!(S::LANES <= 16, "exception masks hold 16 lanes");
        let (mut excl_row, mut excl) = (vec![0], Vec::new());
        let mut p = 0;
        for i in 0..n {
            for j in i + 1..n {
                if !m.pair_nb[p] {
                    let j0 = i + 1 + (j - i - 1) / S::LANES * S::LANES;
                    let in_row = excl.len() > excl_row[i];
                    match excl.last_mut() {
                        Some((b, bits)) if in_row && *b == j0 => *bits |= 1 << (j - j0),
                        _ => excl.push((j0, 1u16 << (j - j0))),
                    }
                }
                p += 1;
            }
            excl_row.push(excl.len());
        }
        let blocks: usize = (0..n).map(|i| (n - i - 1).div_ceil(S::LANES)).sum();
        Lanes {
            bonded: BondedLanes::new(m),
            n,
            np,
            q: pad(&m.q.iter().map(|q| q * COULOMB.sqrt()).collect::<Vec<_>>()),
            sigma_half: pad(&m.sigma_half),
            sqrt_eps4: pad(&m.sqrt_eps4),
            gb_or: pad_with(&m.gb_or, 0.1),
            gb_sr: pad_with(&m.gb_sr, 0.1),
            gb_q: pad(&m.gb_q),
            excl_row,
            excl,
            iota: S::iota(),
            x: std::array::from_fn(|_| vec![S::T::default(); np]),
            g: std::array::from_fn(|_| vec![S::T::default(); np]),
            isum: vec![S::T::default(); np],
            born: vec![S::T::of(1.0); np],
            inv_born: vec![S::T::of(1.0); np],
            dedb: vec![S::T::default(); np],
            dbdi: vec![0.0; n],
            cache: match m.cache_pairs {
                true => vec![[S::c(0.0); 2]; blocks],
                false => Vec::new(),
            },
        }
    }

    /// Bytes of memory held.
    pub fn bytes(&self) -> usize {
        self.bonded.bytes()
            + std::mem::size_of::<S::T>() * self.np * 16
            + 8 * (self.dbdi.len() + self.excl_row.len())
            + std::mem::size_of::<(usize, u16)>() * self.excl.len()
            + std::mem::size_of::<[S; 2]>() * self.cache.len()
    }

    /// Adds the pair terms' gradient (kJ/mol/nm) at `x` (atoms x 3, nm) to `grad` when `GRAD`,
    /// and returns their energies.
    pub fn eval<const GRAD: bool>(
        &mut self,
        m: &EnergyModel,
        x: &[f64],
        grad: &mut [f64],
    ) -> Energies {
        #[cfg(target_arch = "x86_64")]
        if S::AVX2 || B::AVX2 {
            assert!(avx2_fma(), "AVX2 lanes on a CPU without AVX2 and FMA");
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            return unsafe { self.eval_avx2::<GRAD>(m, x, grad) };
        }
        self.eval_any::<GRAD>(m, x, grad)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn eval_avx2<const GRAD: bool>(
        &mut self,
        m: &EnergyModel,
        x: &[f64],
        grad: &mut [f64],
    ) -> Energies {
        self.eval_any::<GRAD>(m, x, grad)
    }

    #[inline(always)]
    fn eval_any<const GRAD: bool>(
        &mut self,
        m: &EnergyModel,
        x: &[f64],
        grad: &mut [f64],
    ) -> Energies {
        let (n, np) = (self.n, self.np);
        for a in 0..np {
            for k in 0..3 {
                self.x[k][a] = match a < n {
                    true => S::T::of(x[3 * a + k]),
                    // padding atoms: far from the molecule and from each other
                    false => S::T::of(20.0 + if k == 0 { a as f64 } else { 0.0 }),
                };
            }
        }
        if GRAD {
            for k in 0..3 {
                self.g[k].fill(S::T::default());
            }
        }
        let mut e = PairEnergies::default();
        // Without cutoffs (most setups) the passes skip the distance tests and reaction field.
        match m.nb_cut2.is_finite() || m.gb_cut2.is_finite() {
            true => self.coulomb_lj_born::<GRAD, true>(m, &mut e),
            false => self.coulomb_lj_born::<GRAD, false>(m, &mut e),
        }
        self.born_radii(m, &mut e);
        match m.gb_cut2.is_finite() {
            true => self.gb_pairs::<GRAD, true>(m, &mut e),
            false => self.gb_pairs::<GRAD, false>(m, &mut e),
        }
        if GRAD {
            match m.gb_cut2.is_finite() {
                true => self.born_chain::<true>(m),
                false => self.born_chain::<false>(m),
            }
            for a in 0..n {
                for k in 0..3 {
                    grad[3 * a + k] += self.g[k][a].f64();
                }
            }
        }
        let b = self.bonded.eval::<GRAD>(x, grad);
        Energies {
            bond: b.bond,
            angle: b.angle,
            torsion: b.torsion,
            coulomb_pair: e.coulomb,
            lj_pair: e.lj,
            coulomb_14: b.coulomb_14,
            lj_14: b.lj_14,
            gb_polar: e.gb_polar,
            gb_sa: e.gb_sa,
        }
    }

    /// Lane mask of the real atoms (j < n) of the block starting at `j0` (every lane but in a
    /// row's last block).
    #[inline(always)]
    fn partners(&self, j0: usize) -> S::Mask {
        if j0 + S::LANES <= self.n {
            return S::clear_bits(0);
        }
        let j = S::splat(S::T::of(j0 as f64)) + self.iota;
        j.lt(S::splat(S::T::of(self.n as f64)))
    }

    /// `mask` where r^2 < `cut2`, the test skipped without cutoffs (`CUT` false).
    #[inline(always)]
    fn within<const CUT: bool>(mask: S::Mask, r2: S, cut2: S) -> S::Mask {
        match CUT {
            true => mask & r2.lt(cut2),
            false => mask,
        }
    }

    /// Displacement i -> j of the block at `j0` and its squared length.
    #[inline(always)]
    fn delta(&self, xi: [S; 3], j0: usize) -> ([S; 3], S) {
        let d = [
            S::load(&self.x[0], j0) - xi[0],
            S::load(&self.x[1], j0) - xi[1],
            S::load(&self.x[2], j0) - xi[2],
        ];
        let r2 = d[0].mul_add(d[0], d[1].mul_add(d[1], d[2] * d[2]));
        (d, r2)
    }

    #[inline(always)]
    fn xi(&self, i: usize) -> [S; 3] {
        [
            S::splat(self.x[0][i]),
            S::splat(self.x[1][i]),
            S::splat(self.x[2][i]),
        ]
    }

    /// Adds `s d` to atom j's block and subtracts it from `gi`.
    #[inline(always)]
    fn push_grad(&mut self, gi: &mut [S; 3], s: S, d: &[S; 3], j0: usize) {
        for k in 0..3 {
            let f = s * d[k];
            f.add_to(&mut self.g[k], j0);
            gi[k] -= f;
        }
    }

    /// Pass 1: Coulomb + LJ and the Born integrals I_i.
    #[inline(always)]
    fn coulomb_lj_born<const GRAD: bool, const CUT: bool>(
        &mut self,
        m: &EnergyModel,
        e: &mut PairEnergies,
    ) {
        let n = self.n;
        let (nb_cut2, krf, crf, gb_cut2) =
            (S::c(m.nb_cut2), S::c(m.krf), S::c(m.crf), S::c(m.gb_cut2));
        let zero = S::c(0.0);
        self.isum.fill(S::T::default());
        let mut block = 0;
        for i in 0..n {
            let xi = self.xi(i);
            let (qi, shi, sei) = (
                S::splat(self.q[i]),
                S::splat(self.sigma_half[i]),
                S::splat(self.sqrt_eps4[i]),
            );
            let (ori, sri) = (S::splat(self.gb_or[i]), S::splat(self.gb_sr[i]));
            let (mut ec, mut elj, mut isum_i) = (zero, zero, zero);
            let mut gi = [zero; 3];
            let mut ex = self.excl_row[i];
            for j0 in (i + 1..n).step_by(S::LANES) {
                let (d, r2) = self.delta(xi, j0);
                let inv_r = r2.rsqrt();
                let r = r2 * inv_r;
                let partners = self.partners(j0);
                let mut excepted = 0u16;
                if ex < self.excl_row[i + 1] && self.excl[ex].0 == j0 {
                    excepted = self.excl[ex].1;
                    ex += 1;
                }
                let plain = S::clear_bits(excepted);
                let nbm = Self::within::<CUT>(partners & plain, r2, nb_cut2);
                let inv_r2 = inv_r * inv_r;
                let sig = shi + S::load(&self.sigma_half, j0);
                let s2 = sig * sig * inv_r2;
                let s6 = s2 * s2 * s2;
                let eps4 = sei * S::load(&self.sqrt_eps4, j0);
                let qq = qi * S::load(&self.q, j0);
                let coulomb = match CUT {
                    true => qq * (inv_r + krf * r2 - crf),
                    false => qq * inv_r,
                };
                ec += coulomb.or_zero(nbm);
                elj += (eps4 * (s6 * s6 - s6)).or_zero(nbm);
                if GRAD {
                    let dc = match CUT {
                        true => qq * (S::c(2.0) * krf * r2 - inv_r),
                        false => -qq * inv_r,
                    };
                    let f = (dc - eps4 * (S::c(12.0) * s6 * s6 - S::c(6.0) * s6)) * inv_r2;
                    self.push_grad(&mut gi, f.or_zero(nbm), &d, j0);
                }
                let gbm = Self::within::<CUT>(partners, r2, gb_cut2);
                let (ti, dti) = born_pair(r, inv_r, ori, S::load(&self.gb_sr, j0), m.gb_engulf);
                let (tj, dtj) = born_pair(r, inv_r, S::load(&self.gb_or, j0), sri, m.gb_engulf);
                isum_i += ti.or_zero(gbm);
                tj.or_zero(gbm).add_to(&mut self.isum, j0);
                if GRAD && !self.cache.is_empty() {
                    self.cache[block] = [dti.or_zero(gbm), dtj.or_zero(gbm)];
                }
                block += 1;
            }
            self.isum[i] += S::T::of(isum_i.sum());
            if GRAD {
                for k in 0..3 {
                    self.g[k][i] += S::T::of(gi[k].sum());
                }
            }
            e.coulomb += ec.sum();
            e.lj += elj.sum();
        }
    }

    /// Pass 2: Born radii (f64), self and surface terms.
    fn born_radii(&mut self, m: &EnergyModel, e: &mut PairEnergies) {
        for i in 0..self.n {
            let (b, db) = gbsa::born_radius(
                self.isum[i].f64(),
                m.gb_or[i],
                m.gb_radius[i],
                m.alpha,
                m.beta,
                m.gamma,
            );
            self.born[i] = S::T::of(b);
            self.inv_born[i] = S::T::of(1.0 / b);
            self.dbdi[i] = db;
            let q2 = m.gb_q[i] * m.gb_q[i];
            let inv_b2 = 1.0 / (b * b);
            let esa = m.gb_sa[i] * inv_b2 * inv_b2 * inv_b2;
            e.gb_polar += 0.5 * m.gb_pref * q2 / b;
            e.gb_sa += esa;
            self.dedb[i] = S::T::of(-0.5 * m.gb_pref * q2 * inv_b2 - 6.0 * esa / b);
        }
    }

    /// Pass 3: the pair GB terms, and dE/dB.
    #[inline(always)]
    fn gb_pairs<const GRAD: bool, const CUT: bool>(
        &mut self,
        m: &EnergyModel,
        e: &mut PairEnergies,
    ) {
        let (gb_cut2, shift, zero, quarter) =
            (S::c(m.gb_cut2), S::c(m.gb_shift), S::c(0.0), S::c(0.25));
        let exp_min = S::c(S::T::EXP_MIN);
        for i in 0..self.n {
            let xi = self.xi(i);
            let (bi, inv_bi) = (S::splat(self.born[i]), S::splat(self.inv_born[i]));
            let qi = S::splat(S::T::of(m.gb_pref)) * S::splat(self.gb_q[i]);
            let (mut polar, mut dedb_i) = (zero, zero);
            let mut gi = [zero; 3];
            for j0 in (i + 1..self.n).step_by(S::LANES) {
                let (d, r2) = self.delta(xi, j0);
                let gbm = Self::within::<CUT>(self.partners(j0), r2, gb_cut2);
                let bj = S::load(&self.born, j0);
                let dd = quarter * r2 * inv_bi * S::load(&self.inv_born, j0);
                let ex = S::select(dd.lt(-exp_min), -dd, exp_min).exp();
                let inv_f = (r2 + bi * bj * ex).rsqrt();
                let qq = qi * S::load(&self.gb_q, j0);
                polar += (qq * (inv_f - shift)).or_zero(gbm);
                if GRAD {
                    let de_df = -qq * inv_f * inv_f;
                    let common = (de_df * ex * (S::c(1.0) + dd) * S::c(0.5) * inv_f).or_zero(gbm);
                    dedb_i += common * bj;
                    (common * bi).add_to(&mut self.dedb, j0);
                    let f = de_df * (S::c(1.0) - quarter * ex) * inv_f;
                    self.push_grad(&mut gi, f.or_zero(gbm), &d, j0);
                }
            }
            e.gb_polar += polar.sum();
            if GRAD {
                self.dedb[i] += S::T::of(dedb_i.sum());
                for k in 0..3 {
                    self.g[k][i] += S::T::of(gi[k].sum());
                }
            }
        }
    }

    /// Pass 4: the chain rule through the Born radii, dE/dI_i = dE/dB_i dB_i/dI_i.
    #[inline(always)]
    fn born_chain<const CUT: bool>(&mut self, m: &EnergyModel) {
        for i in 0..self.n {
            self.dedb[i] = S::T::of(self.dedb[i].f64() * self.dbdi[i]);
        }
        let (gb_cut2, zero) = (S::c(m.gb_cut2), S::c(0.0));
        let mut block = 0;
        for i in 0..self.n {
            let xi = self.xi(i);
            let dei = S::splat(self.dedb[i]);
            let (ori, sri) = (S::splat(self.gb_or[i]), S::splat(self.gb_sr[i]));
            let mut gi = [zero; 3];
            for j0 in (i + 1..self.n).step_by(S::LANES) {
                let (d, r2) = self.delta(xi, j0);
                let gbm = Self::within::<CUT>(self.partners(j0), r2, gb_cut2);
                let inv_r = r2.rsqrt();
                let [dti, dtj] = match self.cache.is_empty() {
                    false => self.cache[block],
                    true => {
                        let r = r2 * inv_r;
                        let dti = born_pair(r, inv_r, ori, S::load(&self.gb_sr, j0), m.gb_engulf).1;
                        let dtj = born_pair(r, inv_r, S::load(&self.gb_or, j0), sri, m.gb_engulf).1;
                        [dti, dtj]
                    }
                };
                block += 1;
                let f = ((dei * dti + S::load(&self.dedb, j0) * dtj) * inv_r).or_zero(gbm);
                self.push_grad(&mut gi, f, &d, j0);
            }
            for k in 0..3 {
                self.g[k][i] += S::T::of(gi[k].sum());
            }
        }
    }
}

/// [`gbsa::born_pair`] in lanes: every branch computed and selected.
#[inline(always)]
pub(super) fn born_pair<S: Lane>(r: S, inv_r: S, or_i: S, sr_j: S, engulf: bool) -> (S, S) {
    let (zero, one, half, quarter) = (S::c(0.0), S::c(1.0), S::c(0.5), S::c(0.25));
    let u = r + sr_j;
    let active = or_i.lt(u);
    let d = r - sr_j;
    let ad = d.abs();
    let at_or = ad.le(or_i);
    let l = S::select(at_or, or_i, ad);
    let dl = S::select(at_or, zero, S::select(zero.le(d), one, -one));
    let inv_lu = one / (l * u);
    let inv_l = u * inv_lu;
    let inv_u = l * inv_lu;
    let inv_l2 = inv_l * inv_l;
    let inv_u2 = inv_u * inv_u;
    let s2 = sr_j * sr_j;
    let a = r - s2 * inv_r;
    let log_lu = (l * inv_u).ln();
    let mut t = inv_l - inv_u + quarter * a * (inv_u2 - inv_l2) + half * log_lu * inv_r;
    let dt_dr =
        quarter * (one + s2 * inv_r * inv_r) * (inv_u2 - inv_l2) - half * log_lu * inv_r * inv_r;
    let dt_du = inv_u2 - half * a * inv_u2 * inv_u - half * inv_u * inv_r;
    let dt_dl = -inv_l2 + half * a * inv_l2 * inv_l + half * inv_l * inv_r;
    let mut dt = dt_dr + dt_du + dt_dl * dl;
    if engulf {
        let inside = or_i.lt(sr_j - r);
        t += (S::c(2.0) * (one / or_i - inv_l)).or_zero(inside);
        dt += (S::c(2.0) * dl * inv_l2).or_zero(inside);
    }
    ((half * t).or_zero(active), (half * dt).or_zero(active))
}
