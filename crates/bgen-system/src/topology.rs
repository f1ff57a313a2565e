//! Molecular topology: chains, residues, atoms and bonds, built from a PDB file the way OpenMM's
//! `PDBFile` does (canonical names from `pdbNames.xml`, standard bonds from `residues.xml`,
//! disulfides by proximity, CONECT records).

use crate::element::Element;
use crate::energy::bonded::distance;
use crate::error::{Error, Result};
use crate::ffxml::NameTables;
use crate::pdb::PdbFile;
use std::collections::{HashMap, HashSet};
use std::ops::Range;

/// One atom.
#[derive(Clone, Debug)]
pub struct Atom {
    pub name: String,
    pub element: Element,
    /// Index into [`Topology::residues`].
    pub residue: usize,
}

/// One residue: a contiguous range of atoms.
#[derive(Clone, Debug)]
pub struct Residue {
    /// Canonical residue name (after `pdbNames.xml`), e.g. "HIS" for a file's "HID".
    pub name: String,
    /// Residue number as in the file.
    pub number: i32,
    /// Index into [`Topology::chains`].
    pub chain: usize,
    pub atoms: Range<usize>,
}

/// One chain: residues in order.
#[derive(Clone, Debug)]
pub struct Chain {
    pub id: String,
    pub residues: Vec<usize>,
}

/// Atoms, residues, chains and bonds (pairs of atom indices, i < j).
#[derive(Clone, Debug)]
pub struct Topology {
    pub atoms: Vec<Atom>,
    pub residues: Vec<Residue>,
    pub chains: Vec<Chain>,
    pub bonds: Vec<(usize, usize)>,
    /// Where it came from (file name or `<embedded NAME>`), used in error messages.
    pub source: String,
}

const AMINO_ACIDS: [&str; 28] = [
    "ALA", "ARG", "ASN", "ASP", "ASH", "CYS", "CYX", "CYM", "GLN", "GLU", "GLH", "GLY", "HIS",
    "HID", "HIE", "HIP", "ILE", "LEU", "LYS", "LYN", "MET", "PHE", "PRO", "SER", "THR", "TRP",
    "TYR", "VAL",
];

/// True for the standard amino acids (and their protonation variants).
pub fn is_standard_amino_acid(name: &str) -> bool {
    AMINO_ACIDS.contains(&name)
}

/// The longest bond between consecutive residues a structure may hold, nm (a peptide bond is
/// 0.13 nm; twice its length is a strained structure, more is a gap).
pub const GAP_NM: f64 = 0.3;

impl Topology {
    /// Builds the topology of a PDB file. Fails on atoms without a known element and on duplicate
    /// atom names within a residue.
    pub fn from_pdb(pdb: &PdbFile, names: &NameTables) -> Result<Topology> {
        let mut top = Topology {
            atoms: vec![],
            residues: vec![],
            chains: vec![],
            bonds: vec![],
            source: pdb.source.clone(),
        };
        let mut prev_key: Option<(String, i32, char, String)> = None;
        let mut new_chain = true;
        for (i, a) in pdb.atoms.iter().enumerate() {
            if new_chain || prev_key.as_ref().is_some_and(|k| k.0 != a.chain) {
                top.chains.push(Chain {
                    id: a.chain.clone(),
                    residues: vec![],
                });
                prev_key = None;
            }
            new_chain = a.ter_after;
            let key = (a.chain.clone(), a.res_seq, a.insertion, a.res_name.clone());
            if prev_key.as_ref() != Some(&key) {
                let name = names
                    .residue_alias
                    .get(&a.res_name)
                    .cloned()
                    .unwrap_or_else(|| a.res_name.clone());
                let chain = top.chains.len() - 1;
                top.chains[chain].residues.push(top.residues.len());
                top.residues.push(Residue {
                    name,
                    number: a.res_seq,
                    chain,
                    atoms: i..i,
                });
                prev_key = Some(key);
            }
            let ri = top.residues.len() - 1;
            let res = &mut top.residues[ri];
            res.atoms.end = i + 1;
            let name = names
                .atom_alias
                .get(&res.name)
                .and_then(|m| m.get(&a.name))
                .cloned()
                .unwrap_or_else(|| a.name.clone());
            let element = a.element.ok_or_else(|| Error::Residue {
                file: pdb.source.clone(),
                residue: format!("{} {}", a.res_name, a.res_seq),
                msg: format!(
                    "atom '{}' has no element (columns 77-78 empty and not guessable)",
                    a.name
                ),
            })?;
            top.atoms.push(Atom {
                name,
                element,
                residue: ri,
            });
        }
        for ri in 0..top.residues.len() {
            let mut seen = HashSet::new();
            for ai in top.residues[ri].atoms.clone() {
                if !seen.insert(top.atoms[ai].name.as_str()) {
                    return Err(top.residue_error(
                        ri,
                        format!("atom name '{}' occurs twice", top.atoms[ai].name),
                    ));
                }
            }
        }
        let mut bonds: HashSet<(usize, usize)> = HashSet::new();
        top.standard_bonds(names, &mut bonds);
        let pos = pdb.positions();
        top.refuse_gaps(&bonds, &pos)?;
        top.disulfide_bonds(&pos, &mut bonds);
        bonds.extend(pdb.conect.iter().copied());
        let mut bonds: Vec<_> = bonds.into_iter().collect();
        bonds.sort_unstable();
        top.bonds = bonds;
        Ok(top)
    }

