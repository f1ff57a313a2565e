//! Peptides from a sequence, natively: the residue templates of the force field give the atoms,
//! their names and bonds; the force field's own equilibrium bond lengths and angles give the
//! geometry; torsions follow simple rules (an extended backbone, trans side chains, staggered
//! hydrogens, planar rings), and the chiral centres are set to the natural amino acids'
//! handedness (L at every CA; 2S,3R at THR's CB and 2S,3S at ILE's). The result is a [`System`]
//! whose PDB every stage accepts; minimise it before MD (`bgen build` does).
//!
//! Protonation follows the pH-7 convention of OpenMM's `Modeller.addHydrogens` (and so of
//! pdbfixer): LYS and ARG charged, ASP and GLU charged, CYS as a free thiol, and HIS neutral as
//! HID (hydrogen on ND1), the variant it picks when neither nitrogen's hydrogen would make a
//! hydrogen bond, as in an isolated peptide. Termini are capped (ACE ... NME) or charged
//! (NH3+ ... COO-).

use crate::error::Result;
use crate::pdb::PdbFile;
use crate::{bail, Setup, System};
use std::collections::VecDeque;

/// The ends of a built peptide (`ace-nme` or `none` on the command line and in files).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Caps {
    /// Acetyl and N-methylamide caps (ACE ... NME), neutral ends.
    AceNme,
    /// A zwitterion: NH3+ and COO- termini.
    #[default]
    None,
}

/// One-letter code -> residue name (PDB) and template name (the force field's).
const CODES: [(char, &str, &str); 20] = [
    ('A', "ALA", "ALA"),
    ('R', "ARG", "ARG"),
    ('N', "ASN", "ASN"),
    ('D', "ASP", "ASP"),
    ('C', "CYS", "CYS"),
    ('Q', "GLN", "GLN"),
    ('E', "GLU", "GLU"),
    ('G', "GLY", "GLY"),
    ('H', "HIS", "HID"),
    ('I', "ILE", "ILE"),
    ('L', "LEU", "LEU"),
    ('K', "LYS", "LYS"),
    ('M', "MET", "MET"),
    ('F', "PHE", "PHE"),
    ('P', "PRO", "PRO"),
    ('S', "SER", "SER"),
    ('T', "THR", "THR"),
    ('W', "TRP", "TRP"),
    ('Y', "TYR", "TYR"),
    ('V', "VAL", "VAL"),
];

/// Backbone torsions of the built chain, degrees: a beta strand (PRO's phi fixed by its ring).
const PHI: f64 = -120.0;
const PHI_PRO: f64 = -65.0;
const PSI: f64 = 140.0;
const OMEGA: f64 = 180.0;
/// Side chains: chi1 of the most common rotamer (-60), rings turned out of the backbone's way.
const CHI1: f64 = -60.0;
const CHI2_RING: f64 = 90.0;

/// Chiral centres set to the natural handedness: (residue, centre, a, b, c) with
/// (a - centre) . ((b - centre) x (c - centre)) > 0 (the sign of L-alanine's CA with N, C, CB,
/// and of THR's and ILE's CB in OpenMM-built and crystal structures).
const CHIRAL: [(&str, &str, [&str; 3]); 3] = [
    ("*", "CA", ["N", "C", "CB"]),
    ("THR", "CB", ["CA", "OG1", "CG2"]),
    ("ILE", "CB", ["CA", "CG1", "CG2"]),
];

/// The one-letter code of an amino acid's residue name (HID/HIE/HIP as H, CYX as C, ...), or
/// None for caps and anything else.
pub fn one_letter(name: &str) -> Option<char> {
    let name = match name {
        "HID" | "HIE" | "HIP" => "HIS",
        "CYX" | "CYM" => "CYS",
        "ASH" => "ASP",
        "GLH" => "GLU",
        "LYN" => "LYS",
        other => other,
    };
    CODES.iter().find(|c| c.1 == name).map(|c| c.0)
}

/// The one-letter sequence of a topology's amino acids, N to C (caps and other residues left
/// out): how a transferable model names the molecules it was trained on.
pub fn sequence(top: &crate::Topology) -> String {
    top.residues
        .iter()
        .filter_map(|r| one_letter(&r.name))
        .collect()
}

