//! Parser for OpenMM force-field XML files (atom types, residue templates, bonded and nonbonded
//! parameters, GBSA-OBC per-type parameters) and the PDB name tables (`pdbNames.xml`,
//! `residues.xml`). Units as in the files: nm, rad, kJ/mol, e.

use crate::element::Element;
use crate::error::{Error, Result};
use std::collections::HashMap;

/// An atom type: every template atom has one; bonded parameters match by type or class.
#[derive(Clone, Debug)]
pub struct AtomType {
    pub name: String,
    pub class: String,
    pub element: Option<Element>,
    /// Mass in Da.
    pub mass: f64,
}

/// One atom of a residue template.
#[derive(Clone, Debug)]
pub struct TemplateAtom {
    pub name: String,
    /// Index into [`FfData::types`].
    pub type_index: usize,
    /// Partial charge in e when the template carries it (ff14SB); else from the NonbondedForce.
    pub charge: Option<f64>,
}

/// A residue template: atoms, intra-residue bonds and atoms with bonds to other residues.
#[derive(Clone, Debug)]
pub struct ResidueTemplate {
    pub name: String,
    pub atoms: Vec<TemplateAtom>,
    pub bonds: Vec<(usize, usize)>,
    /// Number of external bonds per template atom.
    pub external: Vec<u8>,
}

/// What one slot of a bonded-parameter definition matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeMatch {
    /// Empty class: any type.
    Any,
    /// All types of this class (index into [`FfData::classes`]).
    Class(usize),
    /// Exactly this type.
    Type(usize),
}

/// Harmonic bond definition: E = k/2 (r - length)^2, length nm, k kJ/mol/nm^2.
#[derive(Clone, Debug)]
pub struct BondDef {
    pub types: [TypeMatch; 2],
    pub length: f64,
    pub k: f64,
}

/// Harmonic angle definition: E = k/2 (theta - angle)^2, angle rad, k kJ/mol/rad^2.
#[derive(Clone, Debug)]
pub struct AngleDef {
    pub types: [TypeMatch; 3],
    pub angle: f64,
    pub k: f64,
}

/// Periodic torsion definition: E = sum k (1 + cos(n phi - phase)).
#[derive(Clone, Debug)]
pub struct TorsionDef {
    pub types: [TypeMatch; 4],
    /// (periodicity, phase rad, k kJ/mol) terms.
    pub terms: Vec<(i32, f64, f64)>,
}

impl TorsionDef {
    /// True when any slot is a wildcard.
    pub fn has_wildcard(&self) -> bool {
        self.types.contains(&TypeMatch::Any)
    }
}

/// Ordering rule for improper torsions (OpenMM's `ordering` attribute).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImproperOrdering {
    Default,
    Amber,
}

/// Everything read from a set of force-field files.
#[derive(Clone, Debug, Default)]
pub struct FfData {
    pub types: Vec<AtomType>,
    pub classes: Vec<String>,
    /// Class index of each type.
    pub type_class: Vec<usize>,
    pub type_by_name: HashMap<String, usize>,
    pub templates: Vec<ResidueTemplate>,
    pub bonds: Vec<BondDef>,
    pub angles: Vec<AngleDef>,
    pub propers: Vec<TorsionDef>,
    pub impropers: Vec<TorsionDef>,
    pub improper_ordering: Option<ImproperOrdering>,
    /// Per type: (charge e if given per type, sigma nm, epsilon kJ/mol).
    pub nonbonded: Vec<Option<(Option<f64>, f64, f64)>>,
    pub coulomb14scale: f64,
    pub lj14scale: f64,
    /// Per type: (charge e, radius nm, scale) of the native GBSAOBCForce.
    pub gbsa_obc: Vec<Option<(f64, f64, f64)>>,
    /// File names read, for error messages.
    pub files: Vec<String>,
}

fn xml_err(file: &str, msg: impl Into<String>) -> Error {
    Error::Xml {
        file: file.to_string(),
        msg: msg.into(),
    }
}

/// The terms (periodicity, phase (rad), k (kJ/mol)) of one `<Proper>` or `<Improper>`:
/// `periodicity1`, `phase1`, `k1`, then 2, 3, ... while a phase is given.
fn torsion_terms(t: roxmltree::Node, file: &str) -> Result<Vec<(i32, f64, f64)>> {
    let mut terms = Vec::new();
    let mut k = 1;
    while t.attribute(format!("phase{k}").as_str()).is_some() {
        let n: i32 = t
            .attribute(format!("periodicity{k}").as_str())
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| xml_err(file, format!("torsion term {k} lacks a periodicity")))?;
        terms.push((
            n,
            attr_f64(t, &format!("phase{k}"), file)?,
            attr_f64(t, &format!("k{k}"), file)?,
        ));
        k += 1;
    }
    Ok(terms)
}