    /// An error about residue `ri`, naming the file and the residue.
    pub fn residue_error(&self, ri: usize, msg: String) -> Error {
        Error::Residue {
            file: self.source.clone(),
            residue: self.residue_label(ri),
            msg,
        }
    }

    /// "ALA 2" or "ALA 2 (chain B)" for messages.
    pub fn residue_label(&self, ri: usize) -> String {
        let r = &self.residues[ri];
        let chain = &self.chains[r.chain].id;
        if self.chains.len() > 1 && !chain.is_empty() {
            format!("{} {} (chain {chain})", r.name, r.number)
        } else {
            format!("{} {}", r.name, r.number)
        }
    }

    fn atom_by_name(&self, ri: usize, name: &str) -> Option<usize> {
        self.residues[ri]
            .atoms
            .clone()
            .find(|&a| self.atoms[a].name == name)
    }

    fn standard_bonds(&self, names: &NameTables, bonds: &mut HashSet<(usize, usize)>) {
        for chain in &self.chains {
            for (k, &ri) in chain.residues.iter().enumerate() {
                let Some(defs) = names.bonds.get(&self.residues[ri].name) else {
                    continue;
                };
                let resolve = |n: &str| -> Option<usize> {
                    if let Some(n) = n.strip_prefix('-') {
                        (k > 0)
                            .then(|| self.atom_by_name(chain.residues[k - 1], n))
                            .flatten()
                    } else if let Some(n) = n.strip_prefix('+') {
                        chain
                            .residues
                            .get(k + 1)
                            .and_then(|&r| self.atom_by_name(r, n))
                    } else {
                        self.atom_by_name(ri, n)
                    }
                };
                for (a, b) in defs {
                    if let (Some(i), Some(j)) = (resolve(a), resolve(b)) {
                        bonds.insert((i.min(j), i.max(j)));
                    }
                }
            }
        }
    }

    /// Refuses a bond between consecutive residues of a chain (the peptide bond, 0.13 nm)
    /// whose atoms lie more than [`GAP_NM`] apart in the file: a chain break or a missing
    /// residue, which a bond would silently pull shut.
    fn refuse_gaps(&self, bonds: &HashSet<(usize, usize)>, pos: &[f64]) -> Result<()> {
        let mut between: Vec<&(usize, usize)> = bonds
            .iter()
            .filter(|(i, j)| self.atoms[*i].residue != self.atoms[*j].residue)
            .collect();
        between.sort_unstable();
        for &&(i, j) in &between {
            let r = distance(pos, i, j);
            if r > GAP_NM {
                let name = |a: usize| {
                    let at = &self.atoms[a];
                    format!("{} of {}", at.name, self.residue_label(at.residue))
                };
                return Err(Error::Other(format!(
                    "{}: {} and {} are {r:.2} nm apart, yet consecutive in the chain: a chain \
                     break or a missing residue. Fill the gap (e.g. with pdbfixer) or end the \
                     chain with a TER record between the pieces",
                    self.source,
                    name(i),
                    name(j)
                )));
            }
        }
        Ok(())
    }

    /// SG-SG bonds between CYS residues without HG closer than 0.3 nm (as OpenMM).
    fn disulfide_bonds(&self, pos: &[f64], bonds: &mut HashSet<(usize, usize)>) {
        let sg: Vec<usize> = (0..self.residues.len())
            .filter(|&r| self.residues[r].name == "CYS" && self.atom_by_name(r, "HG").is_none())
            .filter_map(|r| self.atom_by_name(r, "SG"))
            .collect();
        let mut bonded: HashSet<usize> = HashSet::new();
        for (k, &a) in sg.iter().enumerate() {
            let mut best: Option<(f64, usize)> = None;
            for &b in &sg[..k] {
                let d = distance(pos, a, b);
                if d < best.map_or(0.3, |x| x.0) && !bonded.contains(&b) {
                    best = Some((d, b));
                }
            }
            if let Some((_, b)) = best {
                bonded.insert(a);
                bonded.insert(b);
                bonds.insert((a.min(b), a.max(b)));
            }
        }
    }

    /// Neighbour lists, each sorted ascending.
    pub fn bonded_to(&self) -> Vec<Vec<usize>> {
        let mut nb = vec![Vec::new(); self.atoms.len()];
        for &(i, j) in &self.bonds {
            nb[i].push(j);
            nb[j].push(i);
        }
        for v in &mut nb {
            v.sort_unstable();
            v.dedup();
        }
        nb
    }

