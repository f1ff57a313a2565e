//! The potential energy U(x) and its gradient: a sum of small terms (bonded, nonbonded pairs and
//! scaled 1-4 exceptions, GBSA-OBC). Positions nm, energies kJ/mol, gradients kJ/mol/nm.
//!
//! [`EnergyModel`] holds the parameters in evaluation-friendly arrays; a [`Workspace`] holds the
//! scratch memory of one evaluation, so repeated evaluations allocate nothing.

pub mod batch;
pub mod bonded;
pub mod bonded_lanes;
pub mod gbsa;
pub mod lanes;
pub mod simd;

use crate::forcefield::{Angle, Bond, GbModel, NonbondedMethod, Parameters};
use crate::units::COULOMB;

/// Energy of one conformation by term, kJ/mol. The groups are those of the OpenMM reference:
/// nonbonded = coulomb_pair + lj_pair + coulomb_14 + lj_14, gb = gb_polar + gb_sa.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Energies {
    pub bond: f64,
    pub angle: f64,
    pub torsion: f64,
    pub coulomb_pair: f64,
    pub lj_pair: f64,
    pub coulomb_14: f64,
    pub lj_14: f64,
    pub gb_polar: f64,
    pub gb_sa: f64,
}

impl Energies {
    /// Nonbonded group (Coulomb + LJ, pairs and 1-4), kJ/mol.
    pub fn nonbonded(&self) -> f64 {
        self.coulomb_pair + self.lj_pair + self.coulomb_14 + self.lj_14
    }
    /// Implicit-solvent group (polar GB + surface area), kJ/mol.
    pub fn gb(&self) -> f64 {
        self.gb_polar + self.gb_sa
    }
    /// Total potential energy, kJ/mol.
    pub fn total(&self) -> f64 {
        self.bond + self.angle + self.torsion + self.nonbonded() + self.gb()
    }
    /// The terms as (name, kJ/mol) pairs, groups first.
    pub fn named(&self) -> [(&'static str, f64); 14] {
        [
            ("total", self.total()),
            ("bond", self.bond),
            ("angle", self.angle),
            ("torsion", self.torsion),
            ("nonbonded", self.nonbonded()),
            ("gb", self.gb()),
            ("nb_coulomb_pair", self.coulomb_pair),
            ("nb_lj_pair", self.lj_pair),
            ("nb_coulomb_14", self.coulomb_14),
            ("nb_lj_14", self.lj_14),
            ("gb_polar", self.gb_polar),
            ("gb_sa", self.gb_sa),
            ("bonded", self.bond + self.angle + self.torsion),
            ("pair", self.coulomb_pair + self.lj_pair + self.gb_polar),
        ]
    }
}

#[derive(Clone, Copy, Debug)]
struct Pair14 {
    i: usize,
    j: usize,
    /// COULOMB * q_i q_j * scale, kJ nm/mol
    qq: f64,
    sigma: f64,
    /// 4 epsilon, kJ/mol
    eps4: f64,
}

/// Parameters laid out for fast evaluation.
#[derive(Clone, Debug)]
pub struct EnergyModel {
    n: usize,
    bonds: Vec<Bond>,
    angles: Vec<Angle>,
    torsions: bonded::Torsions,
    pairs14: Vec<Pair14>,
    /// Per pair (i < j, row-major over i): true when it interacts through the plain nonbonded terms.
    pair_nb: Vec<bool>,
    q: Vec<f64>,
    sigma_half: Vec<f64>,
    sqrt_eps4: Vec<f64>,
    nb_cut2: f64,
    krf: f64,
    crf: f64,
    // GBSA-OBC
    gb_q: Vec<f64>,
    gb_or: Vec<f64>,
    gb_sr: Vec<f64>,
    gb_radius: Vec<f64>,
    /// Per atom: factor (R + 0.14)^2 R^6, so that E_sa,i = sa_i / B_i^6.
    gb_sa: Vec<f64>,
    gb_pref: f64,
    gb_cut2: f64,
    gb_shift: f64,
    gb_engulf: bool,
    alpha: f64,
    beta: f64,
    gamma: f64,
    /// Whether each workspace keeps the pair geometry of the Born pass for the later passes
    /// (48 bytes a pair), or they recompute it (the same arithmetic, so the same numbers).
    cache_pairs: bool,
}

/// Most atom pairs whose geometry a workspace keeps (192 MB a thread, about 2,800 atoms);
/// larger molecules recompute it, so that memory stays linear in the atoms per thread.
pub const MAX_CACHED_PAIRS: usize = 4_000_000;

/// How the pair terms (Coulomb, LJ, GBSA-OBC: all but O(N) of the work) are computed.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f64 in SIMD lanes (4 partner atoms at once): the reference's numbers to about 1e-13.
    #[default]
    Double,
    /// f32 pair math in SIMD lanes (8 at once), sums in f64: energies within 1e-6 relative,
    /// forces within 1e-4 relative (tested; as OpenMM's CPU and CUDA platforms compute).
    Mixed,
    /// The scalar f64 reference implementation, one pair at a time (OpenMM's Reference platform's
    /// numbers to round-off).
    Reference,
}

