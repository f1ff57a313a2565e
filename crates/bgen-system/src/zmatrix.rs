//! Internal coordinates: a Z-matrix built from a molecule's bond graph, and the bijection between
//! internal coordinates (bond lengths in nm, angles and torsions in radians) and Cartesian
//! positions (nm) modulo rigid motions, with its exact log|det J| and the gradient of any
//! function of the positions pulled back to the internal coordinates.
//!
//! Every atom but the first is placed from already placed atoms: row r places atom `atom` at
//! bond length b from `j`, angle theta = angle(atom, j, k) and torsion phi = dihedral(l, k, j,
//! atom). The first atom sits at the origin, the second on +x (b only), the third in the xy
//! plane with y > 0 (b, theta); the others carry (b, theta, phi). That is 3N - 6 coordinates,
//! laid out row by row: `[b1, b2, theta2, b3, theta3, phi3, b4, ...]`.
//!
//! Volume: a Cartesian configuration is (translation, rotation, internal coordinates), and
//! dx = dT dR prod_{r>=1} b_r^2 prod_{r>=2} sin(theta_r) d(ic), so a Boltzmann density
//! exp(-U(x)) becomes exp(-U(x(ic)) + log|det J|) on the internal coordinates with
//! log|det J| = sum 2 ln b + sum ln sin theta (the rigid-body volume is a constant).
//!
//! Handedness: torsions are signed, so a Z-matrix fixes the handedness of every chiral centre
//! (the torsion that places CB from CA, N and C takes about -120 degrees in an L residue and
//! +120 in its mirror image). A model trained on L frames gives the mirror images almost no
//! density; they are not identified with their mirror images here.

use crate::element::Element;
use crate::energy::bonded::{angle, cross, dihedral, dot, get, sub};
use crate::error::{Error, Result};
use crate::system::System;
use crate::target::{PartialTarget, Target};
use crate::topology::Topology;
use rayon::prelude::*;

/// What an internal coordinate measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcKind {
    /// Bond length, nm (positive).
    Bond,
    /// Bond angle, radians in (0, pi).
    Angle,
    /// Torsion, radians (periodic with period 2 pi).
    Torsion,
}

/// One row of a Z-matrix: `atom` placed from `j` (bonded), `k` and `l` (unused entries of the
/// first rows equal `atom`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZRow {
    pub atom: usize,
    pub j: usize,
    pub k: usize,
    pub l: usize,
}

/// How a Z-matrix places an atom that closes a ring (one with two placed neighbours).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RingClosure {
    /// As any atom: bond, angle and torsion along its parent's chain; the closing bond is no
    /// coordinate (what models trained before the choice existed use).
    #[default]
    Chain,
    /// From both ring neighbours: bond to its parent j, the angle (atom, j, k) to the other
    /// neighbour k and a torsion about j-k, so that the closing bond follows from two
    /// coordinates and the distance j-k instead of a chain of upstream torsions.
    Both,
}

/// A Z-matrix: rows in placement order, every atom once.
#[derive(Clone, Debug, PartialEq)]
pub struct ZMatrix {
    pub rows: Vec<ZRow>,
}

/// Backbone atom names: the chain that is placed first.
fn is_backbone(name: &str) -> bool {
    matches!(name, "N" | "CA" | "C" | "CH3")
}

/// Not yet placed (in [`Placement`]).
const NONE: usize = usize::MAX;

/// The spanning tree a Z-matrix walks: atoms in placement order, each atom's place in it and
/// the placed atom it is bonded to (its parent).
struct Placement {
    nb: Vec<Vec<usize>>,
    order: Vec<usize>,
    placed_at: Vec<usize>,
    parent: Vec<usize>,
}

