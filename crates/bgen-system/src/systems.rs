//! Embedded molecular systems, usable without any file.

/// (name, description, PDB text, default setup name).
pub const NAMED: [(&str, &str, &str, &str); 5] = [
    (
        "aldp",
        "alanine dipeptide, Ace-Ala-Nme, 22 atoms",
        include_str!("../data/systems/aldp.pdb"),
        "amber99sbildn-obc2",
    ),
    (
        "ala3",
        "trialanine AAA, zwitterion, 33 atoms",
        include_str!("../data/systems/ala3.pdb"),
        "amber14-obc1",
    ),
    (
        "ala4",
        "Ace-AAA-Nme, 42 atoms",
        include_str!("../data/systems/ala4.pdb"),
        "amber99sbildn-obc2",
    ),
    (
        "ala6",
        "hexa-alanine AAAAAA, zwitterion, 63 atoms",
        include_str!("../data/systems/ala6.pdb"),
        "amber14-obc1",
    ),
    (
        "chignolin",
        "chignolin GYDPETGTWG, zwitterion, 138 atoms",
        include_str!("../data/systems/chignolin.pdb"),
        "amber14-obc1",
    ),
];

/// Names of the embedded systems.
pub fn names() -> Vec<&'static str> {
    NAMED.iter().map(|n| n.0).collect()
}