impl Precision {
    /// The name on the command line and in run files.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Double => "double",
            Precision::Mixed => "mixed",
            Precision::Reference => "reference",
        }
    }
}

/// Scratch memory of one evaluation (one per thread), for one [`Precision`].
#[derive(Clone, Debug)]
pub struct Workspace(Kernel);

#[derive(Clone, Debug)]
enum Kernel {
    Reference(Scalar),
    Double(Box<simd::Lanes<lanes::V<f64, 4>, lanes::V<f64, 4>>>),
    Mixed(Box<simd::Lanes<lanes::V<f32, 8>, lanes::V<f64, 4>>>),
    #[cfg(target_arch = "x86_64")]
    DoubleAvx2(Box<simd::Lanes<lanes::avx::F64x4, lanes::avx::F64x4>>),
    #[cfg(target_arch = "x86_64")]
    MixedAvx2(Box<simd::Lanes<lanes::avx::F32x8, lanes::avx::F64x4>>),
}

/// The widest SIMD lanes a kernel may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Plain arrays (any CPU).
    Portable,
    /// AVX2 + FMA registers: 4 f64 or 8 f32.
    Avx2,
    /// AVX-512 registers: 8 f64 or 16 f32.
    Avx512,
}

impl Isa {
    /// The widest this CPU has.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        if lanes::avx512::available() {
            return Isa::Avx512;
        }
        match simd::avx2_fma() {
            true => Isa::Avx2,
            false => Isa::Portable,
        }
    }
}

/// The widest (ISA, lanes) of `precision` on this CPU that `replicas` conformations fill.
fn filled_by(precision: Precision, replicas: usize) -> Option<(Isa, usize)> {
    let widths: &[(Isa, usize)] = match precision {
        Precision::Reference => &[],
        Precision::Double => &[(Isa::Avx512, 8), (Isa::Avx2, 4)],
        Precision::Mixed => &[(Isa::Avx512, 16), (Isa::Avx2, 8)],
    };
    let have = Isa::detect();
    widths
        .iter()
        .find(|&&(isa, lanes)| isa <= have && lanes <= replicas)
        .copied()
}

/// Scratch memory of evaluations in conformation lanes ([`batch`]): several conformations at
/// once, one per lane, for batches (one per thread).
#[derive(Clone, Debug)]
pub struct BatchWorkspace(BatchKernel);

#[derive(Clone, Debug)]
enum BatchKernel {
    /// The reference precision: one conformation at a time.
    One(Workspace),
    Double(Box<batch::Batch<lanes::V<f64, 4>, lanes::V<f64, 4>>>),
    Mixed(Box<batch::Batch<lanes::V<f32, 8>, lanes::V<f64, 4>>>),
    #[cfg(target_arch = "x86_64")]
    DoubleAvx2(Box<batch::Batch<lanes::avx::F64x4, lanes::avx::F64x4>>),
    #[cfg(target_arch = "x86_64")]
    MixedAvx2(Box<batch::Batch<lanes::avx::F32x8, lanes::avx::F64x4>>),
    #[cfg(target_arch = "x86_64")]
    DoubleAvx512(Box<batch::Batch<lanes::avx512::F64x8, lanes::avx::F64x4>>),
    #[cfg(target_arch = "x86_64")]
    MixedAvx512(Box<batch::Batch<lanes::avx512::F32x16, lanes::avx::F64x4>>),
}

impl BatchWorkspace {
    /// Conformations evaluated together.
    pub fn lanes(&self) -> usize {
        match &self.0 {
            BatchKernel::One(_) => 1,
            BatchKernel::Double(_) => 4,
            BatchKernel::Mixed(_) => 8,
            #[cfg(target_arch = "x86_64")]
            BatchKernel::DoubleAvx2(_) => 4,
            #[cfg(target_arch = "x86_64")]
            BatchKernel::MixedAvx2(_) => 8,
            #[cfg(target_arch = "x86_64")]
            BatchKernel::DoubleAvx512(_) => 8,
            #[cfg(target_arch = "x86_64")]
            BatchKernel::MixedAvx512(_) => 16,
        }
    }

