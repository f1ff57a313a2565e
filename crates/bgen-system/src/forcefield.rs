//! The two AMBER implicit-solvent setups of the seed papers and parameter assignment: from a
//! [`Topology`] to every per-atom and per-term parameter, exactly as OpenMM's `createSystem`.

use crate::element::Element;
use crate::error::{Error, Result};
use crate::ffxml::{FfData, ImproperOrdering, NameTables};
use crate::templates::match_templates;
use crate::topology::Topology;
use crate::units::{COULOMB, COULOMB_CUSTOM_GB};
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

/// A named force-field setup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Setup {
    /// AMBER ff99SB-ILDN, no cutoff, native GBSA-OBC2 (solvent 78.3, ACE surface term), 300 K.
    Amber99sbildnObc2,
    /// AMBER ff14SB, non-periodic 2 nm cutoff with reaction field (eps 1), OBC1 with mbondi2
    /// radii as OpenMM's `implicit/obc1.xml` CustomGBForce (solvent 78.5), 310 K.
    Amber14Obc1,
}

impl Setup {
    /// All setups.
    pub const ALL: [Setup; 2] = [Setup::Amber99sbildnObc2, Setup::Amber14Obc1];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Setup::Amber99sbildnObc2 => "amber99sbildn-obc2",
            Setup::Amber14Obc1 => "amber14-obc1",
        }
    }

    /// Parses a setup name (also the reference data's spellings `amber99sbildn_obc`, `amber14_obc1`).
    pub fn from_name(s: &str) -> Result<Setup> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "amber99sbildn-obc2" | "amber99sbildn-obc" | "amber99sbildn" => {
                Ok(Setup::Amber99sbildnObc2)
            }
            "amber14-obc1" | "amber14" => Ok(Setup::Amber14Obc1),
            _ => Err(Error::Other(format!(
                "unknown force field '{s}' (known: amber99sbildn-obc2, amber14-obc1)"
            ))),
        }
    }

    /// Default temperature in K of the seeds' protocol for this setup.
    pub fn default_temperature(self) -> f64 {
        match self {
            Setup::Amber99sbildnObc2 => 300.0,
            Setup::Amber14Obc1 => 310.0,
        }
    }

    /// The parsed force-field files (parsed once per process).
    pub fn data(self) -> &'static FfData {
        static A99: OnceLock<FfData> = OnceLock::new();
        static A14: OnceLock<FfData> = OnceLock::new();
        let load = |files: &[(&str, &str)]| {
            let mut ff = FfData::default();
            for (name, text) in files {
                ff.add_file(text, name)
                    .expect("embedded force-field file parses");
            }
            ff
        };
        match self {
            Setup::Amber99sbildnObc2 => A99.get_or_init(|| {
                load(&[
                    (
                        "amber99sbildn.xml",
                        include_str!("../data/forcefields/amber99sbildn.xml"),
                    ),
                    (
                        "amber99_obc.xml",
                        include_str!("../data/forcefields/amber99_obc.xml"),
                    ),
                ])
            }),
            Setup::Amber14Obc1 => A14.get_or_init(|| {
                load(&[(
                    "amber14/protein.ff14SB.xml",
                    include_str!("../data/forcefields/amber14/protein.ff14SB.xml"),
                )])
            }),
        }
    }
}

/// The PDB name tables (parsed once per process).
pub fn name_tables() -> &'static NameTables {
    static T: OnceLock<NameTables> = OnceLock::new();
    T.get_or_init(|| {
        NameTables::parse(
            include_str!("../data/forcefields/pdbNames.xml"),
            include_str!("../data/forcefields/residues.xml"),
        )
        .expect("embedded name tables parse")
    })
}

/// Harmonic bond: E = k/2 (r - length)^2; length nm, k kJ/mol/nm^2.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bond {
    pub i: usize,
    pub j: usize,
    pub length: f64,
    pub k: f64,
}

/// Harmonic angle i-j-k (j at the apex): E = k/2 (theta - angle)^2; angle rad, k kJ/mol/rad^2.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Angle {
    pub atoms: [usize; 3],
    pub angle: f64,
    pub k: f64,
}