impl Placement {
    /// From the first backbone heavy atom (else the first heavy atom), the next atom is always
    /// one bonded to a placed one, by (hydrogen, off-backbone, the parent's placement, index).
    /// Fails (with the message) when the bond graph has more than one piece.
    fn new(top: &Topology) -> std::result::Result<Placement, String> {
        let n = top.n_atoms();
        let nb = top.bonded_to();
        let heavy = |a: usize| top.atoms[a].element != Element::H;
        let backbone = |a: usize| heavy(a) && is_backbone(&top.atoms[a].name);
        let root = (0..n)
            .find(|&a| backbone(a))
            .or_else(|| (0..n).find(|&a| heavy(a)))
            .unwrap_or(0);
        let mut placed_at = vec![NONE; n];
        let mut parent = vec![NONE; n];
        let mut order = vec![root];
        placed_at[root] = 0;
        while order.len() < n {
            // (key, child, parent)
            type Pick = ((bool, bool, usize, usize), usize, usize);
            let mut best: Option<Pick> = None;
            for &p in &order {
                for &c in &nb[p] {
                    if placed_at[c] != NONE {
                        continue;
                    }
                    let key = (!heavy(c), !backbone(c), placed_at[p], c);
                    if best.is_none_or(|b| key < b.0) {
                        best = Some((key, c, p));
                    }
                }
            }
            let Some((_, c, p)) = best else {
                return Err(format!(
                    "the bond graph has more than one piece (atom {} {} is not connected to atom {} {})",
                    order.len(),
                    top.atoms[(0..n).find(|&a| placed_at[a] == NONE).unwrap_or(0)].name,
                    root,
                    top.atoms[root].name
                ));
            };
            placed_at[c] = order.len();
            parent[c] = p;
            order.push(c);
        }
        Ok(Placement {
            nb,
            order,
            placed_at,
            parent,
        })
    }

    /// The neighbours of `a` placed before row `before`, except `not`, in placement order.
    fn placed_nb(&self, a: usize, before: usize, not: &[usize]) -> Vec<usize> {
        let mut v: Vec<usize> = self.nb[a]
            .iter()
            .copied()
            .filter(|&b| self.placed_at[b] < before && !not.contains(&b))
            .collect();
        v.sort_by_key(|&b| self.placed_at[b]);
        v
    }

    /// A ring closes at atom a (placed at row r) when exactly one placed neighbour besides its
    /// parent j exists: k; the torsion's l is j's parent (or another placed neighbour of j).
    fn ring_row(&self, a: usize, r: usize) -> Option<ZRow> {
        let j = self.parent[a];
        let others = self.placed_nb(a, r, &[j]);
        let &[k] = others.as_slice() else {
            return None;
        };
        let l = Some(self.parent[j])
            .filter(|&p| p != NONE && p != k)
            .or_else(|| self.placed_nb(j, r, &[a, k]).first().copied())?;
        Some(ZRow { atom: a, j, k, l })
    }

    /// Atom a (row r >= 3) along the chain: j its parent, k the atom j was placed from (else
    /// j's first placed neighbour), l a placed sibling (another neighbour of j), else a placed
    /// neighbour of k; `None` when there is no such l.
    fn chain_row(&self, a: usize, r: usize) -> Option<ZRow> {
        let j = self.parent[a];
        let k = if self.parent[j] != NONE {
            self.parent[j]
        } else {
            self.placed_nb(j, r, &[a])[0]
        };
        let l = self
            .placed_nb(j, r, &[a, k])
            .first()
            .or(self.placed_nb(k, r, &[j]).first())
            .copied()?;
        Some(ZRow { atom: a, j, k, l })
    }
}

impl ZMatrix {
    /// A Z-matrix over the bonds of `top`: backbone heavy atoms first (from the lowest-numbered
    /// backbone atom along the chain), then the other heavy atoms, then hydrogens, each from an
    /// already placed bonded atom. Torsions follow the chain (phi and psi are torsions of it);
    /// an atom whose parent already has another placed child takes its torsion against that
    /// sibling, which is almost constant (methyl and amide hydrogens, carbonyl oxygens, CB).
    /// Fails for fewer than 3 atoms or a bond graph of more than one piece.
    pub fn from_topology(top: &Topology) -> Result<ZMatrix> {
        ZMatrix::from_topology_with(top, RingClosure::Chain)
    }

    /// [`ZMatrix::from_topology`] with ring-closing atoms placed as `rings` says.
    pub fn from_topology_with(top: &Topology, rings: RingClosure) -> Result<ZMatrix> {
        let n = top.n_atoms();
        let err =
            |msg: String| Error::Other(format!("{}: internal coordinates: {msg}", top.source));
        if n < 3 {
            return Err(err(format!("{n} atoms; need at least 3")));
        }
        let tree = Placement::new(top).map_err(err)?;
        let order = &tree.order;
        let mut rows = Vec::with_capacity(n);
        for (r, &a) in order.iter().enumerate() {
            let row = match r {
                0 => ZRow {
                    atom: a,
                    j: a,
                    k: a,
                    l: a,
                },
                1 => ZRow {
                    atom: a,
                    j: order[0],
                    k: a,
                    l: a,
                },
                2 => {
                    let j = tree.parent[a];
                    let k = if j == order[0] { order[1] } else { order[0] };
                    ZRow {
                        atom: a,
                        j,
                        k,
                        l: a,
                    }
                }
                _ => match tree.ring_row(a, r).filter(|_| rings == RingClosure::Both) {
                    Some(row) => row,
                    None => tree.chain_row(a, r).ok_or_else(|| {
                        err(format!(
                            "no third reference atom to place atom {a} {}",
                            top.atoms[a].name
                        ))
                    })?,
                },
            };
            rows.push(row);
        }
        Ok(ZMatrix { rows })
    }