    /// Bytes of scratch memory this workspace holds.
    pub fn bytes(&self) -> usize {
        match &self.0 {
            BatchKernel::One(w) => w.bytes(),
            BatchKernel::Double(b) => b.bytes(),
            BatchKernel::Mixed(b) => b.bytes(),
            #[cfg(target_arch = "x86_64")]
            BatchKernel::DoubleAvx2(b) => b.bytes(),
            #[cfg(target_arch = "x86_64")]
            BatchKernel::MixedAvx2(b) => b.bytes(),
            #[cfg(target_arch = "x86_64")]
            BatchKernel::DoubleAvx512(b) => b.bytes(),
            #[cfg(target_arch = "x86_64")]
            BatchKernel::MixedAvx512(b) => b.bytes(),
        }
    }
}

/// Scratch memory of the scalar reference.
#[derive(Clone, Debug)]
struct Scalar {
    isum: Vec<f64>,
    born: Vec<f64>,
    dbdi: Vec<f64>,
    dedb: Vec<f64>,
    /// Per pair (when the model caches pairs): unit vector i -> j, r (infinite beyond the GB
    /// cutoff), dI_i/dr, dI_j/dr.
    pair: Vec<[f64; 6]>,
}

impl Workspace {
    /// Bytes of scratch memory this workspace holds.
    pub fn bytes(&self) -> usize {
        match &self.0 {
            Kernel::Reference(s) => {
                8 * (s.isum.len() + s.born.len() + s.dbdi.len() + s.dedb.len()) + 48 * s.pair.len()
            }
            Kernel::Double(l) => l.bytes(),
            Kernel::Mixed(l) => l.bytes(),
            #[cfg(target_arch = "x86_64")]
            Kernel::DoubleAvx2(l) => l.bytes(),
            #[cfg(target_arch = "x86_64")]
            Kernel::MixedAvx2(l) => l.bytes(),
        }
    }

    /// The precision this workspace computes in.
    pub fn precision(&self) -> Precision {
        match self.0 {
            Kernel::Reference(_) => Precision::Reference,
            Kernel::Double(_) => Precision::Double,
            Kernel::Mixed(_) => Precision::Mixed,
            #[cfg(target_arch = "x86_64")]
            Kernel::DoubleAvx2(_) => Precision::Double,
            #[cfg(target_arch = "x86_64")]
            Kernel::MixedAvx2(_) => Precision::Mixed,
        }
    }
}

impl EnergyModel {
    /// Lays out `p` for evaluation.
    pub fn new(p: &Parameters) -> EnergyModel {
        let n = p.charge.len();
        let npair = n * n.saturating_sub(1) / 2;
        let idx = |i: usize, j: usize| i * n - i * (i + 1) / 2 + (j - i - 1);
        let mut pair_nb = vec![true; npair];
        let mut pairs14 = Vec::new();
        for e in &p.exceptions {
            let (i, j) = (e.i.min(e.j), e.i.max(e.j));
            pair_nb[idx(i, j)] = false;
            if e.charge_prod != 0.0 || e.epsilon != 0.0 {
                pairs14.push(Pair14 {
                    i,
                    j,
                    qq: COULOMB * e.charge_prod,
                    sigma: e.sigma,
                    eps4: 4.0 * e.epsilon,
                });
            }
        }
        let (nb_cut2, krf, crf) = match p.nonbonded {
            NonbondedMethod::NoCutoff => (f64::INFINITY, 0.0, 0.0),
            NonbondedMethod::CutoffNonPeriodic {
                cutoff,
                rf_dielectric,
            } => {
                let krf = (rf_dielectric - 1.0) / ((2.0 * rf_dielectric + 1.0) * cutoff.powi(3));
                (cutoff * cutoff, krf, 1.0 / cutoff + krf * cutoff * cutoff)
            }
        };
        let g = &p.gbsa;
        let shift = match (g.model, g.cutoff) {
            (GbModel::CustomObc1, Some(c)) => 1.0 / c,
            _ => 0.0,
        };
        EnergyModel {
            n,
            bonds: p.bonds.clone(),
            angles: p.angles.clone(),
            torsions: bonded::Torsions::new(&p.torsions),
            pairs14,
            pair_nb,
            q: p.charge.clone(),
            sigma_half: p.sigma.iter().map(|s| 0.5 * s).collect(),
            sqrt_eps4: p.epsilon.iter().map(|e| (4.0 * e).sqrt()).collect(),
            nb_cut2,
            krf,
            crf,
            gb_q: g.charge.clone(),
            gb_or: g.offset_radius.clone(),
            gb_sr: g.scaled_radius.clone(),
            gb_radius: g.radius.clone(),
            gb_sa: g
                .radius
                .iter()
                .map(|&r| g.surface_factor * (r + 0.14).powi(2) * r.powi(6))
                .collect(),
            gb_pref: -g.coulomb * (1.0 / g.solute_dielectric - 1.0 / g.solvent_dielectric),
            gb_cut2: g.cutoff.map_or(f64::INFINITY, |c| c * c),
            gb_shift: shift,
            gb_engulf: g.model == GbModel::NativeObc2,
            alpha: g.alpha,
            beta: g.beta,
            gamma: g.gamma,
            cache_pairs: npair <= MAX_CACHED_PAIRS,
        }
    }