/// A molecule's identity as a transferable model records it: amino acids as one-letter codes
/// (upper case), any other residue (caps) by its name in lower case, runs joined by '-': "KW"
/// for the zwitterion Lys-Trp, "ace-KW-nme" for the capped one. Two molecules with the same
/// identity are the same peptide (protonation variants of HIS, CYS, ASP, GLU, LYS aside).
pub fn identity(top: &crate::Topology) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run = String::new();
    for r in &top.residues {
        match one_letter(&r.name) {
            Some(c) => run.push(c),
            None => {
                if !run.is_empty() {
                    parts.push(std::mem::take(&mut run));
                }
                parts.push(r.name.to_ascii_lowercase());
            }
        }
    }
    if !run.is_empty() {
        parts.push(run);
    }
    parts.join("-")
}

/// The [`identity`] of the molecule in a PDB file, from its residue names alone (no force field
/// is applied).
pub fn identity_of_pdb_file(path: &std::path::Path) -> Result<String> {
    let pdb = PdbFile::read(path)?;
    let top = crate::Topology::from_pdb(&pdb, crate::forcefield::name_tables())?;
    Ok(identity(&top))
}

/// The residues of `sys` whose force-field template is not the one `bgen build` gives its
/// sequence (another protonation variant: HIP or HIE where it builds HID, LYN, ASH, GLH, CYM):
/// (residue number, the molecule's template, the built one's). Empty when they all agree, or
/// when the molecule is not a peptide `bgen build` makes (other caps or residues).
pub fn variants_unlike_built(sys: &crate::System) -> Vec<(i32, String, String)> {
    let top = &sys.topology;
    let caps = match top.residues.first().map(|r| r.name.as_str()) {
        Some("ACE") => Caps::AceNme,
        _ => Caps::None,
    };
    let Ok(built) = residues(&sequence(top), caps) else {
        return Vec::new();
    };
    let mine = &sys.params.residue_template;
    if built.len() != mine.len() {
        return Vec::new();
    }
    top.residues
        .iter()
        .zip(mine.iter().zip(&built))
        .filter(|(_, (m, b))| **m != b.1)
        .map(|(r, (m, b))| (r.number, m.clone(), b.1.clone()))
        .collect()
}

/// The number of amino acids of an [`identity`] (its upper-case letters).
pub fn identity_length(identity: &str) -> usize {
    identity.chars().filter(|c| c.is_ascii_uppercase()).count()
}

/// The residues of `sequence` (one-letter codes, e.g. "KW"): (PDB name, template name).
pub fn residues(sequence: &str, caps: Caps) -> Result<Vec<(String, String)>> {
    let seq: Vec<char> = sequence.trim().chars().collect();
    if seq.is_empty() {
        bail!("the sequence is empty: give one-letter codes such as KW");
    }
    let mut out = Vec::new();
    for (i, c) in seq.iter().enumerate() {
        let Some((_, pdb, template)) = CODES.iter().find(|x| x.0 == c.to_ascii_uppercase()) else {
            bail!(
                "sequence {sequence}: '{c}' at position {} is not one of the 20 amino acids' codes (ACDEFGHIKLMNPQRSTVWY)",
                i + 1
            );
        };
        out.push((pdb.to_string(), template.to_string()));
    }
    match caps {
        Caps::AceNme => {
            out.insert(0, ("ACE".into(), "ACE".into()));
            out.push(("NME".into(), "NME".into()));
        }
        Caps::None => {
            if out.len() < 2 {
                bail!("sequence {sequence}: a zwitterion needs at least two residues; use --caps ace-nme for one");
            }
            let last = out.len() - 1;
            out[0].1 = format!("N{}", out[0].1);
            out[last].1 = format!("C{}", out[last].1);
        }
    }
    Ok(out)
}

/// One atom of the chain being built.
struct BuildAtom {
    name: String,
    residue: usize,
    type_index: usize,
}

/// Builds `sequence` with `caps` under the force field of `setup` (unminimised positions).
pub fn build(sequence: &str, caps: Caps, setup: Setup) -> Result<System> {
    let pdb = build_pdb(sequence, caps, setup)?;
    let file = PdbFile::parse(&pdb, &label(sequence))?;
    System::from_pdb(&file, setup, None)
}