    /// Atoms.
    pub fn n_atoms(&self) -> usize {
        self.rows.len()
    }

    /// Internal coordinates, 3N - 6.
    pub fn dim(&self) -> usize {
        3 * self.rows.len() - 6
    }

    /// Index of row r's first coordinate in the internal-coordinate vector (r >= 1).
    fn offset(r: usize) -> usize {
        match r {
            0 | 1 => 0,
            2 => 1,
            _ => 3 * r - 6,
        }
    }

    /// What each internal coordinate is, in layout order.
    pub fn kinds(&self) -> Vec<IcKind> {
        let mut k = Vec::with_capacity(self.dim());
        for r in 1..self.rows.len() {
            k.push(IcKind::Bond);
            if r >= 2 {
                k.push(IcKind::Angle);
            }
            if r >= 3 {
                k.push(IcKind::Torsion);
            }
        }
        k
    }

    /// Internal coordinates (3N - 6) of one configuration `x` (N x 3, nm) into `ic`; torsions in
    /// (-pi, pi].
    pub fn to_internal(&self, x: &[f64], ic: &mut [f64]) {
        for (r, row) in self.rows.iter().enumerate().skip(1) {
            let o = Self::offset(r);
            ic[o] = norm(sub(get(x, row.atom), get(x, row.j)));
            if r >= 2 {
                ic[o + 1] = angle(x, [row.atom, row.j, row.k]);
            }
            if r >= 3 {
                ic[o + 2] = dihedral(x, [row.l, row.k, row.j, row.atom]);
            }
        }
    }

    /// Cartesian positions (N x 3, nm, in the canonical frame: first atom at the origin, second
    /// on +x, third in the xy plane) of internal coordinates `ic` into `x`; returns log|det J|.
    pub fn to_cartesian(&self, ic: &[f64], x: &mut [f64]) -> f64 {
        self.place(ic, self.rows.len(), x)
    }

    /// How many leading internal coordinates place the first `rows` rows: 3 rows - 6 from three
    /// rows on (1 for two rows, 0 for one).
    pub fn coords_of_rows(rows: usize) -> usize {
        // The coordinates before row `rows` are those of the rows before it.
        Self::offset(rows)
    }

    /// Places the atoms of the first `rows` rows from the leading internal coordinates `ic`
    /// (at least [`ZMatrix::coords_of_rows`]) into `x` (N x 3, nm, at their atom indices; the
    /// other atoms untouched); returns the log|det J| of those rows.
    pub fn place(&self, ic: &[f64], rows: usize, x: &mut [f64]) -> f64 {
        let mut logdet = 0.0;
        for (r, row) in self.rows.iter().enumerate().take(rows) {
            let o = Self::offset(r);
            let pos = match r {
                0 => [0.0; 3],
                1 => [ic[0], 0.0, 0.0],
                _ => {
                    let (b, th) = (ic[o], ic[o + 1]);
                    let c = get(x, row.j);
                    let bb = get(x, row.k);
                    let bc = unit(sub(c, bb));
                    let (m, nv, phi) = if r == 2 {
                        ([0.0, 1.0, 0.0], [0.0; 3], 0.0)
                    } else {
                        let nv = unit(cross(sub(bb, get(x, row.l)), bc));
                        (cross(nv, bc), nv, ic[o + 2])
                    };
                    logdet += th.sin().abs().ln();
                    let (st, ct, sp, cp) = (th.sin(), th.cos(), phi.sin(), phi.cos());
                    let mut d = c;
                    for q in 0..3 {
                        d[q] += b * (-ct * bc[q] + st * cp * m[q] + st * sp * nv[q]);
                    }
                    d
                }
            };
            if r >= 1 {
                logdet += 2.0 * ic[o].abs().ln();
            }
            x[3 * row.atom..3 * row.atom + 3].copy_from_slice(&pos);
        }
        logdet
    }

    /// Whether `ic` lies in the domain where the map is a bijection: bonds > 0 and angles in
    /// (0, pi), all finite.
    pub fn in_domain(&self, ic: &[f64]) -> bool {
        self.rows_in_domain(ic, self.rows.len())
    }