    /// Floating-point operations per atom pair that the pair kernels' formulas need for one
    /// energy + gradient (counted by running them on [`lanes::Counted`]; an FMA counts two,
    /// a division or square root one, `exp` and `ln` their polynomial's operations), and the
    /// number of pairs.
    pub fn pair_flops(&self, x: &[f64]) -> (f64, usize) {
        let mut k = simd::Lanes::<lanes::Counted, lanes::V<f64, 1>>::new(self);
        let mut g = vec![0.0; x.len()];
        lanes::Counted::take();
        k.eval::<true>(self, x, &mut g);
        let flops = lanes::Counted::take() as f64;
        let pairs = self.pair_nb.len();
        (flops / pairs.max(1) as f64, pairs)
    }

    /// The same model with the pair geometry recomputed in every pass instead of kept (what
    /// molecules above [`MAX_CACHED_PAIRS`] pairs do): the same numbers bit for bit.
    pub fn without_pair_cache(mut self) -> EnergyModel {
        self.cache_pairs = false;
        self
    }

    /// Born-pass geometry of the pair (i, j) as the Born pass computes it: unit vector i -> j,
    /// r, dI_i/dr, dI_j/dr; None beyond the GB cutoff.
    #[inline(always)]
    fn born_geometry(&self, x: &[f64], i: usize, j: usize) -> Option<[f64; 6]> {
        let d = [
            x[3 * j] - x[3 * i],
            x[3 * j + 1] - x[3 * i + 1],
            x[3 * j + 2] - x[3 * i + 2],
        ];
        let r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
        if r2 >= self.gb_cut2 {
            return None;
        }
        let r = r2.sqrt();
        let inv_r = 1.0 / r;
        let dti = gbsa::born_pair(r, inv_r, self.gb_or[i], self.gb_sr[j], self.gb_engulf).1;
        let dtj = gbsa::born_pair(r, inv_r, self.gb_or[j], self.gb_sr[i], self.gb_engulf).1;
        Some([d[0] * inv_r, d[1] * inv_r, d[2] * inv_r, r, dti, dtj])
    }

    /// The kept geometry of pair `p` = (i, j), or recomputed; r infinite beyond the cutoff.
    #[inline(always)]
    fn pair_geometry(&self, x: &[f64], ws: &Scalar, p: usize, i: usize, j: usize) -> [f64; 6] {
        if self.cache_pairs {
            return ws.pair[p];
        }
        self.born_geometry(x, i, j)
            .unwrap_or([0.0, 0.0, 0.0, f64::INFINITY, 0.0, 0.0])
    }

    /// Number of atoms.
    pub fn n_atoms(&self) -> usize {
        self.n
    }

    /// Scratch memory for [`EnergyModel::energy`] and [`EnergyModel::energy_grad`] in the default
    /// precision ([`Precision::Double`]).
    pub fn workspace(&self) -> Workspace {
        self.workspace_in(Precision::default())
    }

    /// Scratch memory for evaluations in `precision`.
    pub fn workspace_in(&self, precision: Precision) -> Workspace {
        self.workspace_with(precision, simd::avx2_fma())
    }

    /// [`EnergyModel::workspace_in`] with the plain-array lanes that CPUs without AVX2 + FMA
    /// run (for testing them on CPUs that have both).
    pub fn portable_workspace(&self, precision: Precision) -> Workspace {
        self.workspace_with(precision, false)
    }