/// Periodic torsion: E = k (1 + cos(n phi - phase)); phase rad, k kJ/mol.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Torsion {
    pub atoms: [usize; 4],
    pub periodicity: i32,
    pub phase: f64,
    pub k: f64,
}

/// A nonbonded exception: an excluded pair (all zero) or a scaled 1-4 pair.
/// charge_prod e^2, sigma nm, epsilon kJ/mol.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Exception {
    pub i: usize,
    pub j: usize,
    pub charge_prod: f64,
    pub sigma: f64,
    pub epsilon: f64,
}

/// How the nonbonded pair interactions are truncated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NonbondedMethod {
    NoCutoff,
    /// Pairs beyond `cutoff` (nm) are ignored; Coulomb uses a reaction field of dielectric `rf_dielectric`.
    CutoffNonPeriodic {
        cutoff: f64,
        rf_dielectric: f64,
    },
}

/// Which OBC generalized-Born implementation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GbModel {
    /// OpenMM's native GBSAOBCForce (OBC2), with its correction for atoms engulfed by a neighbour.
    NativeObc2,
    /// OpenMM's CustomGBForce `GBSAOBC1Force` (OBC1, mbondi2 radii); pair term shifted by -1/cutoff.
    CustomObc1,
}

/// GBSA-OBC parameters of the whole system.
#[derive(Clone, Debug, PartialEq)]
pub struct Gbsa {
    pub model: GbModel,
    /// Per atom: charge e.
    pub charge: Vec<f64>,
    /// Per atom: atomic radius nm (before the 0.009 nm offset).
    pub radius: Vec<f64>,
    /// Per atom: offset radius (radius - 0.009) nm.
    pub offset_radius: Vec<f64>,
    /// Per atom: scaled offset radius (screening scale * offset radius) nm.
    pub scaled_radius: Vec<f64>,
    pub alpha: f64,
    pub beta: f64,
    pub gamma: f64,
    pub solute_dielectric: f64,
    pub solvent_dielectric: f64,
    /// Surface-area prefactor in kJ/mol/nm^2 such that E_sa,i = factor (R_i + 0.14)^2 (R_i / B_i)^6.
    pub surface_factor: f64,
    /// Coulomb constant used by this GB implementation, kJ nm/(mol e^2).
    pub coulomb: f64,
    /// Pair cutoff nm (None: all pairs).
    pub cutoff: Option<f64>,
}

/// Every parameter of a molecular system under one setup (what OpenMM's System holds).
#[derive(Clone, Debug)]
pub struct Parameters {
    pub setup: Setup,
    /// Per atom: mass Da.
    pub mass: Vec<f64>,
    /// Per atom: charge e, LJ sigma nm, LJ epsilon kJ/mol.
    pub charge: Vec<f64>,
    pub sigma: Vec<f64>,
    pub epsilon: Vec<f64>,
    /// Per atom: force-field atom type and class names.
    pub atom_type: Vec<String>,
    pub atom_class: Vec<String>,
    /// Per residue: the matched template name (e.g. "NALA", "HIE").
    pub residue_template: Vec<String>,
    pub bonds: Vec<Bond>,
    pub angles: Vec<Angle>,
    pub torsions: Vec<Torsion>,
    pub exceptions: Vec<Exception>,
    pub nonbonded: NonbondedMethod,
    pub gbsa: Gbsa,
}

/// mbondi2 radius (nm) of OpenMM's customgbforces, by element and the bonded partner of H.
fn mbondi2_radius(e: Element, h_partner: Option<Element>) -> f64 {
    0.1 * match e {
        Element::H => {
            if h_partner == Some(Element::N) {
                1.3
            } else {
                1.2
            }
        }
        Element::C => 1.7,
        Element::N => 1.55,
        Element::O => 1.5,
        Element::F => 1.5,
        Element::Si => 2.1,
        Element::P => 1.85,
        Element::S => 1.8,
        Element::Cl => 1.7,
        _ => 1.5,
    }
}

/// OBC screening factor by element (OpenMM's customgbforces).
fn obc_screen(e: Element) -> f64 {
    match e {
        Element::H => 0.85,
        Element::C => 0.72,
        Element::N => 0.79,
        Element::O => 0.85,
        Element::F => 0.88,
        Element::P => 0.86,
        Element::S => 0.96,
        _ => 0.8,
    }
}