/// The PDB text of `sequence` built with ideal geometry (see the module's documentation).
pub fn build_pdb(sequence: &str, caps: Caps, setup: Setup) -> Result<String> {
    let ff = setup.data();
    let res = residues(sequence, caps)?;
    let mut atoms: Vec<BuildAtom> = Vec::new();
    let mut bonds: Vec<(usize, usize)> = Vec::new();
    // (index of C, of N) of each residue, for the peptide bonds.
    let mut ends: Vec<(Option<usize>, Option<usize>)> = Vec::new();
    for (ri, (_, tname)) in res.iter().enumerate() {
        let Some(t) = ff.templates.iter().find(|t| &t.name == tname) else {
            bail!("{}: no residue template {tname}", setup.name());
        };
        let start = atoms.len();
        for a in &t.atoms {
            atoms.push(BuildAtom {
                name: a.name.clone(),
                residue: ri,
                type_index: a.type_index,
            });
        }
        bonds.extend(t.bonds.iter().map(|&(i, j)| (start + i, start + j)));
        let find = |n: &str| t.atoms.iter().position(|a| a.name == n).map(|k| start + k);
        ends.push((find("C"), find("N")));
    }
    for w in 0..res.len() - 1 {
        match (ends[w].0, ends[w + 1].1) {
            (Some(c), Some(n)) => bonds.push((c, n)),
            _ => bail!("cannot join residue {} to {}", res[w].1, res[w + 1].1),
        }
    }
    let n = atoms.len();
    let mut nb = vec![Vec::new(); n];
    for &(i, j) in &bonds {
        nb[i].push(j);
        nb[j].push(i);
    }
    let rings = small_rings(&nb);
    let x = place(&atoms, &nb, &rings, &res, ff);
    // PDB columns: coordinates -999.999..9999.999 A, 4-digit residue and 5-digit atom numbers.
    let fits = |v: f64| (-999.999..=9999.999).contains(&(10.0 * v));
    if !x.iter().flatten().all(|&v| fits(v)) || res.len() > 9999 || n > 99_999 {
        let lo = x.iter().flatten().fold(f64::MAX, |a, &b| a.min(b));
        let hi = x.iter().flatten().fold(f64::MIN, |a, &b| a.max(b));
        bail!(
            "{}: its extended chain ({} residues, {n} atoms) spans {:.0} nm, beyond what PDB \
             columns hold (coordinates -999.999 to 9999.999 A, 9,999 residues, 99,999 atoms)",
            label(sequence),
            res.len(),
            hi - lo
        );
    }
    Ok(pdb_text(&atoms, &res, &x))
}

/// How messages name a built sequence: in full when short, else its ends and length.
pub fn label(sequence: &str) -> String {
    let c: Vec<char> = sequence.trim().chars().collect();
    let text = |r: &[char]| r.iter().collect::<String>();
    match c.len() {
        0..=40 => format!("<sequence {}>", text(&c)),
        n => format!(
            "<sequence {}...{} ({n} residues)>",
            text(&c[..12]),
            text(&c[n - 12..])
        ),
    }
}

/// Rings of up to 7 atoms (the shortest cycle through each bond).
fn small_rings(nb: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut rings: Vec<Vec<usize>> = Vec::new();
    for u in 0..nb.len() {
        for &v in &nb[u] {
            if v < u {
                continue;
            }
            // Shortest path v -> u not using the bond u-v.
            let mut prev = vec![usize::MAX; nb.len()];
            let mut depth = vec![usize::MAX; nb.len()];
            let mut q = VecDeque::from([v]);
            depth[v] = 0;
            while let Some(a) = q.pop_front() {
                if a == u || depth[a] >= 6 {
                    continue;
                }
                for &b in &nb[a] {
                    if depth[b] == usize::MAX && !(a == v && b == u) {
                        depth[b] = depth[a] + 1;
                        prev[b] = a;
                        q.push_back(b);
                    }
                }
            }
            if depth[u] != usize::MAX {
                let mut ring = vec![u];
                let mut a = u;
                while a != v {
                    a = prev[a];
                    ring.push(a);
                }
                ring.sort_unstable();
                if !rings.contains(&ring) {
                    rings.push(ring);
                }
            }
        }
    }
    rings
}