    fn workspace_with(&self, precision: Precision, avx2: bool) -> Workspace {
        let n = self.n;
        Workspace(match precision {
            Precision::Reference => Kernel::Reference(Scalar {
                isum: vec![0.0; n],
                born: vec![0.0; n],
                dbdi: vec![0.0; n],
                dedb: vec![0.0; n],
                pair: match self.cache_pairs {
                    true => vec![[0.0; 6]; self.pair_nb.len()],
                    false => Vec::new(),
                },
            }),
            #[cfg(target_arch = "x86_64")]
            Precision::Double if avx2 => Kernel::DoubleAvx2(Box::new(simd::Lanes::new(self))),
            #[cfg(target_arch = "x86_64")]
            Precision::Mixed if avx2 => Kernel::MixedAvx2(Box::new(simd::Lanes::new(self))),
            Precision::Double => Kernel::Double(Box::new(simd::Lanes::new(self))),
            Precision::Mixed => Kernel::Mixed(Box::new(simd::Lanes::new(self))),
        })
    }

    /// Scratch memory for [`EnergyModel::energy_grad_batch`] in `precision`.
    pub fn batch_workspace(&self, precision: Precision) -> BatchWorkspace {
        self.batch_workspace_with(precision, Isa::detect())
    }

    /// The widest conformation lanes of `precision` on this CPU that `replicas` conformations
    /// fill (all lanes busy), if any: for MD replicas stepped in lockstep, which gain from lanes
    /// only when they fill them. None for the reference precision and on CPUs without AVX2.
    pub fn batch_workspace_filled_by(
        &self,
        precision: Precision,
        replicas: usize,
    ) -> Option<BatchWorkspace> {
        filled_by(precision, replicas).map(|(isa, _)| self.batch_workspace_with(precision, isa))
    }

    /// A [`BatchWorkspace`] that evaluates one conformation at a time in `precision` (partner
    /// atoms in lanes): for batches smaller than the conformation lanes.
    pub fn one_at_a_time(&self, precision: Precision) -> BatchWorkspace {
        BatchWorkspace(BatchKernel::One(self.workspace_in(precision)))
    }

    /// The lanes of [`EnergyModel::batch_workspace_filled_by`], without building it.
    pub fn batch_lanes_filled_by(&self, precision: Precision, replicas: usize) -> Option<usize> {
        filled_by(precision, replicas).map(|(_, lanes)| lanes)
    }

    /// The lanes of [`EnergyModel::batch_workspace`] in `precision`, without building it.
    pub fn batch_lanes(&self, precision: Precision) -> usize {
        let wide = Isa::detect() == Isa::Avx512;
        match precision {
            Precision::Reference => 1,
            Precision::Double => 4 * (1 + wide as usize),
            Precision::Mixed => 8 * (1 + wide as usize),
        }
    }

    /// [`EnergyModel::batch_workspace`] in the lanes of `isa` (which the CPU must have; for
    /// testing each kind of lane on CPUs that have the widest).
    pub fn batch_workspace_on(&self, precision: Precision, isa: Isa) -> BatchWorkspace {
        assert!(isa <= Isa::detect(), "{isa:?} lanes on a CPU without them");
        self.batch_workspace_with(precision, isa)
    }

    fn batch_workspace_with(&self, precision: Precision, isa: Isa) -> BatchWorkspace {
        let avx2 = isa >= Isa::Avx2;
        BatchWorkspace(match precision {
            Precision::Reference => BatchKernel::One(self.workspace_in(precision)),
            #[cfg(target_arch = "x86_64")]
            Precision::Double if isa == Isa::Avx512 => {
                BatchKernel::DoubleAvx512(Box::new(batch::Batch::new(self)))
            }
            #[cfg(target_arch = "x86_64")]
            Precision::Mixed if isa == Isa::Avx512 => {
                BatchKernel::MixedAvx512(Box::new(batch::Batch::new(self)))
            }
            #[cfg(target_arch = "x86_64")]
            Precision::Double if avx2 => BatchKernel::DoubleAvx2(Box::new(batch::Batch::new(self))),
            #[cfg(target_arch = "x86_64")]
            Precision::Mixed if avx2 => BatchKernel::MixedAvx2(Box::new(batch::Batch::new(self))),
            Precision::Double => BatchKernel::Double(Box::new(batch::Batch::new(self))),
            Precision::Mixed => BatchKernel::Mixed(Box::new(batch::Batch::new(self))),
        })
    }