fn attr_f64(node: roxmltree::Node, name: &str, file: &str) -> Result<f64> {
    let s = node.attribute(name).ok_or_else(|| {
        xml_err(
            file,
            format!(
                "line {}: <{}> lacks attribute '{name}'",
                node.document().text_pos_at(node.range().start).row,
                node.tag_name().name()
            ),
        )
    })?;
    s.trim()
        .parse()
        .map_err(|_| xml_err(file, format!("bad number '{s}' for '{name}'")))
}

impl FfData {
    fn class_index(&mut self, class: &str) -> usize {
        match self.classes.iter().position(|c| c == class) {
            Some(i) => i,
            None => {
                self.classes.push(class.to_string());
                self.classes.len() - 1
            }
        }
    }

    /// Does type `t` match slot `m`?
    #[inline]
    pub fn matches(&self, m: TypeMatch, t: usize) -> bool {
        match m {
            TypeMatch::Any => true,
            TypeMatch::Class(c) => self.type_class[t] == c,
            TypeMatch::Type(x) => x == t,
        }
    }

    /// Reads the slots type1..typeN / class1..classN of a definition. None when a named type or
    /// class does not exist (OpenMM skips such definitions).
    fn slots<const N: usize>(&self, node: roxmltree::Node) -> Option<[TypeMatch; N]> {
        let mut out = [TypeMatch::Any; N];
        for (k, slot) in out.iter_mut().enumerate() {
            if let Some(t) = node.attribute(format!("type{}", k + 1).as_str()) {
                *slot = if t.is_empty() {
                    TypeMatch::Any
                } else {
                    TypeMatch::Type(*self.type_by_name.get(t)?)
                };
            } else if let Some(c) = node.attribute(format!("class{}", k + 1).as_str()) {
                *slot = if c.is_empty() {
                    TypeMatch::Any
                } else {
                    TypeMatch::Class(self.classes.iter().position(|x| x == c)?)
                };
            } else {
                return None;
            }
        }
        Some(out)
    }

    /// Adds the content of one ffxml document; `file` names it in errors.
    pub fn add_file(&mut self, text: &str, file: &str) -> Result<()> {
        let doc = roxmltree::Document::parse(text).map_err(|e| xml_err(file, e.to_string()))?;
        self.files.push(file.to_string());
        let root = doc.root_element();
        for section in root.children().filter(|n| n.is_element()) {
            match section.tag_name().name() {
                "AtomTypes" => self.add_atom_types(section, file)?,
                "Residues" => {
                    for r in section.children().filter(|n| n.has_tag_name("Residue")) {
                        self.templates.push(self.parse_template(r, file)?);
                    }
                }
                "HarmonicBondForce" => self.add_bonds(section, file)?,
                "HarmonicAngleForce" => self.add_angles(section, file)?,
                "PeriodicTorsionForce" => self.add_torsions(section, file)?,
                "NonbondedForce" => self.add_nonbonded(section, file)?,
                "GBSAOBCForce" => self.add_gbsa_obc(section, file)?,
                _ => {} // Info, Script, Include, other forces: not used by the protein setups
            }
        }
        Ok(())
    }

    /// `<AtomTypes>`: each type's name, class, element and mass (amu).
    fn add_atom_types(&mut self, section: roxmltree::Node, file: &str) -> Result<()> {
        for t in section.children().filter(|n| n.has_tag_name("Type")) {
            let name = t
                .attribute("name")
                .ok_or_else(|| xml_err(file, "Type without name"))?
                .to_string();
            let class = t.attribute("class").unwrap_or("").to_string();
            let ci = self.class_index(&class);
            let element = t.attribute("element").and_then(Element::from_symbol);
            let mass = attr_f64(t, "mass", file)?;
            self.type_by_name.insert(name.clone(), self.types.len());
            self.types.push(AtomType {
                name,
                class,
                element,
                mass,
            });
            self.type_class.push(ci);
            self.nonbonded.push(None);
            self.gbsa_obc.push(None);
        }
        Ok(())
    }

    /// `<HarmonicBondForce>`: length (nm) and k (kJ/mol/nm^2) by atom types or classes.
    fn add_bonds(&mut self, section: roxmltree::Node, file: &str) -> Result<()> {
        for b in section.children().filter(|n| n.has_tag_name("Bond")) {
            if let Some(types) = self.slots::<2>(b) {
                self.bonds.push(BondDef {
                    types,
                    length: attr_f64(b, "length", file)?,
                    k: attr_f64(b, "k", file)?,
                });
            }
        }
        Ok(())
    }

