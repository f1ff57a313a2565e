//! A molecular system: topology, force-field parameters, temperature and the energy model.

use crate::energy::{Energies, EnergyModel, Precision};
use crate::error::{Error, Result};
use crate::forcefield::{name_tables, Parameters, Setup};
use crate::pdb::PdbFile;
use crate::systems::NAMED;
use crate::target::{PartialTarget, Target};
use crate::topology::Topology;
use crate::units::kt;
use rayon::prelude::*;
use std::path::Path;

/// A bond longer than this (nm; a covalent bond is 0.1-0.2) is named in a clash report.
const STRETCHED_BOND_NM: f64 = 0.5;

/// A molecule under a force-field setup at a temperature.
#[derive(Clone, Debug)]
pub struct System {
    /// Embedded name (e.g. "aldp") or the PDB file name.
    pub name: String,
    pub topology: Topology,
    pub params: Parameters,
    /// Temperature in K (sets kT for energies in kT).
    pub temperature: f64,
    /// Positions of the PDB file, nm (atoms x 3).
    pub positions: Vec<f64>,
    model: EnergyModel,
}

/// Largest molecule bgen builds. Its energy visits every atom pair (no neighbour lists yet):
/// time grows with N^2, and so does a shared table of one byte a pair (200 MB at this size);
/// each thread's scratch memory stays linear in N above [`crate::energy::MAX_CACHED_PAIRS`].
pub const MAX_ATOMS: usize = 20_000;

impl System {
    /// Builds a system from parsed PDB content; `temperature` None takes the setup's default.
    pub fn from_pdb(pdb: &PdbFile, setup: Setup, temperature: Option<f64>) -> Result<System> {
        let n = pdb.atoms.len();
        if n > MAX_ATOMS {
            let pairs = (n * (n - 1) / 2) as f64;
            return Err(Error::Other(format!(
                "{}: {n} atoms: bgen evaluates every atom pair (no neighbour lists yet), {:.0} \
                 million pairs, a {:.1} GB pair table and N^2 time per energy; at most \
                 {MAX_ATOMS} atoms are supported",
                pdb.source,
                pairs / 1e6,
                pairs / 1e9
            )));
        }
        let topology = Topology::from_pdb(pdb, name_tables())?;
        let params = Parameters::assign(&topology, setup)?;
        let model = EnergyModel::new(&params);
        Ok(System {
            name: pdb.source.clone(),
            topology,
            params,
            temperature: temperature.unwrap_or(setup.default_temperature()),
            positions: pdb.positions(),
            model,
        })
    }

    /// Reads a PDB file (with hydrogens) and assigns `setup`.
    pub fn from_pdb_file(path: &Path, setup: Setup, temperature: Option<f64>) -> Result<System> {
        System::from_pdb(&PdbFile::read(path)?, setup, temperature)
    }

    /// An embedded system ("aldp", "ala3", "ala4", "ala6", "chignolin"); `setup` None takes its default.
    pub fn named(name: &str, setup: Option<Setup>, temperature: Option<f64>) -> Result<System> {
        let (n, _, pdb, default) = NAMED.iter().find(|s| s.0 == name).ok_or_else(|| {
            Error::Other(format!(
                "unknown system '{name}' (embedded: {})",
                NAMED.iter().map(|s| s.0).collect::<Vec<_>>().join(", ")
            ))
        })?;
        let pdb = PdbFile::parse(pdb, &format!("<embedded {n}>"))?;
        let mut s = System::from_pdb(
            &pdb,
            setup.unwrap_or(Setup::from_name(default)?),
            temperature,
        )?;
        s.name = n.to_string();
        Ok(s)
    }

    /// The system a run recorded: the embedded one called `name` if there is one, else the PDB
    /// file `pdb` (e.g. the topology.pdb kept beside the run).
    pub fn recorded(name: &str, pdb: &Path, setup: Setup, temperature: f64) -> Result<System> {
        if NAMED.iter().any(|s| s.0 == name) {
            System::named(name, Some(setup), Some(temperature))
        } else {
            System::from_pdb_file(pdb, setup, Some(temperature))
        }
    }