    /// Energies by term (kJ/mol) of the conformations in `x` (k x atoms x 3, nm) into `out` (k),
    /// several at a time in conformation lanes; with `grad` (same shape as `x`) their gradients
    /// dU/dx (kJ/mol/nm, overwritten). The numbers equal [`EnergyModel::energy_grad`]'s in the
    /// same precision to round-off (double) or within the mixed path's tolerances.
    pub fn energy_grad_batch(
        &self,
        x: &[f64],
        mut grad: Option<&mut [f64]>,
        out: &mut [Energies],
        ws: &mut BatchWorkspace,
    ) {
        let d = 3 * self.n;
        assert_eq!(
            x.len(),
            d * out.len(),
            "positions must have k x 3 x {} entries",
            self.n
        );
        if let Some(g) = &grad {
            assert_eq!(g.len(), x.len(), "gradients must have the positions' shape");
        }
        let l = ws.lanes();
        for (c, (xs, es)) in x.chunks(l * d).zip(out.chunks_mut(l)).enumerate() {
            let gs = grad
                .as_deref_mut()
                .map(|g| &mut g[c * l * d..c * l * d + xs.len()]);
            match (&mut ws.0, gs) {
                (BatchKernel::One(w), Some(g)) => {
                    for ((xi, gi), e) in xs.chunks(d).zip(g.chunks_mut(d)).zip(es.iter_mut()) {
                        *e = self.energy_grad(xi, gi, w);
                    }
                }
                (BatchKernel::One(w), None) => {
                    for (xi, e) in xs.chunks(d).zip(es.iter_mut()) {
                        *e = self.energy(xi, w);
                    }
                }
                (BatchKernel::Double(b), g) => self.batch_eval(b, xs, g, es),
                (BatchKernel::Mixed(b), g) => self.batch_eval(b, xs, g, es),
                #[cfg(target_arch = "x86_64")]
                (BatchKernel::DoubleAvx2(b), g) => self.batch_eval(b, xs, g, es),
                #[cfg(target_arch = "x86_64")]
                (BatchKernel::MixedAvx2(b), g) => self.batch_eval(b, xs, g, es),
                #[cfg(target_arch = "x86_64")]
                (BatchKernel::DoubleAvx512(b), g) => self.batch_eval(b, xs, g, es),
                #[cfg(target_arch = "x86_64")]
                (BatchKernel::MixedAvx512(b), g) => self.batch_eval(b, xs, g, es),
            }
        }
    }

    fn batch_eval<S: lanes::Lane, B: lanes::Lane<T = f64>>(
        &self,
        b: &mut batch::Batch<S, B>,
        x: &[f64],
        grad: Option<&mut [f64]>,
        out: &mut [Energies],
    ) {
        match grad {
            Some(g) => b.eval::<true>(self, x, g, out),
            None => b.eval::<false>(self, x, &mut [], out),
        }
    }

    /// Energy by term (kJ/mol) of positions `x` (atoms x 3, nm).
    pub fn energy(&self, x: &[f64], ws: &mut Workspace) -> Energies {
        self.eval::<false>(x, &mut [], ws)
    }

    /// Energy by term (kJ/mol) and its gradient dU/dx (kJ/mol/nm, overwritten) at `x` (nm).
    pub fn energy_grad(&self, x: &[f64], grad: &mut [f64], ws: &mut Workspace) -> Energies {
        grad.fill(0.0);
        self.eval::<true>(x, grad, ws)
    }

    fn eval<const GRAD: bool>(&self, x: &[f64], grad: &mut [f64], ws: &mut Workspace) -> Energies {
        let n = self.n;
        assert_eq!(x.len(), 3 * n, "positions must have 3 x {n} entries");
        match &mut ws.0 {
            Kernel::Reference(s) => self.eval_reference::<GRAD>(x, grad, s),
            Kernel::Double(l) => l.eval::<GRAD>(self, x, grad),
            Kernel::Mixed(l) => l.eval::<GRAD>(self, x, grad),
            #[cfg(target_arch = "x86_64")]
            Kernel::DoubleAvx2(l) => l.eval::<GRAD>(self, x, grad),
            #[cfg(target_arch = "x86_64")]
            Kernel::MixedAvx2(l) => l.eval::<GRAD>(self, x, grad),
        }
    }

    /// The scalar reference: every term one at a time.
    fn eval_reference<const GRAD: bool>(
        &self,
        x: &[f64],
        grad: &mut [f64],
        ws: &mut Scalar,
    ) -> Energies {
        let mut e = Energies {
            bond: bonded::bonds(x, &self.bonds, GRAD.then_some(&mut *grad)),
            angle: bonded::angles(x, &self.angles, GRAD.then_some(&mut *grad)),
            torsion: self.torsions.energy(x, GRAD.then_some(&mut *grad)),
            ..Energies::default()
        };
        self.exceptions::<GRAD>(x, grad, &mut e);
        self.pairs::<GRAD>(x, grad, ws, &mut e);
        e
    }