    /// `<HarmonicAngleForce>`: angle (rad) and k (kJ/mol/rad^2).
    fn add_angles(&mut self, section: roxmltree::Node, file: &str) -> Result<()> {
        for a in section.children().filter(|n| n.has_tag_name("Angle")) {
            if let Some(types) = self.slots::<3>(a) {
                self.angles.push(AngleDef {
                    types,
                    angle: attr_f64(a, "angle", file)?,
                    k: attr_f64(a, "k", file)?,
                });
            }
        }
        Ok(())
    }

    /// `<PeriodicTorsionForce>`: propers and impropers, each a list of (periodicity, phase (rad),
    /// k (kJ/mol)) terms; the impropers' atom ordering comes from the section.
    fn add_torsions(&mut self, section: roxmltree::Node, file: &str) -> Result<()> {
        let ordering = match section.attribute("ordering") {
            None | Some("default") => ImproperOrdering::Default,
            Some("amber") => ImproperOrdering::Amber,
            Some(o) => {
                return Err(xml_err(
                    file,
                    format!("unsupported improper ordering '{o}'"),
                ))
            }
        };
        for t in section.children().filter(|n| n.is_element()) {
            let is_proper = t.has_tag_name("Proper");
            if !is_proper && !t.has_tag_name("Improper") {
                continue;
            }
            let Some(types) = self.slots::<4>(t) else {
                continue;
            };
            let def = TorsionDef {
                types,
                terms: torsion_terms(t, file)?,
            };
            if is_proper {
                self.propers.push(def);
            } else {
                self.improper_ordering = Some(ordering);
                self.impropers.push(def);
            }
        }
        Ok(())
    }

    /// `<NonbondedForce>`: the 1-4 scales, and charge (e), sigma (nm) and epsilon (kJ/mol) by
    /// type (a missing charge comes from the residue templates).
    fn add_nonbonded(&mut self, section: roxmltree::Node, file: &str) -> Result<()> {
        self.coulomb14scale = attr_f64(section, "coulomb14scale", file)?;
        self.lj14scale = attr_f64(section, "lj14scale", file)?;
        for a in section.children().filter(|n| n.has_tag_name("Atom")) {
            let charge = a
                .attribute("charge")
                .map(|_| attr_f64(a, "charge", file))
                .transpose()?;
            let p = (
                charge,
                attr_f64(a, "sigma", file)?,
                attr_f64(a, "epsilon", file)?,
            );
            for t in self.types_of(a, file)? {
                self.nonbonded[t] = Some(p);
            }
        }
        Ok(())
    }

    /// `<GBSAOBCForce>`: charge (e), radius (nm) and scale factor by type.
    fn add_gbsa_obc(&mut self, section: roxmltree::Node, file: &str) -> Result<()> {
        for a in section.children().filter(|n| n.has_tag_name("Atom")) {
            let p = (
                attr_f64(a, "charge", file)?,
                attr_f64(a, "radius", file)?,
                attr_f64(a, "scale", file)?,
            );
            for t in self.types_of(a, file)? {
                self.gbsa_obc[t] = Some(p);
            }
        }
        Ok(())
    }

    /// The types an `<Atom type=.. | class=..>` entry of a nonbonded section applies to.
    fn types_of(&self, a: roxmltree::Node, file: &str) -> Result<Vec<usize>> {
        if let Some(t) = a.attribute("type") {
            return Ok(self
                .type_by_name
                .get(t)
                .map(|&i| vec![i])
                .unwrap_or_default());
        }
        if let Some(c) = a.attribute("class") {
            return Ok((0..self.types.len())
                .filter(|&t| self.types[t].class == c)
                .collect());
        }
        Err(xml_err(file, "<Atom> without type or class"))
    }