/// Equilibrium length (nm) of the bond between types `a` and `b` in the force field.
fn bond_length(ff: &crate::ffxml::FfData, a: usize, b: usize) -> f64 {
    ff.bonds
        .iter()
        .find(|d| {
            (ff.matches(d.types[0], a) && ff.matches(d.types[1], b))
                || (ff.matches(d.types[0], b) && ff.matches(d.types[1], a))
        })
        .map_or(0.14, |d| d.length)
}

/// Equilibrium angle (rad) a-b-c in the force field.
fn angle(ff: &crate::ffxml::FfData, a: usize, b: usize, c: usize) -> f64 {
    ff.angles
        .iter()
        .find(|d| {
            ff.matches(d.types[1], b)
                && ((ff.matches(d.types[0], a) && ff.matches(d.types[2], c))
                    || (ff.matches(d.types[0], c) && ff.matches(d.types[2], a)))
        })
        .map_or(109.47f64.to_radians(), |d| d.angle)
}

type V3 = [f64; 3];

fn sub(a: V3, b: V3) -> V3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
fn cross(a: V3, b: V3) -> V3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}
fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
fn unit(a: V3) -> V3 {
    let n = dot(a, a).sqrt();
    [a[0] / n, a[1] / n, a[2] / n]
}

/// The point at distance `r` from `p`, angle `theta` (rad) g-p-new and torsion `phi` (rad)
/// h-g-p-new (the natural extension of reference frame).
fn nerf(h: V3, g: V3, p: V3, r: f64, theta: f64, phi: f64) -> V3 {
    let bc = unit(sub(p, g));
    let nrm = unit(cross(sub(g, h), bc));
    let m = [bc, cross(nrm, bc), nrm];
    let d = [
        -r * theta.cos(),
        r * theta.sin() * phi.cos(),
        r * theta.sin() * phi.sin(),
    ];
    let mut out = p;
    for k in 0..3 {
        out[k] += m[0][k] * d[0] + m[1][k] * d[1] + m[2][k] * d[2];
    }
    out
}

/// Signed volume (a - c) . ((b - c) x (d - c)).
fn volume(c: V3, a: V3, b: V3, d: V3) -> f64 {
    dot(sub(a, c), cross(sub(b, c), sub(d, c)))
}

/// Positions (nm) of every atom: breadth-first from the first residue's backbone, each atom's
/// children placed by bond length, angle and torsion from the force field's ideal values.
fn place(
    atoms: &[BuildAtom],
    nb: &[Vec<usize>],
    rings: &[Vec<usize>],
    res: &[(String, String)],
    ff: &crate::ffxml::FfData,
) -> Vec<V3> {
    let n = atoms.len();
    let mut b = Builder {
        atoms,
        nb,
        rings,
        res,
        ff,
        x: vec![None; n],
        parent: vec![usize::MAX; n],
    };
    let root = (0..n)
        .find(|&i| atoms[i].residue == 0 && (b.name(i) == "N" || b.name(i) == "CH3"))
        .unwrap_or(0);
    b.x[root] = Some([0.0; 3]);
    let mut queue = VecDeque::from([root]);
    while let Some(p) = queue.pop_front() {
        let (g, h) = b.references(p);
        let children = b.children(p, g, h);
        let step = match nb[p].len() {
            3 => 180.0,
            _ => 120.0,
        };
        let mut placed_now = Vec::new();
        for (k, &c) in children.iter().enumerate() {
            // The root's references are its children placed before this one.
            let (g_c, h_c) = match g {
                Some(g) => (Some(g), h),
                None => (placed_now.first().copied(), None),
            };
            let pos = match g_c {
                None => [bond_length(ff, b.ty(p), b.ty(c)), 0.0, 0.0],
                Some(g_c) => {
                    let ring = b.ring_child(children[0], p, g, h);
                    let first = b.first_torsion(p, children[0], h_c, ring);
                    // Siblings after the first: staggered (sp3) or opposite (sp2).
                    b.nerf_child(p, c, g_c, h_c, first + step * k as f64)
                }
            };
            b.x[c] = Some(pos);
            b.parent[c] = p;
            placed_now.push(c);
            queue.push_back(c);
        }
        fix_handedness(p, &placed_now, &mut b.x, atoms, nb, res);
    }
    b.x.into_iter().map(|p| p.unwrap_or([0.0; 3])).collect()
}