    fn exceptions<const GRAD: bool>(&self, x: &[f64], grad: &mut [f64], e: &mut Energies) {
        for p in &self.pairs14 {
            let d = [
                x[3 * p.j] - x[3 * p.i],
                x[3 * p.j + 1] - x[3 * p.i + 1],
                x[3 * p.j + 2] - x[3 * p.i + 2],
            ];
            let r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
            let inv_r2 = 1.0 / r2;
            let inv_r = inv_r2.sqrt();
            let s2 = p.sigma * p.sigma * inv_r2;
            let s6 = s2 * s2 * s2;
            let ec = p.qq * inv_r;
            let elj = p.eps4 * (s6 * s6 - s6);
            e.coulomb_14 += ec;
            e.lj_14 += elj;
            if GRAD {
                // (dE/dr) / r
                let s = (-ec - p.eps4 * (12.0 * s6 * s6 - 6.0 * s6)) * inv_r2;
                for k in 0..3 {
                    grad[3 * p.j + k] += s * d[k];
                    grad[3 * p.i + k] -= s * d[k];
                }
            }
        }
    }

    /// All i < j pairs: plain nonbonded terms and the three GBSA-OBC passes.
    fn pairs<const GRAD: bool>(
        &self,
        x: &[f64],
        grad: &mut [f64],
        ws: &mut Scalar,
        e: &mut Energies,
    ) {
        (e.coulomb_pair, e.lj_pair) = self.nonbonded_and_born_sums::<GRAD>(x, grad, ws);
        let (self_polar, sa) = self.born_radii(ws);
        e.gb_polar = self.gb_pairs::<GRAD>(x, grad, ws, self_polar);
        e.gb_sa = sa;
        if GRAD {
            self.born_chain_rule(x, grad, ws);
        }
    }

    /// Pass 1: reaction-field Coulomb and Lennard-Jones energies (kJ/mol) of the nonbonded
    /// pairs, their gradient, and the Born integrals I_i (`ws.isum`), caching each pair's
    /// geometry and integral derivatives when the model does.
    fn nonbonded_and_born_sums<const GRAD: bool>(
        &self,
        x: &[f64],
        grad: &mut [f64],
        ws: &mut Scalar,
    ) -> (f64, f64) {
        let n = self.n;
        ws.isum.fill(0.0);
        let (mut ec, mut elj) = (0.0, 0.0);
        let mut p = 0;
        for i in 0..n {
            let xi = [x[3 * i], x[3 * i + 1], x[3 * i + 2]];
            let (qi, shi, sei) = (self.q[i], self.sigma_half[i], self.sqrt_eps4[i]);
            let (ori, sri) = (self.gb_or[i], self.gb_sr[i]);
            let mut isum_i = 0.0;
            let mut gi = [0.0; 3];
            for j in i + 1..n {
                let d = [x[3 * j] - xi[0], x[3 * j + 1] - xi[1], x[3 * j + 2] - xi[2]];
                let r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
                let r = r2.sqrt();
                let inv_r = 1.0 / r;
                if self.pair_nb[p] && r2 < self.nb_cut2 {
                    let inv_r2 = inv_r * inv_r;
                    let s = shi + self.sigma_half[j];
                    let s2 = s * s * inv_r2;
                    let s6 = s2 * s2 * s2;
                    let eps4 = sei * self.sqrt_eps4[j];
                    let qq = COULOMB * qi * self.q[j];
                    let c = qq * (inv_r + self.krf * r2 - self.crf);
                    let l = eps4 * (s6 * s6 - s6);
                    ec += c;
                    elj += l;
                    if GRAD {
                        let s = (qq * (-inv_r + 2.0 * self.krf * r2)
                            - eps4 * (12.0 * s6 * s6 - 6.0 * s6))
                            * inv_r2;
                        for k in 0..3 {
                            grad[3 * j + k] += s * d[k];
                            gi[k] -= s * d[k];
                        }
                    }
                }
                if r2 < self.gb_cut2 {
                    let (ti, dti) = gbsa::born_pair(r, inv_r, ori, self.gb_sr[j], self.gb_engulf);
                    let (tj, dtj) = gbsa::born_pair(r, inv_r, self.gb_or[j], sri, self.gb_engulf);
                    isum_i += ti;
                    ws.isum[j] += tj;
                    if self.cache_pairs {
                        ws.pair[p] = [d[0] * inv_r, d[1] * inv_r, d[2] * inv_r, r, dti, dtj];
                    }
                } else if self.cache_pairs {
                    ws.pair[p][3] = f64::INFINITY;
                }
                p += 1;
            }
            ws.isum[i] += isum_i;
            if GRAD {
                for k in 0..3 {
                    grad[3 * i + k] += gi[k];
                }
            }
        }
        (ec, elj)
    }