    /// Number of atoms.
    pub fn n_atoms(&self) -> usize {
        self.topology.n_atoms()
    }

    /// kT in kJ/mol at the system's temperature.
    pub fn kt(&self) -> f64 {
        kt(self.temperature)
    }

    /// The evaluation model (for callers that manage their own [`Workspace`]).
    pub fn model(&self) -> &EnergyModel {
        &self.model
    }

    /// Checks that a batch of positions (n x atoms x 3) is finite; `source` names it in errors.
    pub fn check_positions(&self, x: &[f64], source: &str) -> Result<()> {
        let d = 3 * self.n_atoms();
        if !x.len().is_multiple_of(d) {
            return Err(Error::Coordinates {
                file: source.into(),
                msg: format!(
                    "{} values are not a whole number of conformations of {} atoms",
                    x.len(),
                    self.n_atoms()
                ),
            });
        }
        if let Some(k) = x.iter().position(|v| !v.is_finite()) {
            let (c, a) = (k / d, (k % d) / 3);
            let atom = &self.topology.atoms[a];
            return Err(Error::Coordinates {
                file: source.into(),
                msg: format!(
                    "conformation {c}: non-finite coordinate of atom {a} ({}:{})",
                    self.topology.residue_label(atom.residue),
                    atom.name
                ),
            });
        }
        Ok(())
    }

    /// Refuses conformations `x` (n x atoms x 3, nm) of which one has a non-finite energy
    /// (coinciding atoms), naming the conformation and its two closest atoms.
    pub fn check_energy(&self, x: &[f64], source: &str) -> Result<()> {
        let e = self.energies_batch(x, None);
        match e.iter().position(|e| !e.total().is_finite()) {
            Some(c) => Err(self.clash(x, c, source, "the energy is not finite")),
            None => Ok(()),
        }
    }

    /// An error about conformation `c` of `x`: `what` is wrong with it; names its two closest
    /// atoms (the usual cause: two on top of each other).
    pub fn clash(&self, x: &[f64], c: usize, source: &str, what: &str) -> Error {
        let d = 3 * self.n_atoms();
        let xi = &x[c * d..(c + 1) * d];
        let (mut i, mut j, mut r) = (0, 1, f64::INFINITY);
        for a in 0..self.n_atoms() {
            for b in a + 1..self.n_atoms() {
                let rab = crate::energy::bonded::distance(xi, a, b);
                if rab < r {
                    (i, j, r) = (a, b, rab);
                }
            }
        }
        let name = |k: usize| {
            let at = &self.topology.atoms[k];
            format!(
                "{k} ({} of {})",
                at.name,
                self.topology.residue_label(at.residue)
            )
        };
        // An atom flung far away shows as a stretched bond, not as a close pair.
        let longest = (self.topology.bonds.iter())
            .map(|&(a, b)| (a, b, crate::energy::bonded::distance(xi, a, b)))
            .filter(|&(_, _, l)| l > STRETCHED_BOND_NM || l.is_nan())
            .max_by(|p, q| p.2.total_cmp(&q.2));
        let stretched = match longest {
            Some((a, b, l)) => {
                format!("; its longest bond, {}-{}, is {l:.3e} nm", name(a), name(b))
            }
            None => String::new(),
        };
        Error::Coordinates {
            file: source.into(),
            msg: format!(
                "conformation {c}: {what}; its closest atoms are {} and {} at {r:.3e} nm{stretched}",
                name(i),
                name(j)
            ),
        }
    }

    /// Energy by term (kJ/mol) of one conformation (atoms x 3, nm).
    pub fn energy(&self, x: &[f64]) -> Energies {
        self.model.energy(x, &mut self.model.workspace())
    }