/// What [`place`] builds from and what it has placed so far.
struct Builder<'a> {
    atoms: &'a [BuildAtom],
    nb: &'a [Vec<usize>],
    rings: &'a [Vec<usize>],
    res: &'a [(String, String)],
    ff: &'a crate::ffxml::FfData,
    /// Positions (nm) of the atoms placed so far.
    x: Vec<Option<V3>>,
    /// The atom each was placed from (`usize::MAX` for the root and the unplaced).
    parent: Vec<usize>,
}

impl Builder<'_> {
    fn name(&self, i: usize) -> &str {
        self.atoms[i].name.as_str()
    }

    fn ty(&self, i: usize) -> usize {
        self.atoms[i].type_index
    }

    fn heavy(&self, i: usize) -> bool {
        self.ff.types[self.ty(i)]
            .element
            .is_some_and(|e| e != crate::element::Element::H)
    }

    fn in_ring(&self, set: &[usize]) -> bool {
        self.rings.iter().any(|r| set.iter().all(|a| r.contains(a)))
    }

    /// The reference atoms of `p`'s children: g (p's parent, or a placed neighbour) and h (g's
    /// parent, or a placed neighbour of g other than p).
    fn references(&self, p: usize) -> (Option<usize>, Option<usize>) {
        let placed = |q: &usize| self.x[*q].is_some();
        let g = match self.parent[p] {
            usize::MAX => self.nb[p].iter().copied().find(placed),
            g => Some(g),
        };
        let h = g.and_then(|g| {
            if self.parent[g] != usize::MAX && self.parent[g] != p {
                Some(self.parent[g])
            } else {
                self.nb[g].iter().copied().find(|&q| q != p && placed(&q))
            }
        });
        (g, h)
    }

    /// Whether child `c` of `p` continues a ring through the references g and h.
    fn ring_child(&self, c: usize, p: usize, g: Option<usize>, h: Option<usize>) -> bool {
        match (g, h) {
            (Some(g), Some(h)) => self.in_ring(&[c, p, g, h]),
            _ => false,
        }
    }

    /// `p`'s unplaced neighbours in placement order: ring first, then heavy, then backbone
    /// atoms. PRO's ring is closed at N-CD: CD is placed from CG, around the ring.
    fn children(&self, p: usize, g: Option<usize>, h: Option<usize>) -> Vec<usize> {
        let pro_cd = |c: usize| {
            self.name(p) == "N"
                && self.name(c) == "CD"
                && self.res[self.atoms[c].residue].0 == "PRO"
        };
        let backbone = |c: usize| {
            matches!(
                (self.name(p), self.name(c)),
                ("CA", "C") | ("C", "N") | ("N", "CA") | ("CH3", "C")
            )
        };
        let mut children: Vec<usize> = self.nb[p]
            .iter()
            .copied()
            .filter(|&c| self.x[c].is_none() && !pro_cd(c))
            .collect();
        children.sort_by_key(|&c| {
            (
                !self.ring_child(c, p, g, h),
                !self.heavy(c),
                !backbone(c),
                c,
            )
        });
        children
    }

    /// The torsion h-g-p-c (degrees) of `p`'s first child `c`: 0 inside a ring, the backbone's
    /// phi, psi and omega, chi1 and a ring's chi2, else trans; the other children follow it.
    fn first_torsion(&self, p: usize, c: usize, h: Option<usize>, ring: bool) -> f64 {
        let hname = h.map(|h| self.name(h)).unwrap_or("");
        let (pn, cn) = (self.name(p), self.name(c));
        if ring {
            0.0
        } else if pn == "CA" && cn == "C" && hname == "C" {
            if self.res[self.atoms[p].residue].0 == "PRO" {
                PHI_PRO
            } else {
                PHI
            }
        } else if pn == "C" && cn == "N" && hname == "N" {
            PSI
        } else if pn == "N" && cn == "CA" && hname == "CA" {
            OMEGA
        } else if pn == "CB" && hname == "N" {
            CHI1
        } else if pn == "CG" && hname == "CA" && self.rings.iter().any(|r| r.contains(&p)) {
            CHI2_RING
        } else {
            180.0
        }
    }

    /// Position (nm) of `c` bonded to `p`, at the ideal bond length and angle g-p-c and the
    /// torsion h-g-p-c `torsion` (degrees); without h, a fixed direction not along g-p.
    fn nerf_child(&self, p: usize, c: usize, g: usize, h: Option<usize>, torsion: f64) -> V3 {
        let (pp, gp) = (self.x[p].expect("placed"), self.x[g].expect("placed"));
        let r = bond_length(self.ff, self.ty(p), self.ty(c));
        let theta = angle(self.ff, self.ty(g), self.ty(p), self.ty(c));
        let hp = match h {
            Some(h) => self.x[h].expect("placed"),
            None => {
                let d = sub(pp, gp);
                let e = if d[1].abs() < 0.9 * dot(d, d).sqrt() {
                    [0.0, 1.0, 0.0]
                } else {
                    [0.0, 0.0, 1.0]
                };
                [gp[0] + e[0], gp[1] + e[1], gp[2] + e[2]]
            }
        };
        nerf(hp, gp, pp, r, theta, torsion.to_radians())
    }
}