    /// Pass 2: Born radii B_i from the integrals (`ws.born`, with dB/dI in `ws.dbdi`), and the
    /// GB self and surface-area energies (kJ/mol), whose derivatives start dE/dB (`ws.dedb`).
    fn born_radii(&self, ws: &mut Scalar) -> (f64, f64) {
        let pref = self.gb_pref;
        let (mut polar, mut sa) = (0.0, 0.0);
        for i in 0..self.n {
            let (b, db) = gbsa::born_radius(
                ws.isum[i],
                self.gb_or[i],
                self.gb_radius[i],
                self.alpha,
                self.beta,
                self.gamma,
            );
            ws.born[i] = b;
            ws.dbdi[i] = db;
            let q2 = self.gb_q[i] * self.gb_q[i];
            let inv_b = 1.0 / b;
            let inv_b2 = inv_b * inv_b;
            let esa = self.gb_sa[i] * inv_b2 * inv_b2 * inv_b2;
            polar += 0.5 * pref * q2 * inv_b;
            sa += esa;
            ws.dedb[i] = -0.5 * pref * q2 * inv_b2 - 6.0 * esa * inv_b;
        }
        (polar, sa)
    }

    /// Pass 3: `polar` plus the pair GB energy (kJ/mol), its gradient at fixed Born radii, and
    /// the pairs' share of dE/dB (`ws.dedb`). Overwrites `ws.isum` with 1/B.
    fn gb_pairs<const GRAD: bool>(
        &self,
        x: &[f64],
        grad: &mut [f64],
        ws: &mut Scalar,
        mut polar: f64,
    ) -> f64 {
        let (n, pref) = (self.n, self.gb_pref);
        let mut p = 0;
        for i in 0..n {
            ws.isum[i] = 1.0 / ws.born[i]; // isum is free now: reuse it for 1/B
        }
        for i in 0..n {
            let (bi, qi, inv_bi) = (ws.born[i], pref * self.gb_q[i], ws.isum[i]);
            let mut dedb_i = 0.0;
            let mut gi = [0.0; 3];
            for j in i + 1..n {
                let s = self.pair_geometry(x, ws, p, i, j);
                p += 1;
                let r = s[3];
                if r == f64::INFINITY {
                    continue;
                }
                let bj = ws.born[j];
                let bb = bi * bj;
                let dd = 0.25 * r * r * inv_bi * ws.isum[j];
                let ex = (-dd).exp();
                let f2 = r * r + bb * ex;
                let inv_f = 1.0 / f2.sqrt();
                let qq = qi * self.gb_q[j];
                polar += qq * (inv_f - self.gb_shift);
                if GRAD {
                    let de_df = -qq * inv_f * inv_f;
                    let de_dr = de_df * r * (1.0 - 0.25 * ex) * inv_f;
                    let common = de_df * ex * (1.0 + dd) * 0.5 * inv_f;
                    dedb_i += common * bj;
                    ws.dedb[j] += common * bi;
                    for k in 0..3 {
                        grad[3 * j + k] += de_dr * s[k];
                        gi[k] -= de_dr * s[k];
                    }
                }
            }
            if GRAD {
                ws.dedb[i] += dedb_i;
                for k in 0..3 {
                    grad[3 * i + k] += gi[k];
                }
            }
        }
        polar
    }

    /// Pass 4: the gradient through the Born radii, dE/dI_i = dE/dB_i dB_i/dI_i carried along
    /// each pair's dI/dr.
    fn born_chain_rule(&self, x: &[f64], grad: &mut [f64], ws: &mut Scalar) {
        let n = self.n;
        for i in 0..n {
            ws.dedb[i] *= ws.dbdi[i];
        }
        let mut p = 0;
        for i in 0..n {
            let dei = ws.dedb[i];
            let mut gi = [0.0; 3];
            for j in i + 1..n {
                let s = self.pair_geometry(x, ws, p, i, j);
                p += 1;
                if s[3] == f64::INFINITY {
                    continue;
                }
                let de_dr = dei * s[4] + ws.dedb[j] * s[5];
                for k in 0..3 {
                    grad[3 * j + k] += de_dr * s[k];
                    gi[k] -= de_dr * s[k];
                }
            }
            for k in 0..3 {
                grad[3 * i + k] += gi[k];
            }
        }
    }
}
