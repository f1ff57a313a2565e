//! Backbone dihedrals found from the topology.

use bgen_system::System;

#[test]
fn backbone_dihedrals_follow_the_chain() {
    let aldp = System::named("aldp", None, None).unwrap();
    let d = aldp.topology.backbone_dihedrals();
    let got: Vec<(&str, [usize; 4])> = d.iter().map(|b| (b.name.as_str(), b.atoms)).collect();
    // The reference data's definitions (0-based): phi (4,6,8,14), psi (6,8,14,16).
    assert_eq!(
        got,
        vec![("phi ALA 2", [4, 6, 8, 14]), ("psi ALA 2", [6, 8, 14, 16])]
    );
    // Zwitterionic chains: no phi on the first residue, no psi on the last.
    for name in ["ala6", "chignolin"] {
        let sys = System::named(name, None, None).unwrap();
        let n_res = sys.topology.residues.len();
        let d = sys.topology.backbone_dihedrals();
        assert_eq!(d.iter().filter(|b| b.is_phi).count(), n_res - 1, "{name}");
        assert_eq!(d.iter().filter(|b| !b.is_phi).count(), n_res - 1, "{name}");
        assert!(!d[0].is_phi && d.last().unwrap().is_phi, "{name}");
    }
}

#[test]
fn mirror_images_are_found_and_flipped() {
    use bgen_system::topology::{chirality, fix_mirror_images};
    let sys = System::named("ala6", None, None).unwrap();
    let centres = sys.topology.chiral_centres();
    assert_eq!(centres.len(), 6);
    let x = sys.positions.clone();
    // Every L-alanine CA has the same handedness.
    let signs: Vec<f64> = centres.iter().map(|&c| chirality(&x, c).signum()).collect();
    assert!(signs.iter().all(|&s| s == signs[0]));
    let mirrored: Vec<f64> = x.iter().map(|v| -v).collect();
    let mut batch = [x.clone(), mirrored.clone(), x.clone()].concat();
    let n = fix_mirror_images(&mut batch, sys.n_atoms(), &centres, &sys.positions);
    assert_eq!(n, 1);
    assert_eq!(&batch[x.len()..2 * x.len()], &x[..]);
    // The energy does not see the mirror.
    let (e0, e1) = (sys.energy(&x).total(), sys.energy(&mirrored).total());
    assert!((e0 - e1).abs() < 1e-9 * e0.abs());
    // Glycine has no centre.
    assert_eq!(
        System::named("chignolin", None, None)
            .unwrap()
            .topology
            .chiral_centres()
            .len(),
        7
    );
}
