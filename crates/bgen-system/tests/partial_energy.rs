//! Partial energies (twisted SMC): the partial energy of a whole molecule is its energy, that of
//! an empty one zero, that of one atom its analytic GB self and surface energy, and a prefix
//! holds exactly the terms whose atoms are all placed.

use bgen_system::{PartialTarget, System, Target};

#[test]
fn whole_molecule_is_its_energy_and_empty_is_zero() {
    for name in ["aldp", "ala6"] {
        let sys = System::named(name, None, None).unwrap();
        let d = sys.dim();
        let mut x = sys.positions.clone();
        x.extend(
            sys.positions
                .iter()
                .enumerate()
                .map(|(k, v)| v + 0.01 * ((k % 7) as f64 - 3.0) / 3.0),
        );
        let (mut full, mut part) = (vec![0.0; 2], vec![0.0; 2]);
        sys.energy_and_grad(&x, &mut full, None);
        sys.partial_energy(&x, d, &mut part);
        assert_eq!(full, part, "{name}");
        sys.partial_energy(&[], 0, &mut part);
        assert_eq!(part, vec![0.0; 2]);
        // Every residue prefix is finite, and the prefixes of a conformation are taken from it.
        for k in sys.residue_ends() {
            let xs: Vec<f64> = x.chunks(d).flat_map(|c| c[..3 * k].to_vec()).collect();
            sys.partial_energy(&xs, 3 * k, &mut part);
            assert!(
                part.iter().all(|e| e.is_finite()),
                "{name} prefix {k}: {part:?}"
            );
        }
    }
}

#[test]
fn one_atom_has_only_its_born_self_and_surface_energy() {
    let sys = System::named("aldp", None, None).unwrap();
    let g = &sys.params.gbsa;
    // A lone atom: the Born integral is zero, so B = offset radius.
    let b = g.offset_radius[0];
    let pref = -g.coulomb * (1.0 / g.solute_dielectric - 1.0 / g.solvent_dielectric);
    // (self terms are not shifted by the cutoff)
    let polar = 0.5 * pref * g.charge[0].powi(2) / b;
    let r = g.radius[0];
    let sa = g.surface_factor * (r + 0.14).powi(2) * (r / b).powi(6);
    let mut e = [0.0];
    sys.partial_energy(&sys.positions[..3], 3, &mut e);
    let want = (polar + sa) / sys.kt();
    assert!(
        (e[0] - want).abs() < 1e-12 * want.abs().max(1.0),
        "{} vs {want}",
        e[0]
    );
}

#[test]
fn a_prefix_holds_exactly_the_terms_of_placed_atoms() {
    let sys = System::named("ala6", None, None).unwrap();
    let p = &sys.params;
    for k in sys.residue_ends() {
        let q = p.prefix(k);
        let bonds = sys
            .topology
            .bonds
            .iter()
            .filter(|&&(i, j)| i.max(j) < k)
            .count();
        assert_eq!(q.bonds.len(), bonds, "prefix {k}");
        assert!(q.angles.iter().all(|a| a.atoms.iter().all(|&i| i < k)));
        let angles = p
            .angles
            .iter()
            .filter(|a| a.atoms.iter().all(|&i| i < k))
            .count();
        assert_eq!(q.angles.len(), angles);
        assert_eq!(q.charge.len(), k);
        assert_eq!(q.gbsa.scaled_radius.len(), k);
        assert!(q.exceptions.iter().all(|e| e.i.max(e.j) < k));
    }
    let whole = p.prefix(sys.n_atoms());
    assert_eq!(whole.torsions, p.torsions);
    assert_eq!(whole.exceptions, p.exceptions);
}

/// The positions of `atoms` (in that order) of one configuration `x` (N x 3).
fn gather(x: &[f64], atoms: &[usize]) -> Vec<f64> {
    atoms
        .iter()
        .flat_map(|&a| x[3 * a..3 * a + 3].to_vec())
        .collect()
}