    /// [`ZMatrix::in_domain`] for the coordinates of the first `rows` rows.
    pub fn rows_in_domain(&self, ic: &[f64], rows: usize) -> bool {
        ic[..Self::coords_of_rows(rows)]
            .iter()
            .all(|v| v.is_finite())
            && (1..rows).all(|r| {
                let o = Self::offset(r);
                ic[o] > 0.0 && (r < 2 || (ic[o + 1] > 0.0 && ic[o + 1] < std::f64::consts::PI))
            })
    }

    /// d log|det J| / d ic added to `g`.
    pub fn add_logdet_grad(&self, ic: &[f64], g: &mut [f64]) {
        for r in 1..self.rows.len() {
            let o = Self::offset(r);
            g[o] += 2.0 / ic[o];
            if r >= 2 {
                g[o + 1] += 1.0 / ic[o + 1].tan();
            }
        }
    }

    /// Pulls a gradient back through the map: given `x = to_cartesian(ic)` and `gx` = dF/dx
    /// (N x 3), writes dF/d ic into `gic` (3N - 6). `gx` is used as scratch and overwritten.
    pub fn pull_back(&self, ic: &[f64], x: &[f64], gx: &mut [f64], gic: &mut [f64]) {
        for (r, row) in self.rows.iter().enumerate().rev() {
            let o = Self::offset(r);
            let gd = get(gx, row.atom);
            match r {
                0 => {}
                1 => gic[0] = gd[0],
                _ => {
                    let (b, th) = (ic[o], ic[o + 1]);
                    let c = get(x, row.j);
                    let bb = get(x, row.k);
                    let v1 = sub(c, bb);
                    let len1 = norm(v1);
                    let bc = scale(v1, 1.0 / len1);
                    let (st, ct) = (th.sin(), th.cos());
                    if r == 2 {
                        // bc is +-x and fixed: positions of rows 0 and 1 move only along x.
                        let m = [0.0, 1.0, 0.0];
                        let dir: [f64; 3] = std::array::from_fn(|q| -ct * bc[q] + st * m[q]);
                        let dth: [f64; 3] = std::array::from_fn(|q| b * (st * bc[q] + ct * m[q]));
                        gic[o] = dot(gd, dir);
                        gic[o + 1] = dot(gd, dth);
                        add(gx, row.j, gd);
                        continue;
                    }
                    let phi = ic[o + 2];
                    let a = get(x, row.l);
                    let w = sub(bb, a);
                    let nn = cross(w, bc);
                    let lenn = norm(nn);
                    let nv = scale(nn, 1.0 / lenn);
                    let m = cross(nv, bc);
                    let (sp, cp) = (phi.sin(), phi.cos());
                    let dir: [f64; 3] =
                        std::array::from_fn(|q| -ct * bc[q] + st * cp * m[q] + st * sp * nv[q]);
                    let dth: [f64; 3] = std::array::from_fn(|q| {
                        b * (st * bc[q] + ct * cp * m[q] + ct * sp * nv[q])
                    });
                    let dph: [f64; 3] = std::array::from_fn(|q| b * st * (-sp * m[q] + cp * nv[q]));
                    gic[o] = dot(gd, dir);
                    gic[o + 1] = dot(gd, dth);
                    gic[o + 2] = dot(gd, dph);
                    // d = c + alpha bc + beta m + gamma n
                    let (alpha, beta, gamma) = (-b * ct, b * st * cp, b * st * sp);
                    let mut g_bc = scale(gd, alpha);
                    let g_m = scale(gd, beta);
                    let mut g_n = scale(gd, gamma);
                    // m = n x bc
                    g_n = plus(g_n, cross(bc, g_m));
                    g_bc = plus(g_bc, cross(g_m, nv));
                    // n = nn / |nn|
                    let g_nn = scale(sub(g_n, scale(nv, dot(nv, g_n))), 1.0 / lenn);
                    // nn = w x bc
                    let g_w = cross(bc, g_nn);
                    g_bc = plus(g_bc, cross(g_nn, w));
                    // w = b - a
                    add(gx, row.k, g_w);
                    add(gx, row.l, scale(g_w, -1.0));
                    // bc = v1 / |v1|, v1 = c - b
                    let g_v1 = scale(sub(g_bc, scale(bc, dot(bc, g_bc))), 1.0 / len1);
                    add(gx, row.j, plus(gd, g_v1));
                    add(gx, row.k, scale(g_v1, -1.0));
                }
            }
        }
    }
}

