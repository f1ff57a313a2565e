//! Reading and writing PDB files (ATOM/HETATM, TER, CONECT; first model only). Positions in nm.

use crate::element::Element;
use crate::error::{Error, Result};
use crate::topology::Topology;
use std::fmt::Write as _;

/// One ATOM/HETATM record.
#[derive(Clone, Debug)]
pub struct PdbAtom {
    pub serial: i64,
    pub name: String,
    pub res_name: String,
    pub chain: String,
    pub res_seq: i32,
    pub insertion: char,
    pub element: Option<Element>,
    pub hetatm: bool,
    /// Position in nm.
    pub position: [f64; 3],
    /// True when a TER record follows this atom (ends its chain).
    pub ter_after: bool,
}

/// The content of a PDB file: atoms in file order and CONECT bonds as atom indices.
#[derive(Clone, Debug)]
pub struct PdbFile {
    /// Where it came from (file name or `<embedded NAME>`), used in error messages.
    pub source: String,
    pub atoms: Vec<PdbAtom>,
    pub conect: Vec<(usize, usize)>,
}

fn field(line: &str, a: usize, b: usize) -> &str {
    line.get(a..b.min(line.len())).unwrap_or("").trim()
}

impl PdbFile {
    /// Reads a PDB file from disk.
    pub fn read(path: &std::path::Path) -> Result<PdbFile> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            file: path.display().to_string(),
            error: e,
        })?;
        PdbFile::parse(&text, &path.display().to_string())
    }

    /// Parses PDB text; `source` names it in error messages.
    pub fn parse(text: &str, source: &str) -> Result<PdbFile> {
        let err = |line: usize, msg: String| Error::Pdb {
            file: source.to_string(),
            line,
            msg,
        };
        let mut atoms: Vec<PdbAtom> = Vec::new();
        let mut conect_serials = Vec::new();
        // A byte-order mark (Windows editors write one) is no part of the first record.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (ln, line) in text.lines().enumerate() {
            let ln = ln + 1;
            let rec = line.get(0..6).unwrap_or(line).trim_end();
            match rec {
                "ATOM" | "HETATM" => {
                    let next_serial = atoms.len() as i64 + 1;
                    if let Some(a) = atom_record(line, rec, next_serial).map_err(|m| err(ln, m))? {
                        atoms.push(a);
                    }
                }
                "TER" => {
                    if let Some(a) = atoms.last_mut() {
                        a.ter_after = true;
                    }
                }
                "ENDMDL" => break,
                // The first model is the structure; a second MODEL without ENDMDL before it
                // would otherwise merge two models into one molecule.
                "MODEL" if !atoms.is_empty() => break,
                "CONECT" => {
                    let nums = conect_record(line);
                    for &j in nums.iter().skip(1) {
                        conect_serials.push((ln, nums[0], j));
                    }
                }
                _ => {}
            }
        }
        if atoms.is_empty() {
            return Err(err(0, "no ATOM or HETATM records".into()));
        }
        let serial_to_index: std::collections::HashMap<i64, usize> = atoms
            .iter()
            .enumerate()
            .map(|(i, a)| (a.serial, i))
            .collect();
        let mut conect = Vec::new();
        for (ln, a, b) in conect_serials {
            match (serial_to_index.get(&a), serial_to_index.get(&b)) {
                (Some(&i), Some(&j)) if i != j => conect.push((i.min(j), i.max(j))),
                (Some(_), Some(_)) => {}
                _ => {
                    return Err(err(
                        ln,
                        format!("CONECT refers to unknown atom serial {a} or {b}"),
                    ))
                }
            }
        }
        conect.sort_unstable();
        conect.dedup();
        Ok(PdbFile {
            source: source.to_string(),
            atoms,
            conect,
        })
    }

    /// Positions in nm, (atoms, 3) row-major.
    pub fn positions(&self) -> Vec<f64> {
        self.atoms.iter().flat_map(|a| a.position).collect()
    }
}