impl Parameters {
    /// The parameters of the partial molecule made of the first `k` atoms (twisted SMC over
    /// atoms in topology order); `prefix(n_atoms)` is the whole system. See [`Parameters::subset`].
    pub fn prefix(&self, k: usize) -> Parameters {
        let k = k.min(self.mass.len());
        self.subset(&(0..k).collect::<Vec<_>>())
    }

    /// The parameters of the partial molecule made of `atoms` (distinct indices), renumbered in
    /// that order: every per-atom array gathered, and only the bonded terms and exceptions whose
    /// atoms are all among them. Its energy is the "partial energy" of twisted SMC (atoms in
    /// topology order or in Z-matrix order); GB Born radii see only these atoms.
    pub fn subset(&self, atoms: &[usize]) -> Parameters {
        let mut new = vec![usize::MAX; self.mass.len()];
        for (k, &a) in atoms.iter().enumerate() {
            new[a] = k;
        }
        let pick = |v: &Vec<f64>| atoms.iter().map(|&a| v[a]).collect::<Vec<f64>>();
        let names = |v: &Vec<String>| atoms.iter().map(|&a| v[a].clone()).collect();
        // Renumbered atoms of a term, or None when one of them is not in the subset.
        let map = |ids: &[usize]| -> Option<Vec<usize>> {
            ids.iter()
                .map(|&a| Some(new[a]).filter(|&k| k != usize::MAX))
                .collect()
        };
        let g = &self.gbsa;
        Parameters {
            setup: self.setup,
            mass: pick(&self.mass),
            charge: pick(&self.charge),
            sigma: pick(&self.sigma),
            epsilon: pick(&self.epsilon),
            atom_type: names(&self.atom_type),
            atom_class: names(&self.atom_class),
            residue_template: self.residue_template.clone(),
            bonds: self
                .bonds
                .iter()
                .filter_map(|b| {
                    map(&[b.i, b.j]).map(|m| Bond {
                        i: m[0],
                        j: m[1],
                        ..*b
                    })
                })
                .collect(),
            angles: self
                .angles
                .iter()
                .filter_map(|t| {
                    map(&t.atoms).map(|m| Angle {
                        atoms: [m[0], m[1], m[2]],
                        ..*t
                    })
                })
                .collect(),
            torsions: self
                .torsions
                .iter()
                .filter_map(|t| {
                    map(&t.atoms).map(|m| Torsion {
                        atoms: [m[0], m[1], m[2], m[3]],
                        ..*t
                    })
                })
                .collect(),
            exceptions: self
                .exceptions
                .iter()
                .filter_map(|e| {
                    map(&[e.i, e.j]).map(|m| Exception {
                        i: m[0],
                        j: m[1],
                        ..*e
                    })
                })
                .collect(),
            nonbonded: self.nonbonded,
            gbsa: Gbsa {
                charge: pick(&g.charge),
                radius: pick(&g.radius),
                offset_radius: pick(&g.offset_radius),
                scaled_radius: pick(&g.scaled_radius),
                ..g.clone()
            },
        }
    }