    /// Number of atoms.
    pub fn n_atoms(&self) -> usize {
        self.atoms.len()
    }

    /// Residue names in order, e.g. ["ACE", "ALA", "NME"].
    pub fn sequence(&self) -> Vec<&str> {
        self.residues.iter().map(|r| r.name.as_str()).collect()
    }

    /// Map from atom name to index within residue `ri`.
    pub fn residue_atoms(&self, ri: usize) -> HashMap<&str, usize> {
        self.residues[ri]
            .atoms
            .clone()
            .map(|a| (self.atoms[a].name.as_str(), a))
            .collect()
    }

    /// Alpha-carbon chiral centres: (CA, N, C, CB) of every residue that has all four (all
    /// standard amino acids but glycine).
    pub fn chiral_centres(&self) -> Vec<[usize; 4]> {
        (0..self.residues.len())
            .filter_map(|ri| {
                let at = self.residue_atoms(ri);
                Some([*at.get("CA")?, *at.get("N")?, *at.get("C")?, *at.get("CB")?])
            })
            .collect()
    }

    /// Backbone dihedrals phi (C(i-1)-N-CA-C) and psi (N-CA-C-N(i+1)) of every residue that has
    /// N, CA and C and bonded neighbours in its chain (caps such as ACE/NME supply the outer
    /// atoms), in chain order, phi before psi.
    pub fn backbone_dihedrals(&self) -> Vec<BackboneDihedral> {
        let bonded: HashSet<(usize, usize)> = self.bonds.iter().copied().collect();
        let is_bond = |a: usize, b: usize| bonded.contains(&(a.min(b), a.max(b)));
        let mut out = Vec::new();
        for chain in &self.chains {
            for (k, &ri) in chain.residues.iter().enumerate() {
                let at = self.residue_atoms(ri);
                let (Some(&n), Some(&ca), Some(&c)) = (at.get("N"), at.get("CA"), at.get("C"))
                else {
                    continue;
                };
                let label = self.residue_label(ri);
                if let Some(&prev) = k.checked_sub(1).map(|p| &chain.residues[p]) {
                    if let Some(&cp) = self.residue_atoms(prev).get("C") {
                        if is_bond(cp, n) {
                            out.push(BackboneDihedral {
                                name: format!("phi {label}"),
                                residue: ri,
                                is_phi: true,
                                atoms: [cp, n, ca, c],
                            });
                        }
                    }
                }
                if let Some(&next) = chain.residues.get(k + 1) {
                    if let Some(&nn) = self.residue_atoms(next).get("N") {
                        if is_bond(c, nn) {
                            out.push(BackboneDihedral {
                                name: format!("psi {label}"),
                                residue: ri,
                                is_phi: false,
                                atoms: [n, ca, c, nn],
                            });
                        }
                    }
                }
            }
        }
        out
    }
}

/// A backbone dihedral angle defined by four atoms (see [`Topology::backbone_dihedrals`]).
#[derive(Clone, Debug, PartialEq)]
pub struct BackboneDihedral {
    /// e.g. "phi ALA2".
    pub name: String,
    pub residue: usize,
    /// phi (true) or psi (false).
    pub is_phi: bool,
    pub atoms: [usize; 4],
}

/// Signed volume (N - CA) . ((C - CA) x (CB - CA)) of a chiral centre (CA, N, C, CB) in nm^3:
/// its sign tells the handedness (L-amino acids share one sign).
pub fn chirality(x: &[f64], centre: [usize; 4]) -> f64 {
    let [ca, n, c, cb] = centre;
    let v = |a: usize| {
        [
            x[3 * a] - x[3 * ca],
            x[3 * a + 1] - x[3 * ca + 1],
            x[3 * a + 2] - x[3 * ca + 2],
        ]
    };
    let (a, b, d) = (v(n), v(c), v(cb));
    a[0] * (b[1] * d[2] - b[2] * d[1])
        + a[1] * (b[2] * d[0] - b[0] * d[2])
        + a[2] * (b[0] * d[1] - b[1] * d[0])
}

/// Mirror images among samples (n x atoms x 3, nm): a sample whose chiral centres mostly have
/// the opposite handedness to `reference` (e.g. the input structure) is reflected (x -> -x),
/// which restores every centre and leaves the energy unchanged. Returns how many were flipped.
pub fn fix_mirror_images(
    samples: &mut [f64],
    n_atoms: usize,
    centres: &[[usize; 4]],
    reference: &[f64],
) -> usize {
    if centres.is_empty() {
        return 0;
    }
    let want: Vec<f64> = centres
        .iter()
        .map(|&c| chirality(reference, c).signum())
        .collect();
    let mut flipped = 0;
    for s in samples.chunks_mut(3 * n_atoms) {
        let wrong = centres
            .iter()
            .zip(&want)
            .filter(|(&c, &w)| chirality(s, c) * w < 0.0)
            .count();
        if 2 * wrong > centres.len() {
            s.iter_mut().for_each(|v| *v = -*v);
            flipped += 1;
        }
    }
    flipped
}
