//! Several conformations' energies at once, one conformation per SIMD lane: the pair terms
//! (Coulomb, Lennard-Jones, GBSA-OBC) walk the pairs i < j one at a time, each pair's
//! parameters the same in every lane, so that no lane idles at the end of a row, no row ends in
//! a horizontal sum and no exception needs a mask. The formulas and passes are those of
//! [`super::simd`] (and of the scalar reference); the O(N) terms run per conformation in
//! [`BondedLanes`]. Positions nm, energies kJ/mol, gradients kJ/mol/nm.
//!
//! For batches: replica-exchange rungs, independent replicas, SMC particles, SNIS samples.
//! f64 lanes are the double path, f32 lanes the mixed one (f32 pair math, each row's sums then
//! in f64; Born radii, self and surface terms in f64).

// Lane and coordinate loops index several arrays at once, on purpose: they are what vectorises.
#![allow(clippy::needless_range_loop)]

use super::bonded_lanes::BondedLanes;
use super::lanes::{Lane, Real};
use super::simd::{avx2_fma, born_pair};
use super::{gbsa, Energies, EnergyModel};
use crate::units::COULOMB;

/// Most lanes of any [`Lane`] type.
const MAX_LANES: usize = 16;

/// Parameters and scratch memory of `S::LANES` conformations' evaluation, one per lane.
#[derive(Clone, Debug)]
pub struct Batch<S: Lane, B: Lane<T = f64>> {
    bonded: BondedLanes<B>,
    n: usize,
    q: Vec<S::T>,
    sigma_half: Vec<S::T>,
    sqrt_eps4: Vec<S::T>,
    gb_or: Vec<S::T>,
    gb_sr: Vec<S::T>,
    gb_q: Vec<S::T>,
    // scratch, atom a's lanes at a * LANES..
    x: [Vec<S::T>; 3],
    g: [Vec<S::T>; 3],
    isum: Vec<S::T>,
    born: Vec<S::T>,
    inv_born: Vec<S::T>,
    dedb: Vec<S::T>,
    dbdi: Vec<f64>,
    /// dI_i/dr and dI_j/dr of each pair (when the model caches pairs).
    cache: Vec<[S; 2]>,
    /// One conformation's gradient of the bonded terms.
    one_g: Vec<f64>,
}

/// The pair terms' energies of each lane, kJ/mol.
#[derive(Clone, Copy, Debug, Default)]
struct LaneEnergies {
    coulomb: [f64; MAX_LANES],
    lj: [f64; MAX_LANES],
    gb_polar: [f64; MAX_LANES],
    gb_sa: [f64; MAX_LANES],
}

/// Adds each lane of `v` to `acc`, in f64.
#[inline(always)]
fn add_lanes<S: Lane>(acc: &mut [f64; MAX_LANES], v: S) {
    let mut t = [S::T::default(); MAX_LANES];
    v.store(&mut t, 0);
    for l in 0..S::LANES {
        acc[l] += t[l].f64();
    }
}

impl<S: Lane, B: Lane<T = f64>> Batch<S, B> {
    /// The parameters of `m` and scratch memory for `S::LANES` conformations.
    pub fn new(m: &EnergyModel) -> Batch<S, B> {
        assert!(S::LANES <= MAX_LANES);
        let (n, l) = (m.n, S::LANES);
        let of = |v: &[f64]| -> Vec<S::T> { v.iter().map(|&a| S::T::of(a)).collect() };
        let lanes = || vec![S::T::default(); n * l];
        let pairs = n * n.saturating_sub(1) / 2;
        Batch {
            bonded: BondedLanes::new(m),
            n,
            q: of(&m.q.iter().map(|q| q * COULOMB.sqrt()).collect::<Vec<_>>()),
            sigma_half: of(&m.sigma_half),
            sqrt_eps4: of(&m.sqrt_eps4),
            gb_or: of(&m.gb_or),
            gb_sr: of(&m.gb_sr),
            gb_q: of(&m.gb_q),
            x: std::array::from_fn(|_| lanes()),
            g: std::array::from_fn(|_| lanes()),
            isum: lanes(),
            born: lanes(),
            inv_born: lanes(),
            dedb: lanes(),
            dbdi: vec![0.0; n * l],
            // The per-conformation kernels' budget of 48 bytes a pair, in bytes.
            cache: match m.cache_pairs
                && pairs * std::mem::size_of::<[S; 2]>() <= 48 * super::MAX_CACHED_PAIRS
            {
                true => vec![[S::c(0.0); 2]; pairs],
                false => Vec::new(),
            },
            one_g: vec![0.0; 3 * n],
        }
    }