    /// Assigns all parameters of `setup` to `top` (OpenMM `createSystem` with the seeds' arguments):
    /// atom types and charges from the matched templates, then each force's generator in turn.
    pub fn assign(top: &Topology, setup: Setup) -> Result<Parameters> {
        let ff = setup.data();
        let matches = match_templates(top, ff, setup.name())?;
        let n = top.n_atoms();
        let mut atom_type = vec![0usize; n];
        let mut template_index = vec![0usize; n];
        let mut charge = vec![0.0; n];
        for (ri, m) in matches.iter().enumerate() {
            let t = &ff.templates[m.template];
            for (k, a) in top.residues[ri].atoms.clone().enumerate() {
                let ta = &t.atoms[m.atom_map[k]];
                atom_type[a] = ta.type_index;
                template_index[a] = m.atom_map[k];
                let per_type = ff.nonbonded[ta.type_index].ok_or_else(|| {
                    top.residue_error(
                        ri,
                        format!(
                            "atom '{}': type {} has no nonbonded parameters",
                            top.atoms[a].name, ff.types[ta.type_index].name
                        ),
                    )
                })?;
                charge[a] = ta.charge.or(per_type.0).ok_or_else(|| {
                    top.residue_error(ri, format!("atom '{}' has no charge", top.atoms[a].name))
                })?;
            }
        }
        let nb: Vec<(Option<f64>, f64, f64)> = atom_type
            .iter()
            .map(|&t| ff.nonbonded[t].expect("checked above"))
            .collect();
        let sigma: Vec<f64> = nb.iter().map(|p| p.1).collect();
        let epsilon: Vec<f64> = nb.iter().map(|p| p.2).collect();
        let typed = Typed {
            top,
            ff,
            bonded: top.bonded_to(),
            atom_type,
            template_index,
        };
        let mut torsions = typed.propers();
        torsions.extend(typed.impropers());
        let (nonbonded, gbsa) = match setup {
            Setup::Amber99sbildnObc2 => (NonbondedMethod::NoCutoff, typed.gbsa_obc2(&charge)?),
            Setup::Amber14Obc1 => typed.gbsa_obc1(&charge),
        };
        let atom_type = &typed.atom_type;
        Ok(Parameters {
            setup,
            mass: atom_type.iter().map(|&t| ff.types[t].mass).collect(),
            bonds: typed.bonds()?,
            angles: typed.angles()?,
            torsions,
            exceptions: typed.exceptions(&charge, &sigma, &epsilon),
            charge,
            sigma,
            epsilon,
            atom_type: atom_type
                .iter()
                .map(|&t| ff.types[t].name.clone())
                .collect(),
            atom_class: atom_type
                .iter()
                .map(|&t| ff.types[t].class.clone())
                .collect(),
            residue_template: matches
                .iter()
                .map(|m| ff.templates[m.template].name.clone())
                .collect(),
            nonbonded,
            gbsa,
        })
    }
}

/// A topology with its atom types assigned: what each force's parameter generator reads.
struct Typed<'a> {
    top: &'a Topology,
    ff: &'a FfData,
    /// Per atom: bonded neighbours, force-field type, index in its residue template.
    bonded: Vec<Vec<usize>>,
    atom_type: Vec<usize>,
    template_index: Vec<usize>,
}