/// One ATOM or HETATM record (`rec`), positions converted to nm; `None` for an alternate
/// location other than the first. `next_serial` stands in for an unreadable serial number.
fn atom_record(
    line: &str,
    rec: &str,
    next_serial: i64,
) -> std::result::Result<Option<PdbAtom>, String> {
    if line.len() < 54 {
        return Err(format!(
            "{rec} record too short ({} columns, need 54)",
            line.len()
        ));
    }
    let mut xyz = [0.0; 3];
    for (k, (a, b)) in [(30, 38), (38, 46), (46, 54)].into_iter().enumerate() {
        let s = field(line, a, b);
        let v: f64 = s
            .parse()
            .map_err(|_| format!("bad coordinate '{s}' in columns {}-{}", a + 1, b))?;
        if !v.is_finite() {
            return Err(format!("non-finite coordinate '{s}'"));
        }
        xyz[k] = v * 0.1; // Angstrom -> nm
    }
    let alt = line.as_bytes()[16] as char;
    if alt != ' ' && alt != 'A' && alt != '1' {
        return Ok(None); // keep only the first alternate location
    }
    let name = field(line, 12, 16).to_string();
    if name.is_empty() {
        return Err("empty atom name".into());
    }
    let res_seq_s = field(line, 22, 26);
    let res_seq = if res_seq_s.is_empty() {
        0
    } else {
        res_seq_s
            .parse()
            .map_err(|_| format!("bad residue number '{res_seq_s}'"))?
    };
    let elem_s = field(line, 76, 78);
    let element = if elem_s.is_empty() {
        Element::guess_from_atom_name(&name)
    } else {
        Some(Element::from_symbol(elem_s).ok_or_else(|| format!("unknown element '{elem_s}'"))?)
    };
    Ok(Some(PdbAtom {
        serial: field(line, 6, 11).parse().unwrap_or(next_serial),
        name,
        res_name: field(line, 17, 21).to_string(),
        chain: field(line, 21, 22).to_string(),
        res_seq,
        insertion: line.as_bytes().get(26).map(|&c| c as char).unwrap_or(' '),
        element,
        hetatm: rec == "HETATM",
        position: xyz,
        ter_after: false,
    }))
}

/// The serial numbers of a CONECT record: the atom, then the atoms bonded to it.
fn conect_record(line: &str) -> Vec<i64> {
    (0..5)
        .filter_map(|k| {
            let s = field(line, 6 + 5 * k, 11 + 5 * k);
            (!s.is_empty()).then(|| s.parse().ok()).flatten()
        })
        .collect()
}

/// Writes one conformation of `topology` as PDB text; `positions` in nm, (atoms, 3).
pub fn write_pdb(topology: &Topology, positions: &[f64]) -> String {
    let mut s = String::from("REMARK   1 CREATED WITH BGEN\n");
    let mut serial = 0;
    for chain in &topology.chains {
        let chain_id = if chain.id.is_empty() {
            "A".to_string()
        } else {
            chain.id.clone()
        };
        for &ri in &chain.residues {
            let res = &topology.residues[ri];
            for ai in res.atoms.clone() {
                serial += 1;
                let a = &topology.atoms[ai];
                let p = &positions[3 * ai..3 * ai + 3];
                let name = if a.name.len() < 4 {
                    format!(" {:<3}", a.name)
                } else {
                    a.name.clone()
                };
                let rec = if crate::topology::is_standard_amino_acid(&res.name) {
                    "ATOM  "
                } else {
                    "HETATM"
                };
                let _ = writeln!(
                    s,
                    "{rec}{serial:>5} {name:<4} {:>3} {:1}{:>4}    {:>8.3}{:>8.3}{:>8.3}  1.00  0.00          {:>2}",
                    res.name,
                    chain_id,
                    res.number,
                    p[0] * 10.0,
                    p[1] * 10.0,
                    p[2] * 10.0,
                    a.element.symbol()
                );
            }
        }
        serial += 1;
        let last = chain.residues.last().map(|&r| &topology.residues[r]);
        if let Some(r) = last {
            let _ = writeln!(
                s,
                "TER   {serial:>5}      {:>3} {:1}{:>4}",
                r.name, chain_id, r.number
            );
        }
    }
    s.push_str("END\n");
    s
}