    /// Energy by term (kJ/mol) and forces -dU/dx (kJ/mol/nm) of one conformation.
    pub fn energy_and_forces(&self, x: &[f64], forces: &mut [f64]) -> Energies {
        let e = self
            .model
            .energy_grad(x, forces, &mut self.model.workspace());
        forces.iter_mut().for_each(|f| *f = -*f);
        e
    }

    /// Energies by term (kJ/mol) of a batch (n x atoms x 3, nm), in parallel; with `forces`
    /// (same shape) also the forces in kJ/mol/nm.
    pub fn energies_batch(&self, x: &[f64], forces: Option<&mut [f64]>) -> Vec<Energies> {
        self.energies_batch_in(x, forces, Precision::default())
    }

    /// [`System::energies_batch`] in `precision`: groups of conformations in SIMD lanes (one
    /// conformation per lane, [`crate::energy::batch`]), the groups on rayon's threads.
    pub fn energies_batch_in(
        &self,
        x: &[f64],
        mut forces: Option<&mut [f64]>,
        precision: Precision,
    ) -> Vec<Energies> {
        let d = 3 * self.n_atoms();
        let mut out = vec![Energies::default(); x.len() / d];
        self.batch_in(x, forces.as_deref_mut(), &mut out, precision);
        if let Some(f) = forces {
            f.iter_mut().for_each(|v| *v = -*v);
        }
        out
    }

    /// Energies (kJ/mol) of the batch `x` into `out`, and with `grad` their gradients (kJ/mol/nm),
    /// in groups of conformation lanes on rayon's threads.
    fn batch_in(
        &self,
        x: &[f64],
        grad: Option<&mut [f64]>,
        out: &mut [Energies],
        precision: Precision,
    ) {
        let d = 3 * self.n_atoms();
        let model = &self.model;
        let lanes = model.batch_lanes(precision);
        let k = out.len();
        // Up to a few lane-fulls per task, fewer when that would leave threads idle; a batch
        // smaller than the lanes, one conformation at a time (padding would cost more).
        let per_thread = k.div_ceil(rayon::current_num_threads().max(1));
        let group = per_thread
            .next_multiple_of(lanes)
            .min(BATCH_GROUP_LANES * lanes);
        let init = || match k < lanes {
            true => model.one_at_a_time(precision),
            false => model.batch_workspace(precision),
        };
        match grad {
            Some(g) => out
                .par_chunks_mut(group)
                .zip(x.par_chunks(group * d))
                .zip(g.par_chunks_mut(group * d))
                .for_each_init(init, |ws, ((e, xs), gs)| {
                    model.energy_grad_batch(xs, Some(gs), e, ws)
                }),
            None => out
                .par_chunks_mut(group)
                .zip(x.par_chunks(group * d))
                .for_each_init(init, |ws, (e, xs)| model.energy_grad_batch(xs, None, e, ws)),
        }
    }
}

/// Lane-fulls of conformations per rayon task in batch evaluations.
const BATCH_GROUP_LANES: usize = 4;

impl System {
    /// The system as a [`Target`] whose pair terms are computed at `precision` (`System`'s own
    /// `Target` is [`Precision::Double`]): mixed precision for the many evaluations of MCMC
    /// moves, as MD uses it (energies within 1e-6 relative, about 1e-4 kT on KW).
    pub fn at(&self, precision: Precision) -> AtPrecision<'_> {
        AtPrecision {
            system: self,
            precision,
        }
    }
}

/// [`System::at`]: a system evaluated at a chosen precision.
pub struct AtPrecision<'a> {
    system: &'a System,
    precision: Precision,
}

impl Target for System {
    fn dim(&self) -> usize {
        3 * self.n_atoms()
    }

    /// Energies in kT and gradients in kT/nm in f64 ([`AtPrecision`]'s).
    fn energy_and_grad(&self, x: &[f64], energy: &mut [f64], grad: Option<&mut [f64]>) {
        self.at(Precision::Double).energy_and_grad(x, energy, grad)
    }
}