/// Twisted SMC in Z-matrix order: the partial energy of the leading `placed` internal
/// coordinates (whole rows: 3 for the first three atoms, then 3 per atom) is the energy of the
/// atoms they place ([`System::subset_energy`]) minus the log|det J| of their rows, so that it
/// telescopes to the whole [`InternalTarget`] energy; Born radii see only the placed atoms.
impl PartialTarget for InternalTarget<'_, System> {
    fn partial_energy(&self, ic: &[f64], placed: usize, energy: &mut [f64]) {
        let d = self.zmatrix.dim();
        assert!(
            placed.is_multiple_of(3) && placed <= d,
            "whole rows of the Z-matrix"
        );
        if placed == d {
            return self.energy_and_grad(ic, energy, None);
        }
        if placed == 0 {
            return energy.fill(0.0);
        }
        let rows = placed / 3 + 2;
        let atoms: Vec<usize> = self.zmatrix.rows[..rows].iter().map(|r| r.atom).collect();
        let n = energy.len();
        let dx = 3 * self.zmatrix.n_atoms();
        let mut full = vec![0.0; dx];
        let mut x = vec![0.0; n * 3 * rows];
        let mut logdet = vec![0.0; n];
        for i in 0..n {
            let c = &ic[i * placed..(i + 1) * placed];
            let xi = &mut x[i * 3 * rows..(i + 1) * 3 * rows];
            if !self.zmatrix.rows_in_domain(c, rows) {
                // Non-finite positions: the subset energy is +inf.
                xi.fill(f64::NAN);
                continue;
            }
            logdet[i] = self.zmatrix.place(c, rows, &mut full);
            for (k, &a) in atoms.iter().enumerate() {
                xi[3 * k..3 * k + 3].copy_from_slice(&full[3 * a..3 * a + 3]);
            }
        }
        // Energies are finite or +inf, log-dets finite in the domain: the difference is too.
        self.target.subset_energy(&atoms, &x, energy);
        energy.iter_mut().zip(&logdet).for_each(|(e, l)| *e -= l);
    }
}

/// The Boltzmann target on internal coordinates: energy U(x(ic)) - log|det J| (kT) with its
/// gradient through the map and the force field's forces; +inf outside the map's domain.
pub struct InternalTarget<'a, T> {
    pub target: &'a T,
    pub zmatrix: &'a ZMatrix,
}

impl<T: Target> Target for InternalTarget<'_, T> {
    fn dim(&self) -> usize {
        self.zmatrix.dim()
    }

    fn energy_and_grad(&self, ic: &[f64], energy: &mut [f64], grad: Option<&mut [f64]>) {
        let (d, dx) = (self.zmatrix.dim(), 3 * self.zmatrix.n_atoms());
        let n = energy.len();
        let mut x = vec![0.0; n * dx];
        let mut logdet = vec![0.0; n];
        let mut ok = vec![true; n];
        x.par_chunks_mut(dx)
            .zip(ic.par_chunks(d))
            .zip(logdet.par_iter_mut().zip(ok.par_iter_mut()))
            .for_each(|((xi, c), (ld, oki))| {
                *oki = self.zmatrix.in_domain(c);
                match *oki {
                    true => *ld = self.zmatrix.to_cartesian(c, xi),
                    false => xi.fill(f64::NAN),
                }
            });
        match grad {
            None => {
                self.target.energy_and_grad(&x, energy, None);
                for i in 0..n {
                    energy[i] = if ok[i] {
                        energy[i] - logdet[i]
                    } else {
                        f64::INFINITY
                    };
                }
            }
            Some(g) => {
                let mut gx = vec![0.0; n * dx];
                self.target.energy_and_grad(&x, energy, Some(&mut gx));
                let rows = g.par_chunks_mut(d).zip(energy.par_iter_mut());
                let inputs = ic
                    .par_chunks(d)
                    .zip(x.par_chunks(dx))
                    .zip(gx.par_chunks_mut(dx));
                let extra = logdet.par_iter().zip(ok.par_iter());
                rows.zip(inputs.zip(extra)).for_each_init(
                    || vec![0.0; d],
                    |gl, ((gi, e), (((c, xi), gxi), (ld, oki)))| {
                        if !*oki || !e.is_finite() {
                            *e = f64::INFINITY;
                            gi.fill(0.0);
                            return;
                        }
                        *e -= ld;
                        self.zmatrix.pull_back(c, xi, gxi, gi);
                        gl.fill(0.0);
                        self.zmatrix.add_logdet_grad(c, gl);
                        gi.iter_mut().zip(gl.iter()).for_each(|(v, l)| *v -= l);
                    },
                );
            }
        }
    }
}

