//! Molecular features from the topology: backbone dihedrals, Ramachandran basins, and the TICA
//! features of the seeds (pairwise heavy-atom distances plus sin/cos of backbone dihedrals).

use bgen_system::energy::bonded::dihedral;
use bgen_system::topology::{BackboneDihedral, Topology};

/// Backbone dihedrals (rad, IUPAC sign) of every frame: frames x n_dihedrals, row-major, in the
/// order of [`Topology::backbone_dihedrals`].
pub fn dihedrals(x: &[f64], n_atoms: usize, defs: &[BackboneDihedral]) -> Vec<f64> {
    x.chunks(3 * n_atoms)
        .flat_map(|f| defs.iter().map(move |d| dihedral(f, d.atoms)))
        .collect()
}

/// Ramachandran basin of (phi, psi) in degrees, with the definitions of the alanine-dipeptide
/// reference: "beta" (C5/C7eq: phi < 0 and psi >= 50 or psi < -150), "alphaR" (phi < 0 and
/// -150 <= psi < 50) and "alphaL" (C7ax/alphaL: phi >= 0).
pub fn basin(phi_deg: f64, psi_deg: f64) -> &'static str {
    if phi_deg >= 0.0 {
        "alphaL"
    } else if !(-150.0..50.0).contains(&psi_deg) {
        "beta"
    } else {
        "alphaR"
    }
}

/// The residues with both phi and psi: (label, index of phi, index of psi) into the dihedrals.
///
/// A dipeptide without caps (a zwitterion such as Lys-Trp) has no such residue: its backbone
/// torsions are psi of residue 1 and phi of residue 2, the two around its one peptide bond. As in
/// the transferable-sampler literature, that pair is its Ramachandran plane (phi of residue 2
/// against psi of residue 1), labelled "LYS1-TRP2", so that "alphaL" is phi2 >= 0, the rare
/// and slow region of these dipeptides.
pub fn phi_psi_pairs(
    topology: &Topology,
    defs: &[BackboneDihedral],
) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    for (p, d) in defs.iter().enumerate() {
        if !d.is_phi {
            continue;
        }
        if let Some(q) = defs
            .iter()
            .position(|e| !e.is_phi && e.residue == d.residue)
        {
            out.push((topology.residue_label(d.residue), p, q));
        }
    }
    if out.is_empty() && defs.len() == 2 {
        let phi = defs.iter().position(|d| d.is_phi);
        let psi = defs.iter().position(|d| !d.is_phi);
        if let (Some(p), Some(q)) = (phi, psi) {
            let (r2, r1) = (defs[p].residue, defs[q].residue);
            if r2 == r1 + 1 {
                let label = format!(
                    "{}-{}",
                    topology.residue_label(r1),
                    topology.residue_label(r2)
                );
                out.push((label, p, q));
            }
        }
    }
    out
}

/// Heavy-atom pairs (i < j) used as distance features.
pub fn heavy_pairs(topology: &Topology) -> Vec<(usize, usize)> {
    let heavy: Vec<usize> = (0..topology.n_atoms())
        .filter(|&a| topology.atoms[a].element != bgen_system::element::Element::H)
        .collect();
    let mut out = Vec::new();
    for (p, &i) in heavy.iter().enumerate() {
        for &j in &heavy[p + 1..] {
            out.push((i, j));
        }
    }
    out
}

/// TICA features of every frame: heavy-atom distances (nm) then sin and cos of each backbone
/// dihedral; frames x dim, row-major. Returns (features, dim).
pub fn tica_features(
    x: &[f64],
    n_atoms: usize,
    pairs: &[(usize, usize)],
    defs: &[BackboneDihedral],
) -> (Vec<f64>, usize) {
    let dim = pairs.len() + 2 * defs.len();
    let mut out = Vec::with_capacity(x.len() / (3 * n_atoms) * dim);
    for f in x.chunks(3 * n_atoms) {
        for &(i, j) in pairs {
            let d2: f64 = (0..3).map(|k| (f[3 * i + k] - f[3 * j + k]).powi(2)).sum();
            out.push(d2.sqrt());
        }
        for d in defs {
            let a = dihedral(f, d.atoms);
            out.push(a.sin());
            out.push(a.cos());
        }
    }
    (out, dim)
}

/// Share of each Ramachandran basin per residue, "LABEL basin" -> fraction, of samples (n x
/// atoms x 3, nm) with `weights` (normalised, n), or counted equally without: the proposal's
/// own populations, and where the importance-weight mass sits.
pub fn basin_shares(
    topology: &Topology,
    x: &[f64],
    weights: Option<&[f64]>,
) -> std::collections::BTreeMap<String, f64> {
    let defs = topology.backbone_dihedrals();
    let na = topology.n_atoms();
    let dih = dihedrals(x, na, &defs);
    let n = x.len() / (3 * na);
    let mut out = std::collections::BTreeMap::new();
    for (label, p, q) in phi_psi_pairs(topology, &defs) {
        for b in ["alphaL", "alphaR", "beta"] {
            out.insert(format!("{label} {b}"), 0.0);
        }
        for i in 0..n {
            let row = &dih[i * defs.len()..(i + 1) * defs.len()];
            let b = basin(row[p].to_degrees(), row[q].to_degrees());
            let w = weights.map_or(1.0 / n as f64, |w| w[i]);
            *out.get_mut(&format!("{label} {b}")).expect("inserted") += w;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgen_system::peptide::{build, Caps};
    use bgen_system::Setup;

    #[test]
    fn a_zwitterionic_dipeptide_pairs_phi2_with_psi1() {
        let sys = build("KW", Caps::None, Setup::Amber14Obc1).unwrap();
        let defs = sys.topology.backbone_dihedrals();
        let pairs = phi_psi_pairs(&sys.topology, &defs);
        assert_eq!(pairs.len(), 1, "{pairs:?}");
        let (label, p, q) = &pairs[0];
        assert!(
            label.starts_with("LYS") && label.contains("-TRP"),
            "{label}"
        );
        assert!(defs[*p].is_phi && defs[*p].residue == 1);
        assert!(!defs[*q].is_phi && defs[*q].residue == 0);
        // Its basins are counted, and a frame's shares sum to one.
        let shares = basin_shares(&sys.topology, &sys.positions, None);
        assert_eq!(shares.len(), 3);
        assert!((shares.values().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn capped_residues_keep_their_own_pairs() {
        let sys = build("AA", Caps::AceNme, Setup::Amber14Obc1).unwrap();
        let defs = sys.topology.backbone_dihedrals();
        let pairs = phi_psi_pairs(&sys.topology, &defs);
        assert_eq!(pairs.len(), 2);
        for (_, p, q) in pairs {
            assert_eq!(defs[p].residue, defs[q].residue);
        }
    }
}