impl Target for AtPrecision<'_> {
    fn dim(&self) -> usize {
        self.system.dim()
    }

    /// Energies in kT and gradients in kT/nm; +inf (zero gradient) for non-finite positions, a
    /// non-finite energy, or, when the gradient is asked for, a non-finite gradient: the energy is
    /// not differentiable where two bonded atoms coincide (the bond's direction is undefined), and
    /// a move must not follow a NaN force. The energy alone stays finite there.
    fn energy_and_grad(&self, x: &[f64], energy: &mut [f64], mut grad: Option<&mut [f64]>) {
        let d = self.dim();
        let beta = 1.0 / self.system.kt();
        let mut e = vec![Energies::default(); energy.len()];
        self.system
            .batch_in(x, grad.as_deref_mut(), &mut e, self.precision);
        let clean = |(xi, (ei, out)): (&[f64], (&Energies, &mut f64)), gi: Option<&mut [f64]>| {
            // Coinciding atoms give inf - inf = NaN (or -inf between opposite charges without
            // Lennard-Jones): such a conformation, and one with non-finite positions, has zero
            // Boltzmann weight, never a NaN one.
            let u = ei.total() * beta;
            let smooth = gi
                .as_deref()
                .is_none_or(|g| g.iter().all(|v| v.is_finite()));
            let ok = smooth && u.is_finite() && xi.iter().all(|v| v.is_finite());
            *out = if ok { u } else { f64::INFINITY };
            if let Some(g) = gi {
                match ok {
                    true => g.iter_mut().for_each(|v| *v *= beta),
                    false => g.fill(0.0),
                }
            }
        };
        let rows = x.par_chunks(d).zip(e.par_iter().zip(energy.par_iter_mut()));
        match grad {
            Some(g) => rows
                .zip(g.par_chunks_mut(d))
                .for_each(|(r, gi)| clean(r, Some(gi))),
            None => rows.for_each(|r| clean(r, None)),
        }
    }
}

impl PartialTarget for System {
    /// The energy (kT) of the partial molecule made of the first `placed / 3` atoms: the terms
    /// whose atoms are all placed, with Born radii from the placed atoms only
    /// ([`Parameters::prefix`]).
    fn partial_energy(&self, x: &[f64], placed: usize, energy: &mut [f64]) {
        assert!(
            placed.is_multiple_of(3) && placed <= self.dim(),
            "whole atoms of the system"
        );
        if placed == self.dim() {
            return self.energy_and_grad(x, energy, None);
        }
        if placed == 0 {
            return energy.fill(0.0);
        }
        let atoms: Vec<usize> = (0..placed / 3).collect();
        self.subset_energy(&atoms, x, energy);
    }
}

impl System {
    /// Energies (kT) of the partial molecule made of `atoms` ([`Parameters::subset`]) for a
    /// batch `x` (n x atoms x 3, nm, the atoms in that order) into `energy` (n); non-finite
    /// coordinates or energies give +inf.
    pub fn subset_energy(&self, atoms: &[usize], x: &[f64], energy: &mut [f64]) {
        let model = EnergyModel::new(&self.params.subset(atoms));
        let beta = 1.0 / self.kt();
        energy
            .par_iter_mut()
            .zip(x.par_chunks(3 * atoms.len()))
            .for_each_init(
                || model.workspace(),
                |ws, (e, xi)| {
                    let v = if xi.iter().all(|v| v.is_finite()) {
                        model.energy(xi, ws).total() * beta
                    } else {
                        f64::INFINITY
                    };
                    *e = if v.is_finite() { v } else { f64::INFINITY };
                },
            );
    }

    /// Atom counts at the end of each residue (residues are contiguous in topology order):
    /// the block boundaries of residue-by-residue generation.
    pub fn residue_ends(&self) -> Vec<usize> {
        let atoms = &self.topology.atoms;
        let mut ends: Vec<usize> = (1..atoms.len())
            .filter(|&a| atoms[a].residue != atoms[a - 1].residue)
            .collect();
        ends.push(atoms.len());
        ends
    }
}