type V3 = [f64; 3];

fn add(x: &mut [f64], a: usize, v: V3) {
    for q in 0..3 {
        x[3 * a + q] += v[q];
    }
}
fn plus(a: V3, b: V3) -> V3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}
fn scale(a: V3, s: f64) -> V3 {
    [a[0] * s, a[1] * s, a[2] * s]
}
fn norm(a: V3) -> f64 {
    dot(a, a).sqrt()
}
fn unit(a: V3) -> V3 {
    scale(a, 1.0 / norm(a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::System;

    fn aldp() -> System {
        System::named("aldp", None, None).unwrap()
    }

    /// Pairwise distances of a configuration (invariant to rigid motions).
    fn distances(x: &[f64]) -> Vec<f64> {
        let n = x.len() / 3;
        let mut d = Vec::new();
        for a in 0..n {
            for b in 0..a {
                d.push(norm(sub(get(x, a), get(x, b))));
            }
        }
        d
    }

    #[test]
    fn aldp_zmatrix_places_every_atom_from_placed_ones() {
        let sys = aldp();
        let z = ZMatrix::from_topology(&sys.topology).unwrap();
        assert_eq!(z.n_atoms(), 22);
        assert_eq!(z.dim(), 60);
        let mut seen = [false; 22];
        for (r, row) in z.rows.iter().enumerate() {
            assert!(!seen[row.atom]);
            let refs: &[usize] = match r {
                0 => &[],
                1 => &[row.j],
                2 => &[row.j, row.k],
                _ => &[row.j, row.k, row.l],
            };
            for &q in refs {
                assert!(seen[q], "row {r} refers to an unplaced atom");
                assert_ne!(q, row.atom);
            }
            seen[row.atom] = true;
        }
        // The backbone torsions phi and psi are torsions of the Z-matrix.
        let x = &sys.positions;
        let mut ic = vec![0.0; 60];
        z.to_internal(x, &mut ic);
        for bd in sys.topology.backbone_dihedrals() {
            let [a, b, c, d] = bd.atoms;
            let want = dihedral(x, [a, b, c, d]);
            let found = z.rows.iter().enumerate().skip(3).any(|(r, row)| {
                let t = ic[3 * r - 6 + 2];
                ((row.l, row.k, row.j, row.atom) == (a, b, c, d)
                    || (row.l, row.k, row.j, row.atom) == (d, c, b, a))
                    && (t - want).abs() < 1e-12
            });
            assert!(found, "{} is not a Z-matrix torsion", bd.name);
        }
    }

    #[test]
    fn round_trip_to_round_off() {
        let sys = aldp();
        let z = ZMatrix::from_topology(&sys.topology).unwrap();
        let (ic, x) = rebuild(&sys, &z);
        let mut ic2 = vec![0.0; z.dim()];
        z.to_internal(&x, &mut ic2);
        for (a, b) in ic.iter().zip(&ic2) {
            let d = (a - b).abs();
            assert!(d < 1e-10 || (d - 2.0 * std::f64::consts::PI).abs() < 1e-10);
        }
        // Canonical frame.
        let r = &z.rows;
        assert_eq!(get(&x, r[0].atom), [0.0; 3]);
        assert!(x[3 * r[1].atom + 1] == 0.0 && x[3 * r[1].atom + 2] == 0.0);
        assert!(x[3 * r[2].atom + 2] == 0.0 && x[3 * r[2].atom + 1] > 0.0);
    }

    /// log|det J| against the brute-force Jacobian of the reduced Cartesian coordinates
    /// (x of the second atom, x and y of the third, all of the others), times the rigid-body
    /// factors b1^2 (the second atom's sphere) and y3 = b2 sin theta2 (the third atom's circle).
    #[test]
    fn log_det_matches_a_brute_force_jacobian() {
        let sys = aldp();
        let z = ZMatrix::from_topology(&sys.topology).unwrap();
        check_log_det(&sys, &z);
    }

    /// Rings closed from both neighbours (Trp's two, Pro's one): every atom from placed ones,
    /// the round trip, and the log-determinant against the brute-force Jacobian.
    #[test]
    fn rings_closed_from_both_neighbours() {
        let sys =
            crate::peptide::build("WP", crate::peptide::Caps::None, crate::Setup::Amber14Obc1)
                .unwrap();
        let z = ZMatrix::from_topology_with(&sys.topology, RingClosure::Both).unwrap();
        let nb = sys.topology.bonded_to();
        let closing: Vec<&str> = z.rows[3..]
            .iter()
            .filter(|r| !nb[r.j].contains(&r.k))
            .map(|r| sys.topology.atoms[r.atom].name.as_str())
            .collect();
        assert_eq!(closing.len(), 3, "{closing:?}");
        let chain = ZMatrix::from_topology(&sys.topology).unwrap();
        assert!(chain.rows[3..].iter().all(|r| nb[r.j].contains(&r.k)));
        let mut seen = vec![false; z.n_atoms()];
        for row in &z.rows[..3] {
            seen[row.atom] = true;
        }
        for (r, row) in z.rows.iter().enumerate().skip(3) {
            assert!(seen[row.j] && seen[row.k] && seen[row.l], "row {r}");
            let refs = [row.atom, row.j, row.k, row.l];
            assert!(
                (0..4).all(|i| (0..i).all(|j| refs[i] != refs[j])),
                "row {r}"
            );
            assert!(!seen[row.atom], "row {r}");
            seen[row.atom] = true;
        }
        rebuild(&sys, &z);
        check_log_det(&sys, &z);
    }

    /// The structure of `sys` through internal coordinates and back, its pairwise distances
    /// kept to round-off: (internal coordinates, rebuilt positions).
    fn rebuild(sys: &System, z: &ZMatrix) -> (Vec<f64>, Vec<f64>) {
        let x0 = &sys.positions;
        let mut ic = vec![0.0; z.dim()];
        z.to_internal(x0, &mut ic);
        let mut x = vec![0.0; x0.len()];
        z.to_cartesian(&ic, &mut x);
        for (a, b) in distances(x0).iter().zip(distances(&x)) {
            assert!((a - b).abs() < 1e-10, "{a} vs {b}");
        }
        (ic, x)
    }

    fn check_log_det(sys: &System, z: &ZMatrix) {
        let d = z.dim();
        let nx = 3 * z.n_atoms();
        let mut ic = vec![0.0; d];
        z.to_internal(&sys.positions, &mut ic);
        let reduced = |ic: &[f64]| -> Vec<f64> {
            let mut x = vec![0.0; nx];
            z.to_cartesian(ic, &mut x);
            let r = &z.rows;
            let mut v = vec![x[3 * r[1].atom], x[3 * r[2].atom], x[3 * r[2].atom + 1]];
            for row in &r[3..] {
                v.extend_from_slice(&get(&x, row.atom));
            }
            v
        };
        let mut jac = vec![vec![0.0; d]; d];
        let h = 1e-6;
        for c in 0..d {
            let (mut p, mut m) = (ic.clone(), ic.clone());
            p[c] += h;
            m[c] -= h;
            let (fp, fm) = (reduced(&p), reduced(&m));
            for q in 0..d {
                jac[q][c] = (fp[q] - fm[q]) / (2.0 * h);
            }
        }
        let log_reduced = log_abs_det(jac);
        let mut x = vec![0.0; nx];
        let logdet = z.to_cartesian(&ic, &mut x);
        let y3 = x[3 * z.rows[2].atom + 1];
        let brute = log_reduced + 2.0 * ic[0].ln() + y3.ln();
        assert!((brute - logdet).abs() < 1e-6, "{brute} vs {logdet}");
    }

    /// log|det| by Gaussian elimination with partial pivoting.
    fn log_abs_det(mut a: Vec<Vec<f64>>) -> f64 {
        let n = a.len();
        let mut s = 0.0;
        for c in 0..n {
            let p = (c..n)
                .max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
                .unwrap();
            a.swap(c, p);
            let piv = a[c][c];
            s += piv.abs().ln();
            let (top, rest) = a.split_at_mut(c + 1);
            for row in rest {
                let f = row[c] / piv;
                for (v, p) in row[c..].iter_mut().zip(&top[c][c..]) {
                    *v -= f * p;
                }
            }
        }
        s
    }

    /// The pulled-back gradient of U(x(ic)) - log|det J| matches central differences.
    #[test]
    fn internal_target_gradient_matches_finite_differences() {
        let sys = aldp();
        let z = ZMatrix::from_topology(&sys.topology).unwrap();
        let t = InternalTarget {
            target: &sys,
            zmatrix: &z,
        };
        let d = z.dim();
        let mut ic = vec![0.0; d];
        z.to_internal(&sys.positions, &mut ic);
        // Move off the minimum a little so that every component matters.
        for (q, v) in ic.iter_mut().enumerate() {
            *v += 0.01 * ((q * 7 % 11) as f64 / 11.0 - 0.5) * if q % 3 == 0 { 0.1 } else { 1.0 };
        }
        let (mut e, mut g) = ([0.0], vec![0.0; d]);
        t.energy_and_grad(&ic, &mut e, Some(&mut g));
        for c in 0..d {
            let h = 1e-6;
            let (mut p, mut m) = (ic.clone(), ic.clone());
            p[c] += h;
            m[c] -= h;
            let (mut ep, mut em) = ([0.0], [0.0]);
            t.energy_and_grad(&p, &mut ep, None);
            t.energy_and_grad(&m, &mut em, None);
            let fd = (ep[0] - em[0]) / (2.0 * h);
            assert!(
                (fd - g[c]).abs() < 1e-5 * fd.abs().max(10.0),
                "coordinate {c}: {fd} vs {}",
                g[c]
            );
        }
    }

    /// A harmonic chain (bonds only) pushed through the map: its Boltzmann density on the
    /// internal coordinates is the product of b^2 exp(-k (b - b0)^2 / 2) per bond, sin(theta) / 2
    /// per angle and 1 / (2 pi) per torsion, so importance weights against exactly that product
    /// are constant, whatever the coordinates drawn.
    #[test]
    fn harmonic_chain_has_exact_weights() {
        struct Chain {
            n: usize,
            k: f64,
            b0: f64,
        }
        impl Target for Chain {
            fn dim(&self) -> usize {
                3 * self.n
            }
            fn energy_and_grad(&self, x: &[f64], e: &mut [f64], _g: Option<&mut [f64]>) {
                for (i, xi) in x.chunks(3 * self.n).enumerate() {
                    e[i] = (1..self.n)
                        .map(|a| {
                            let b = norm(sub(get(xi, a), get(xi, a - 1)));
                            0.5 * self.k * (b - self.b0).powi(2)
                        })
                        .sum();
                }
            }
        }
        let n = 7;
        let chain = Chain {
            n,
            k: 400.0,
            b0: 0.15,
        };
        let z = ZMatrix {
            rows: (0..n)
                .map(|a| ZRow {
                    atom: a,
                    j: a.saturating_sub(1),
                    k: if a >= 2 { a - 2 } else { a },
                    l: if a >= 3 { a - 3 } else { a },
                })
                .collect(),
        };
        let t = InternalTarget {
            target: &chain,
            zmatrix: &z,
        };
        let kinds = z.kinds();
        let mut s = 12345u64;
        let mut u = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut log_w = Vec::new();
        for _ in 0..50 {
            let ic: Vec<f64> = kinds
                .iter()
                .map(|k| match k {
                    IcKind::Bond => 0.1 + 0.1 * u(),
                    IcKind::Angle => 0.05 + 3.0 * u(),
                    IcKind::Torsion => std::f64::consts::TAU * (u() - 0.5),
                })
                .collect();
            let log_q: f64 = kinds
                .iter()
                .zip(&ic)
                .map(|(k, &v)| match k {
                    IcKind::Bond => 2.0 * v.ln() - 0.5 * chain.k * (v - chain.b0).powi(2),
                    IcKind::Angle => (v.sin() / 2.0).ln(),
                    IcKind::Torsion => -std::f64::consts::TAU.ln(),
                })
                .sum();
            let mut e = [0.0];
            t.energy_and_grad(&ic, &mut e, None);
            log_w.push(-e[0] - log_q);
        }
        let spread = log_w
            .iter()
            .fold(0.0f64, |m, v| m.max((v - log_w[0]).abs()));
        assert!(spread < 1e-9, "log-weights vary by {spread}");
    }

    #[test]
    fn internal_energy_is_cartesian_energy_minus_log_det() {
        let sys = aldp();
        let z = ZMatrix::from_topology(&sys.topology).unwrap();
        let t = InternalTarget {
            target: &sys,
            zmatrix: &z,
        };
        let mut ic = vec![0.0; z.dim()];
        z.to_internal(&sys.positions, &mut ic);
        let mut e = [0.0];
        t.energy_and_grad(&ic, &mut e, None);
        let mut x = vec![0.0; 66];
        let ld = z.to_cartesian(&ic, &mut x);
        let mut u = [0.0];
        sys.energy_and_grad(&sys.positions, &mut u, None);
        assert!((e[0] - (u[0] - ld)).abs() < 1e-9 * u[0].abs().max(1.0));
        // Outside the domain: +inf.
        let mut bad = ic.clone();
        bad[2] = -0.1;
        t.energy_and_grad(&bad, &mut e, None);
        assert_eq!(e[0], f64::INFINITY);
    }
}