/// Natural handedness at the chiral centre `p` (if it is one): when the substituents placed
/// just now (`placed_now`) came out mirrored, the last two exchange directions, each keeping
/// its bond length.
fn fix_handedness(
    p: usize,
    placed_now: &[usize],
    x: &mut [Option<V3>],
    atoms: &[BuildAtom],
    nb: &[Vec<usize>],
    res: &[(String, String)],
) {
    let name = |i: usize| atoms[i].name.as_str();
    let pp = x[p].expect("placed");
    let rname = res[atoms[p].residue].0.as_str();
    for (r, centre, subs) in CHIRAL {
        if name(p) != centre || (r != "*" && r != rname) || placed_now.len() < 2 {
            continue;
        }
        let find = |s: &str| nb[p].iter().copied().find(|&q| name(q) == s);
        let (Some(a), Some(b), Some(c)) = (find(subs[0]), find(subs[1]), find(subs[2])) else {
            continue;
        };
        let v = volume(
            pp,
            x[a].expect("placed"),
            x[b].expect("placed"),
            x[c].expect("placed"),
        );
        if v < 0.0 {
            // Exchange the directions of the last two, each keeping its bond length.
            let (s, t) = (
                placed_now[placed_now.len() - 2],
                placed_now[placed_now.len() - 1],
            );
            let (ds, dt) = (
                sub(x[s].expect("placed"), pp),
                sub(x[t].expect("placed"), pp),
            );
            let (ls, lt) = (dot(ds, ds).sqrt(), dot(dt, dt).sqrt());
            let (us, ut) = (unit(ds), unit(dt));
            x[s] = Some([pp[0] + ls * ut[0], pp[1] + ls * ut[1], pp[2] + ls * ut[2]]);
            x[t] = Some([pp[0] + lt * us[0], pp[1] + lt * us[1], pp[2] + lt * us[2]]);
        }
    }
}

/// PDB text (positions in nm, written in Angstrom); the bonds come from the templates when it
/// is read back.
fn pdb_text(atoms: &[BuildAtom], res: &[(String, String)], x: &[V3]) -> String {
    use std::fmt::Write;
    let mut s =
        String::from("REMARK   1 BUILT BY BGEN FROM A SEQUENCE (IDEAL GEOMETRY, UNMINIMISED)\n");
    for (i, a) in atoms.iter().enumerate() {
        let elem = a
            .name
            .chars()
            .find(|c| c.is_ascii_alphabetic())
            .unwrap_or('X');
        let shown = if a.name.len() < 4 {
            format!(" {:<3}", a.name)
        } else {
            a.name.clone()
        };
        let _ = writeln!(
            s,
            "ATOM  {:>5} {:<4} {:>3} A{:>4}    {:>8.3}{:>8.3}{:>8.3}  1.00  0.00          {:>2}",
            i + 1,
            shown,
            res[a.residue].0,
            a.residue + 1,
            10.0 * x[i][0],
            10.0 * x[i][1],
            10.0 * x[i][2],
            elem
        );
    }
    s.push_str("TER\nEND\n");
    s
}