#[test]
fn a_subset_energy_does_not_depend_on_the_order_of_its_atoms() {
    let sys = System::named("ala6", None, None).unwrap();
    let n = sys.n_atoms();
    // A fixed shuffle of the atoms (a multiplicative step coprime with n).
    let step = (2..n).find(|s| gcd(*s, n) == 1 && *s > n / 3).unwrap();
    let perm: Vec<usize> = (0..n).map(|k| (k * step + 5) % n).collect();
    let mut full = [0.0];
    sys.energy_and_grad(&sys.positions, &mut full, None);
    let mut e = [0.0];
    sys.subset_energy(&perm, &gather(&sys.positions, &perm), &mut e);
    assert!(
        (e[0] - full[0]).abs() < 1e-10 * full[0].abs(),
        "{} vs {}",
        e[0],
        full[0]
    );
    for k in [3, n / 3, n / 2, n - 1] {
        let mut sorted = perm[..k].to_vec();
        sorted.sort();
        let (mut a, mut b) = ([0.0], [0.0]);
        sys.subset_energy(&perm[..k], &gather(&sys.positions, &perm[..k]), &mut a);
        sys.subset_energy(&sorted, &gather(&sys.positions, &sorted), &mut b);
        assert!(
            a[0].is_finite() && (a[0] - b[0]).abs() < 1e-10 * b[0].abs().max(1.0),
            "{k}: {a:?} vs {b:?}"
        );
        // The subset's terms are those of the picked atoms.
        let q = sys.params.subset(&perm[..k]);
        let bonds = sys
            .topology
            .bonds
            .iter()
            .filter(|&&(i, j)| perm[..k].contains(&i) && perm[..k].contains(&j))
            .count();
        assert_eq!(q.bonds.len(), bonds, "{k}");
        assert_eq!(q.charge.len(), k);
    }
    // A prefix is the subset of the first atoms.
    let first: Vec<usize> = (0..20).collect();
    let (p, s) = (sys.params.prefix(20), sys.params.subset(&first));
    assert_eq!(
        (p.bonds, p.torsions, p.exceptions),
        (s.bonds, s.torsions, s.exceptions)
    );
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Twisted SMC in Z-matrix order: the partial energy of the internal coordinates of the first
/// rows is the energy of the atoms they place minus the log|det J| of those rows; of all rows,
/// the whole internal-coordinate target.
#[test]
fn internal_partial_energy_places_atoms_in_zmatrix_order() {
    use bgen_system::{InternalTarget, ZMatrix};
    let sys = System::named("aldp", None, None).unwrap();
    let z = ZMatrix::from_topology(&sys.topology).unwrap();
    let t = InternalTarget {
        target: &sys,
        zmatrix: &z,
    };
    let d = z.dim();
    let mut ic = vec![0.0; d];
    z.to_internal(&sys.positions, &mut ic);
    let (mut whole, mut part) = ([0.0], [0.0]);
    t.energy_and_grad(&ic, &mut whole, None);
    t.partial_energy(&ic, d, &mut part);
    assert_eq!(whole, part);
    t.partial_energy(&[], 0, &mut part);
    assert_eq!(part, [0.0]);
    let mut x = vec![0.0; 3 * z.n_atoms()];
    for rows in [3, 8, z.n_atoms() - 1] {
        let placed = ZMatrix::coords_of_rows(rows);
        t.partial_energy(&ic[..placed], placed, &mut part);
        // Independently: the whole configuration rebuilt, its first rows' atoms picked.
        let logdet_all = z.to_cartesian(&ic, &mut x);
        let atoms: Vec<usize> = z.rows[..rows].iter().map(|r| r.atom).collect();
        let mut e = [0.0];
        sys.subset_energy(&atoms, &gather(&x, &atoms), &mut e);
        let logdet = z.place(&ic, rows, &mut x);
        assert!(logdet_all != logdet);
        assert!(
            (part[0] - (e[0] - logdet)).abs() < 1e-10 * e[0].abs().max(1.0),
            "{rows}: {part:?} vs {}",
            e[0] - logdet
        );
        // Out of the domain (a negative bond among the placed rows): +inf.
        let mut bad = ic[..placed].to_vec();
        bad[0] = -0.1;
        t.partial_energy(&bad, placed, &mut part);
        assert_eq!(part, [f64::INFINITY]);
    }
}