    fn parse_template(&self, r: roxmltree::Node, file: &str) -> Result<ResidueTemplate> {
        let name = r.attribute("name").unwrap_or("").to_string();
        let mut atoms = Vec::new();
        for a in r.children().filter(|n| n.has_tag_name("Atom")) {
            let an = a.attribute("name").unwrap_or("").to_string();
            let tn = a.attribute("type").unwrap_or("");
            let type_index = *self.type_by_name.get(tn).ok_or_else(|| {
                xml_err(
                    file,
                    format!("template {name} atom {an}: unknown type '{tn}'"),
                )
            })?;
            let charge = a
                .attribute("charge")
                .map(|_| attr_f64(a, "charge", file))
                .transpose()?;
            atoms.push(TemplateAtom {
                name: an,
                type_index,
                charge,
            });
        }
        let index_of = |node: roxmltree::Node, idx_attr: &str, name_attr: &str| -> Result<usize> {
            if let Some(s) = node.attribute(idx_attr) {
                return s
                    .parse()
                    .ok()
                    .filter(|&i: &usize| i < atoms.len())
                    .ok_or_else(|| {
                        xml_err(file, format!("template {name}: bad atom index '{s}'"))
                    });
            }
            let n = node.attribute(name_attr).unwrap_or("");
            atoms
                .iter()
                .position(|a| a.name == n)
                .ok_or_else(|| xml_err(file, format!("template {name}: unknown atom '{n}'")))
        };
        let mut bonds = Vec::new();
        let mut external = vec![0u8; atoms.len()];
        for n in r.children().filter(|n| n.is_element()) {
            match n.tag_name().name() {
                "Bond" => bonds.push((
                    index_of(n, "from", "atomName1")?,
                    index_of(n, "to", "atomName2")?,
                )),
                "ExternalBond" => external[index_of(n, "from", "atomName")?] += 1,
                _ => {}
            }
        }
        Ok(ResidueTemplate {
            name,
            atoms,
            bonds,
            external,
        })
    }
}

/// Alternative residue and atom names from `pdbNames.xml`, and the standard bonds of
/// `residues.xml`, keyed by canonical names.
#[derive(Clone, Debug, Default)]
pub struct NameTables {
    /// Alternative residue name -> canonical residue name.
    pub residue_alias: HashMap<String, String>,
    /// Canonical residue name -> (alternative atom name -> canonical atom name).
    pub atom_alias: HashMap<String, HashMap<String, String>>,
    /// Canonical residue name -> bonds (atom names; a leading '-' means the previous residue).
    pub bonds: HashMap<String, Vec<(String, String)>>,
}

impl NameTables {
    /// Parses the text of `pdbNames.xml` and `residues.xml`.
    pub fn parse(pdb_names: &str, residues_xml: &str) -> Result<NameTables> {
        let mut t = NameTables::default();
        let doc = roxmltree::Document::parse(pdb_names)
            .map_err(|e| xml_err("pdbNames.xml", e.to_string()))?;
        let mut by_type: HashMap<String, HashMap<String, String>> = HashMap::new();
        let alt_names = |node: roxmltree::Node| -> Vec<String> {
            node.attributes()
                .filter(|a| a.name().starts_with("alt"))
                .map(|a| a.value().to_string())
                .collect()
        };
        let atom_map = |node: roxmltree::Node| -> HashMap<String, String> {
            let mut m = HashMap::new();
            for a in node.children().filter(|n| n.has_tag_name("Atom")) {
                let canon = a.attribute("name").unwrap_or("").to_string();
                m.insert(canon.clone(), canon.clone());
                for alt in alt_names(a) {
                    m.insert(alt, canon.clone());
                }
            }
            m
        };
        let residues: Vec<_> = doc
            .root_element()
            .children()
            .filter(|n| n.has_tag_name("Residue"))
            .collect();
        for r in &residues {
            let name = r.attribute("name").unwrap_or("");
            if matches!(name, "All" | "Protein" | "Nucleic") {
                by_type.insert(name.to_string(), atom_map(*r));
            }
        }
        for r in &residues {
            let name = r.attribute("name").unwrap_or("").to_string();
            if matches!(name.as_str(), "All" | "Protein" | "Nucleic") {
                continue;
            }
            for alt in alt_names(*r) {
                t.residue_alias.insert(alt, name.clone());
            }
            // As OpenMM's PDBFile: the residue type's table, then "All", then the residue's own.
            let mut m = r
                .attribute("type")
                .and_then(|ty| by_type.get(ty))
                .cloned()
                .unwrap_or_default();
            m.extend(by_type.get("All").cloned().unwrap_or_default());
            m.extend(atom_map(*r));
            t.atom_alias.insert(name, m);
        }
        let doc = roxmltree::Document::parse(residues_xml)
            .map_err(|e| xml_err("residues.xml", e.to_string()))?;
        for r in doc
            .root_element()
            .children()
            .filter(|n| n.has_tag_name("Residue"))
        {
            let bonds = r
                .children()
                .filter(|n| n.has_tag_name("Bond"))
                .map(|b| {
                    (
                        b.attribute("from").unwrap_or("").to_string(),
                        b.attribute("to").unwrap_or("").to_string(),
                    )
                })
                .collect();
            t.bonds
                .insert(r.attribute("name").unwrap_or("").to_string(), bonds);
        }
        Ok(t)
    }
}
