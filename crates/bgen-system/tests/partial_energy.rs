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