impl Typed<'_> {
    /// Atoms as "RES:NAME - ..." and their classes, for a missing-parameter error.
    fn describe(&self, atoms: &[usize]) -> (String, String) {
        let a = atoms
            .iter()
            .map(|&i| {
                format!(
                    "{}:{}",
                    self.top.residue_label(self.top.atoms[i].residue),
                    self.top.atoms[i].name
                )
            })
            .collect::<Vec<_>>()
            .join(" - ");
        let c = atoms
            .iter()
            .map(|&i| self.ff.types[self.atom_type[i]].class.clone())
            .collect::<Vec<_>>()
            .join(" - ");
        (a, c)
    }

    /// HarmonicBondForce: one bond per topology bond, in topology order.
    fn bonds(&self) -> Result<Vec<Bond>> {
        // Bonds, in topology order.
        let mut bonds = Vec::with_capacity(self.top.bonds.len());
        for &(i, j) in &self.top.bonds {
            let (ti, tj) = (self.atom_type[i], self.atom_type[j]);
            let def = self.ff.bonds.iter().find(|d| {
                (self.ff.matches(d.types[0], ti) && self.ff.matches(d.types[1], tj))
                    || (self.ff.matches(d.types[0], tj) && self.ff.matches(d.types[1], ti))
            });
            let d = def.ok_or_else(|| {
                let (atoms, classes) = self.describe(&[i, j]);
                Error::MissingParameter {
                    file: self.top.source.clone(),
                    term: "bond",
                    atoms,
                    classes,
                }
            })?;
            bonds.push(Bond {
                i,
                j,
                length: d.length,
                k: d.k,
            });
        }
        Ok(bonds)
    }

    /// HarmonicAngleForce: every i-j-k with i < k bonded to j, sorted (OpenMM's order).
    fn angles(&self) -> Result<Vec<Angle>> {
        // Angles: all unique i-j-k with i < k, sorted (OpenMM's order).
        let mut angle_set: Vec<[usize; 3]> = Vec::new();
        for (j, nb) in self.bonded.iter().enumerate() {
            for (x, &i) in nb.iter().enumerate() {
                for &k in &nb[x + 1..] {
                    angle_set.push([i.min(k), j, i.max(k)]);
                }
            }
        }
        angle_set.sort_unstable();
        let mut angles = Vec::with_capacity(angle_set.len());
        for a in &angle_set {
            let t = [
                self.atom_type[a[0]],
                self.atom_type[a[1]],
                self.atom_type[a[2]],
            ];
            let def = self.ff.angles.iter().find(|d| {
                self.ff.matches(d.types[1], t[1])
                    && ((self.ff.matches(d.types[0], t[0]) && self.ff.matches(d.types[2], t[2]))
                        || (self.ff.matches(d.types[0], t[2]) && self.ff.matches(d.types[2], t[0])))
            });
            let d = def.ok_or_else(|| {
                let (atoms, classes) = self.describe(a);
                Error::MissingParameter {
                    file: self.top.source.clone(),
                    term: "angle",
                    atoms,
                    classes,
                }
            })?;
            angles.push(Angle {
                atoms: *a,
                angle: d.angle,
                k: d.k,
            });
        }
        Ok(angles)
    }

    /// PeriodicTorsionForce, propers: every path a-b-c-d (a < d), sorted; the most specific
    /// definition wins.
    fn propers(&self) -> Vec<Torsion> {
        // Proper torsions: every path a-b-c-d, oriented so that a < d, sorted.
        let mut propers: Vec<[usize; 4]> = Vec::new();
        for &(b, c) in &self.top.bonds {
            for &a in &self.bonded[b] {
                if a == c {
                    continue;
                }
                for &d in &self.bonded[c] {
                    if d == b || d == a {
                        continue;
                    }
                    propers.push(if a < d { [a, b, c, d] } else { [d, c, b, a] });
                }
            }
        }
        propers.sort_unstable();
        propers.dedup();
        let mut torsions = Vec::new();
        for p in &propers {
            let t = p.map(|a| self.atom_type[a]);
            let mut found: Option<&crate::ffxml::TorsionDef> = None;
            for d in &self.ff.propers {
                let m = |k: usize, x: usize| self.ff.matches(d.types[k], t[x]);
                if (m(0, 0) && m(1, 1) && m(2, 2) && m(3, 3))
                    || (m(0, 3) && m(1, 2) && m(2, 1) && m(3, 0))
                {
                    let wild = d.has_wildcard();
                    if found.is_none() || !wild {
                        found = Some(d);
                    }
                    if !wild {
                        break;
                    }
                }
            }
            if let Some(d) = found {
                for &(per, phase, k) in &d.terms {
                    if k != 0.0 {
                        torsions.push(Torsion {
                            atoms: *p,
                            periodicity: per,
                            phase,
                            k,
                        });
                    }
                }
            }
        }
        torsions
    }

    /// PeriodicTorsionForce, impropers: each atom with three or more neighbours and each triple
    /// of them, matched as OpenMM does ([`match_improper`]).
    fn impropers(&self) -> Vec<Torsion> {
        let mut torsions = Vec::new();
        // Improper torsions: each atom with >= 3 neighbours and each triple of them.
        let ordering = self
            .ff
            .improper_ordering
            .unwrap_or(ImproperOrdering::Default);
        let mut cache: HashMap<[usize; 4], Option<([usize; 4], usize)>> = HashMap::new();
        for (c, nb) in self.bonded.iter().enumerate() {
            if nb.len() < 3 {
                continue;
            }
            for x in 0..nb.len() {
                for y in x + 1..nb.len() {
                    for z in y + 1..nb.len() {
                        let cand = [c, nb[x], nb[y], nb[z]];
                        let sig = cand.map(|a| self.atom_type[a]);
                        let hit = match cache.get(&sig) {
                            Some(h) => h.map(|(pos, d)| (pos.map(|p| cand[p]), d)),
                            None => {
                                let h = match_improper(
                                    self.ff,
                                    ordering,
                                    &cand,
                                    &self.atom_type,
                                    &self.template_index,
                                    self.top,
                                );
                                cache.insert(
                                    sig,
                                    h.map(|(atoms, d)| {
                                        (
                                            atoms.map(|a| {
                                                cand.iter()
                                                    .position(|&q| q == a)
                                                    .expect("atom of cand")
                                            }),
                                            d,
                                        )
                                    }),
                                );
                                h
                            }
                        };
                        if let Some((atoms, d)) = hit {
                            for &(per, phase, k) in &self.ff.impropers[d].terms {
                                if k != 0.0 {
                                    torsions.push(Torsion {
                                        atoms,
                                        periodicity: per,
                                        phase,
                                        k,
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        torsions
    }

    /// NonbondedForce exceptions from the bonds: 1-2 and 1-3 pairs excluded, 1-4 pairs scaled
    /// by the force field's coulomb14scale and lj14scale.
    fn exceptions(&self, charge: &[f64], sigma: &[f64], epsilon: &[f64]) -> Vec<Exception> {
        let n = self.top.n_atoms();
        // Nonbonded exceptions from bonds: 1-2 and 1-3 excluded, 1-4 scaled.
        let mut exceptions = Vec::new();
        for i in 0..n {
            let mut near: HashSet<usize> = HashSet::new();
            for &j in &self.bonded[i] {
                near.insert(j);
                for &k in &self.bonded[j] {
                    near.insert(k);
                }
            }
            near.remove(&i);
            let mut four: HashSet<usize> = HashSet::new();
            for &j in &near {
                for &k in &self.bonded[j] {
                    if k != i && !near.contains(&k) {
                        four.insert(k);
                    }
                }
            }
            let mut near: Vec<usize> = near.into_iter().filter(|&j| j > i).collect();
            near.sort_unstable();
            for j in near {
                exceptions.push(Exception {
                    i,
                    j,
                    charge_prod: 0.0,
                    sigma: 1.0,
                    epsilon: 0.0,
                });
            }
            let mut four: Vec<usize> = four.into_iter().filter(|&j| j > i).collect();
            four.sort_unstable();
            for j in four {
                exceptions.push(Exception {
                    i,
                    j,
                    charge_prod: charge[i] * charge[j] * self.ff.coulomb14scale,
                    sigma: 0.5 * (sigma[i] + sigma[j]),
                    epsilon: (epsilon[i] * epsilon[j]).sqrt() * self.ff.lj14scale,
                });
            }
        }
        exceptions
    }

    /// GBSAOBCForce (amber99_obc.xml, OBC2): radii and screening scales per atom type.
    fn gbsa_obc2(&self, charge: &[f64]) -> Result<Gbsa> {
        let n = self.top.n_atoms();
        let mut radius = vec![0.0; n];
        let mut scale = vec![0.0; n];
        for a in 0..n {
            let p = self.ff.gbsa_obc[self.atom_type[a]].ok_or_else(|| {
                self.top.residue_error(
                    self.top.atoms[a].residue,
                    format!(
                        "atom '{}': no GBSA-OBC parameters for its type",
                        self.top.atoms[a].name
                    ),
                )
            })?;
            radius[a] = p.1;
            scale[a] = p.2;
        }
        let offset_radius: Vec<f64> = radius.iter().map(|r| r - 0.009).collect();
        let gb = Gbsa {
            model: GbModel::NativeObc2,
            charge: charge.to_vec(),
            scaled_radius: offset_radius
                .iter()
                .zip(&scale)
                .map(|(o, s)| o * s)
                .collect(),
            radius,
            offset_radius,
            alpha: 1.0,
            beta: 0.8,
            gamma: 4.85,
            solute_dielectric: 1.0,
            solvent_dielectric: 78.3,
            surface_factor: 4.0 * std::f64::consts::PI * 2.25936,
            coulomb: COULOMB,
            cutoff: None,
        };
        Ok(gb)
    }

    /// CustomGBForce GBSAOBC1Force (implicit/obc1.xml): mbondi2 radii by element, screening by
    /// element, a 2 nm cutoff with the nonbonded reaction field.
    fn gbsa_obc1(&self, charge: &[f64]) -> (NonbondedMethod, Gbsa) {
        let n = self.top.n_atoms();
        let cutoff = 2.0;
        let radius: Vec<f64> = (0..n)
            .map(|a| {
                let e = self.top.atoms[a].element;
                let partner = self.bonded[a].first().map(|&b| self.top.atoms[b].element);
                mbondi2_radius(e, partner)
            })
            .collect();
        let offset_radius: Vec<f64> = radius.iter().map(|r| r - 0.009).collect();
        let gb = Gbsa {
            model: GbModel::CustomObc1,
            charge: charge.to_vec(),
            scaled_radius: (0..n)
                .map(|a| obc_screen(self.top.atoms[a].element) * offset_radius[a])
                .collect(),
            radius: offset_radius.iter().map(|o| o + 0.009).collect(),
            offset_radius,
            alpha: 0.8,
            beta: 0.0,
            gamma: 2.909125,
            solute_dielectric: 1.0,
            solvent_dielectric: 78.5,
            surface_factor: 28.3919551,
            coulomb: COULOMB_CUSTOM_GB,
            cutoff: Some(cutoff),
        };
        (
            NonbondedMethod::CutoffNonPeriodic {
                cutoff,
                rf_dielectric: 1.0,
            },
            gb,
        )
    }
}

/// OpenMM's improper matching: the first definition whose central type matches and whose other
/// three slots match some permutation of the neighbours (specific definitions win over ones with
/// wildcards), then the atom order of the `ordering` rule. Returns (atoms, definition index).
fn match_improper(
    ff: &FfData,
    ordering: ImproperOrdering,
    cand: &[usize; 4],
    atom_type: &[usize],
    tidx: &[usize],
    top: &Topology,
) -> Option<([usize; 4], usize)> {
    let t = cand.map(|a| atom_type[a]);
    let mut found: Option<([usize; 4], usize)> = None;
    const PERMS: [[usize; 3]; 6] = [
        [1, 2, 3],
        [1, 3, 2],
        [2, 1, 3],
        [2, 3, 1],
        [3, 1, 2],
        [3, 2, 1],
    ];
    for (di, d) in ff.impropers.iter().enumerate() {
        let wild = d.has_wildcard();
        if found.is_some() && wild {
            continue;
        }
        if !ff.matches(d.types[0], t[0]) {
            continue;
        }
        for p in PERMS {
            if !(ff.matches(d.types[1], t[p[0]])
                && ff.matches(d.types[2], t[p[1]])
                && ff.matches(d.types[3], t[p[2]]))
            {
                continue;
            }
            let (mut a2, mut a3, mut a4) = (cand[p[0]], cand[p[1]], cand[p[2]]);
            match ordering {
                ImproperOrdering::Default => {
                    let (e2, e3) = (top.atoms[a2].element, top.atoms[a3].element);
                    // same element: lower index first; else carbon, then the heavier element first
                    let swap = if e2 == e3 {
                        a2 > a3
                    } else {
                        e2 != Element::C && (e3 == Element::C || e2.mass() < e3.mass())
                    };
                    if swap {
                        std::mem::swap(&mut a2, &mut a3);
                    }
                }
                ImproperOrdering::Amber => {
                    let key = |a: usize| (top.atoms[a].residue, tidx[a]);
                    let (t2, t3, t4) = (atom_type[a2], atom_type[a3], atom_type[a4]);
                    let (e2, e3, e4) = (
                        top.atoms[a2].element,
                        top.atoms[a3].element,
                        top.atoms[a4].element,
                    );
                    if !wild {
                        if t2 == t4 && key(a2) > key(a4) {
                            std::mem::swap(&mut a2, &mut a4);
                        }
                        if t3 == t4 && key(a3) > key(a4) {
                            std::mem::swap(&mut a3, &mut a4);
                        }
                        if t2 == t3 && key(a2) > key(a3) {
                            std::mem::swap(&mut a2, &mut a3);
                        }
                    } else {
                        if e2 == e4 && key(a2) > key(a4) {
                            std::mem::swap(&mut a2, &mut a4);
                        }
                        if e3 == e4 && key(a3) > key(a4) {
                            std::mem::swap(&mut a3, &mut a4);
                        }
                        if key(a2) > key(a3) {
                            std::mem::swap(&mut a2, &mut a3);
                        }
                    }
                }
            }
            found = Some(([a2, a3, cand[0], a4], di));
            break;
        }
    }
    found
}
