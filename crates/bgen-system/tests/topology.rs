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