    /// Bytes of memory held.
    pub fn bytes(&self) -> usize {
        self.bonded.bytes()
            + std::mem::size_of::<S::T>() * (6 * self.n + 10 * self.n * S::LANES)
            + 8 * (self.dbdi.len() + 6 * self.n)
            + std::mem::size_of::<[S; 2]>() * self.cache.len()
    }

    /// Energies of the conformations in `x` (k x atoms x 3, nm; k at most `S::LANES`) into
    /// `out` (k), and with `GRAD` their gradients (kJ/mol/nm) into `grad` (same shape as `x`,
    /// overwritten).
    pub fn eval<const GRAD: bool>(
        &mut self,
        m: &EnergyModel,
        x: &[f64],
        grad: &mut [f64],
        out: &mut [Energies],
    ) {
        #[cfg(target_arch = "x86_64")]
        if S::AVX512 || B::AVX512 {
            assert!(
                super::lanes::avx512::available(),
                "AVX-512 lanes on a CPU without AVX-512"
            );
            // SAFETY: the CPU has AVX-512 F and DQ, AVX2 and FMA, checked just above.
            return unsafe { self.eval_avx512::<GRAD>(m, x, grad, out) };
        }
        #[cfg(target_arch = "x86_64")]
        if S::AVX2 || B::AVX2 {
            assert!(avx2_fma(), "AVX2 lanes on a CPU without AVX2 and FMA");
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            return unsafe { self.eval_avx2::<GRAD>(m, x, grad, out) };
        }
        self.eval_any::<GRAD>(m, x, grad, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn eval_avx2<const GRAD: bool>(
        &mut self,
        m: &EnergyModel,
        x: &[f64],
        grad: &mut [f64],
        out: &mut [Energies],
    ) {
        self.eval_any::<GRAD>(m, x, grad, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
    unsafe fn eval_avx512<const GRAD: bool>(
        &mut self,
        m: &EnergyModel,
        x: &[f64],
        grad: &mut [f64],
        out: &mut [Energies],
    ) {
        self.eval_any::<GRAD>(m, x, grad, out)
    }

    #[inline(always)]
    fn eval_any<const GRAD: bool>(
        &mut self,
        m: &EnergyModel,
        x: &[f64],
        grad: &mut [f64],
        out: &mut [Energies],
    ) {
        let (n, l, d) = (self.n, S::LANES, 3 * self.n);
        let k = out.len();
        assert!(
            k >= 1 && k <= l && x.len() == k * d,
            "1 to {l} conformations"
        );
        // Lanes past k repeat the last conformation (their results are dropped).
        for a in 0..n {
            for c in 0..3 {
                for lane in 0..l {
                    self.x[c][a * l + lane] = S::T::of(x[lane.min(k - 1) * d + 3 * a + c]);
                }
            }
        }
        if GRAD {
            for c in 0..3 {
                self.g[c].fill(S::T::default());
            }
        }
        let mut e = LaneEnergies::default();
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
        }
        for lane in 0..k {
            let xs = &x[lane * d..(lane + 1) * d];
            self.one_g.fill(0.0);
            let b = self.bonded.eval::<GRAD>(xs, &mut self.one_g);
            if GRAD {
                let gs = &mut grad[lane * d..(lane + 1) * d];
                for a in 0..n {
                    for c in 0..3 {
                        gs[3 * a + c] = self.one_g[3 * a + c] + self.g[c][a * l + lane].f64();
                    }
                }
            }
            out[lane] = Energies {
                bond: b.bond,
                angle: b.angle,
                torsion: b.torsion,
                coulomb_pair: e.coulomb[lane],
                lj_pair: e.lj[lane],
                coulomb_14: b.coulomb_14,
                lj_14: b.lj_14,
                gb_polar: e.gb_polar[lane],
                gb_sa: e.gb_sa[lane],
            };
        }
    }

    /// `mask` where r^2 < `cut2`, the test skipped without cutoffs (`CUT` false).
    #[inline(always)]
    fn within<const CUT: bool>(mask: S::Mask, r2: S, cut2: S) -> S::Mask {
        match CUT {
            true => mask & r2.lt(cut2),
            false => mask,
        }
    }

    /// Atom a's position in every lane.
    #[inline(always)]
    fn pos(&self, a: usize) -> [S; 3] {
        let at = a * S::LANES;
        [
            S::load(&self.x[0], at),
            S::load(&self.x[1], at),
            S::load(&self.x[2], at),
        ]
    }

    /// Displacement i -> j and its squared length.
    #[inline(always)]
    fn delta(&self, xi: [S; 3], j: usize) -> ([S; 3], S) {
        let xj = self.pos(j);
        let d = [xj[0] - xi[0], xj[1] - xi[1], xj[2] - xi[2]];
        let r2 = d[0].mul_add(d[0], d[1].mul_add(d[1], d[2] * d[2]));
        (d, r2)
    }

    /// Adds `s d` to atom j's gradient and subtracts it from `gi`.
    #[inline(always)]
    fn push_grad(&mut self, gi: &mut [S; 3], s: S, d: &[S; 3], j: usize) {
        for c in 0..3 {
            let f = s * d[c];
            f.add_to(&mut self.g[c], j * S::LANES);
            gi[c] -= f;
        }
    }

    /// Adds `gi` to atom i's gradient.
    #[inline(always)]
    fn add_grad(&mut self, gi: [S; 3], i: usize) {
        for c in 0..3 {
            gi[c].add_to(&mut self.g[c], i * S::LANES);
        }
    }

    /// Pass 1: Coulomb + LJ and the Born integrals I_i.
    #[inline(always)]
    fn coulomb_lj_born<const GRAD: bool, const CUT: bool>(
        &mut self,
        m: &EnergyModel,
        e: &mut LaneEnergies,
    ) {
        let (n, l) = (self.n, S::LANES);
        let (nb_cut2, krf, crf, gb_cut2) =
            (S::c(m.nb_cut2), S::c(m.krf), S::c(m.crf), S::c(m.gb_cut2));
        let zero = S::c(0.0);
        let all = S::clear_bits(0);
        self.isum.fill(S::T::default());
        let mut p = 0;
        for i in 0..n {
            let xi = self.pos(i);
            let (qi, shi, sei) = (
                S::splat(self.q[i]),
                S::splat(self.sigma_half[i]),
                S::splat(self.sqrt_eps4[i]),
            );
            let (ori, sri) = (S::splat(self.gb_or[i]), S::splat(self.gb_sr[i]));
            let (mut ec, mut elj, mut isum_i) = (zero, zero, zero);
            let mut gi = [zero; 3];
            for j in i + 1..n {
                let (d, r2) = self.delta(xi, j);
                let inv_r = r2.rsqrt();
                let r = r2 * inv_r;
                if m.pair_nb[p] {
                    let nbm = Self::within::<CUT>(all, r2, nb_cut2);
                    let inv_r2 = inv_r * inv_r;
                    let sig = shi + S::splat(self.sigma_half[j]);
                    let s2 = sig * sig * inv_r2;
                    let s6 = s2 * s2 * s2;
                    let eps4 = sei * S::splat(self.sqrt_eps4[j]);
                    let qq = qi * S::splat(self.q[j]);
                    let (coulomb, lj) = match CUT {
                        true => (qq * (inv_r + krf * r2 - crf), eps4 * (s6 * s6 - s6)),
                        false => (qq * inv_r, eps4 * (s6 * s6 - s6)),
                    };
                    ec += coulomb.or_zero(nbm);
                    elj += lj.or_zero(nbm);
                    if GRAD {
                        let dc = match CUT {
                            true => qq * (S::c(2.0) * krf * r2 - inv_r),
                            false => -qq * inv_r,
                        };
                        let f = (dc - eps4 * (S::c(12.0) * s6 * s6 - S::c(6.0) * s6)) * inv_r2;
                        self.push_grad(&mut gi, f.or_zero(nbm), &d, j);
                    }
                }
                let gbm = Self::within::<CUT>(all, r2, gb_cut2);
                let srj = S::splat(self.gb_sr[j]);
                let orj = S::splat(self.gb_or[j]);
                let (ti, dti) = born_pair(r, inv_r, ori, srj, m.gb_engulf);
                let (tj, dtj) = born_pair(r, inv_r, orj, sri, m.gb_engulf);
                isum_i += ti.or_zero(gbm);
                tj.or_zero(gbm).add_to(&mut self.isum, j * l);
                if GRAD && !self.cache.is_empty() {
                    self.cache[p] = [dti.or_zero(gbm), dtj.or_zero(gbm)];
                }
                p += 1;
            }
            isum_i.add_to(&mut self.isum, i * l);
            if GRAD {
                self.add_grad(gi, i);
            }
            add_lanes(&mut e.coulomb, ec);
            add_lanes(&mut e.lj, elj);
        }
    }

    /// Pass 2: Born radii (f64), self and surface terms.
    fn born_radii(&mut self, m: &EnergyModel, e: &mut LaneEnergies) {
        let l = S::LANES;
        for i in 0..self.n {
            let q2 = m.gb_q[i] * m.gb_q[i];
            for lane in 0..l {
                let at = i * l + lane;
                let (b, db) = gbsa::born_radius(
                    self.isum[at].f64(),
                    m.gb_or[i],
                    m.gb_radius[i],
                    m.alpha,
                    m.beta,
                    m.gamma,
                );
                self.born[at] = S::T::of(b);
                self.inv_born[at] = S::T::of(1.0 / b);
                self.dbdi[at] = db;
                let inv_b2 = 1.0 / (b * b);
                let esa = m.gb_sa[i] * inv_b2 * inv_b2 * inv_b2;
                e.gb_polar[lane] += 0.5 * m.gb_pref * q2 / b;
                e.gb_sa[lane] += esa;
                self.dedb[at] = S::T::of(-0.5 * m.gb_pref * q2 * inv_b2 - 6.0 * esa / b);
            }
        }
    }

    /// Pass 3: the pair GB terms, and dE/dB.
    #[inline(always)]
    fn gb_pairs<const GRAD: bool, const CUT: bool>(
        &mut self,
        m: &EnergyModel,
        e: &mut LaneEnergies,
    ) {
        let (n, l) = (self.n, S::LANES);
        let (gb_cut2, shift, zero, quarter) =
            (S::c(m.gb_cut2), S::c(m.gb_shift), S::c(0.0), S::c(0.25));
        let exp_min = S::c(S::T::EXP_MIN);
        let all = S::clear_bits(0);
        for i in 0..n {
            let xi = self.pos(i);
            let bi = S::load(&self.born, i * l);
            let inv_bi = S::load(&self.inv_born, i * l);
            let qi = S::c(m.gb_pref) * S::splat(self.gb_q[i]);
            let (mut polar, mut dedb_i) = (zero, zero);
            let mut gi = [zero; 3];
            for j in i + 1..n {
                let (d, r2) = self.delta(xi, j);
                let gbm = Self::within::<CUT>(all, r2, gb_cut2);
                let bj = S::load(&self.born, j * l);
                let dd = quarter * r2 * inv_bi * S::load(&self.inv_born, j * l);
                let ex = S::select(dd.lt(-exp_min), -dd, exp_min).exp();
                let inv_f = (r2 + bi * bj * ex).rsqrt();
                let qq = qi * S::splat(self.gb_q[j]);
                polar += (qq * (inv_f - shift)).or_zero(gbm);
                if GRAD {
                    let de_df = -qq * inv_f * inv_f;
                    let common = (de_df * ex * (S::c(1.0) + dd) * S::c(0.5) * inv_f).or_zero(gbm);
                    dedb_i += common * bj;
                    (common * bi).add_to(&mut self.dedb, j * l);
                    let f = de_df * (S::c(1.0) - quarter * ex) * inv_f;
                    self.push_grad(&mut gi, f.or_zero(gbm), &d, j);
                }
            }
            add_lanes(&mut e.gb_polar, polar);
            if GRAD {
                dedb_i.add_to(&mut self.dedb, i * l);
                self.add_grad(gi, i);
            }
        }
    }

    /// Pass 4: the chain rule through the Born radii, dE/dI_i = dE/dB_i dB_i/dI_i.
    #[inline(always)]
    fn born_chain<const CUT: bool>(&mut self, m: &EnergyModel) {
        let (n, l) = (self.n, S::LANES);
        for at in 0..n * l {
            self.dedb[at] = S::T::of(self.dedb[at].f64() * self.dbdi[at]);
        }
        let (gb_cut2, zero) = (S::c(m.gb_cut2), S::c(0.0));
        let all = S::clear_bits(0);
        let mut p = 0;
        for i in 0..n {
            let xi = self.pos(i);
            let dei = S::load(&self.dedb, i * l);
            let (ori, sri) = (S::splat(self.gb_or[i]), S::splat(self.gb_sr[i]));
            let mut gi = [zero; 3];
            for j in i + 1..n {
                let (d, r2) = self.delta(xi, j);
                let gbm = Self::within::<CUT>(all, r2, gb_cut2);
                let inv_r = r2.rsqrt();
                let [dti, dtj] = match self.cache.is_empty() {
                    false => self.cache[p],
                    true => {
                        let r = r2 * inv_r;
                        let (srj, orj) = (S::splat(self.gb_sr[j]), S::splat(self.gb_or[j]));
                        let dti = born_pair(r, inv_r, ori, srj, m.gb_engulf).1;
                        let dtj = born_pair(r, inv_r, orj, sri, m.gb_engulf).1;
                        [dti, dtj]
                    }
                };
                p += 1;
                let dej = S::load(&self.dedb, j * l);
                let f = ((dei * dti + dej * dtj) * inv_r).or_zero(gbm);
                self.push_grad(&mut gi, f, &d, j);
            }
            self.add_grad(gi, i);
        }
    }
}
