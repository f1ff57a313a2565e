//! Bad input gives a clear error naming the file, residue and atom; never a panic.

use bgen_system::npy::parse_npy;
use bgen_system::pdb::PdbFile;
use bgen_system::{Setup, System};

const ALDP: &str = include_str!("../data/systems/aldp.pdb");

fn build(text: &str) -> String {
    let pdb = match PdbFile::parse(text, "input.pdb") {
        Ok(p) => p,
        Err(e) => return e.to_string(),
    };
    match System::from_pdb(&pdb, Setup::Amber99sbildnObc2, None) {
        Ok(_) => "ok".into(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_embedded_aldp_builds() {
    assert_eq!(build(ALDP), "ok");
}

#[test]
fn unknown_residue_is_named() {
    let msg = build(&ALDP.replace("ALA A   2", "XYZ A   2"));
    assert!(
        msg.contains("input.pdb") && msg.contains("XYZ 2") && msg.contains("unknown residue 'XYZ'"),
        "{msg}"
    );
}

#[test]
fn unknown_atom_name_is_named() {
    let msg = build(&ALDP.replace(" HB1 ALA", " HB9 ALA"));
    assert!(
        msg.contains("input.pdb") && msg.contains("ALA 2") && msg.contains("'HB9'"),
        "{msg}"
    );
}

#[test]
fn missing_hydrogens_are_reported() {
    let no_h: String = ALDP
        .lines()
        .filter(|l| !(l.starts_with("ATOM") && l.ends_with("H  ") && l.contains(" ALA ")))
        .map(|l| format!("{l}\n"))
        .collect();
    let msg = build(&no_h);
    assert!(
        msg.contains("input.pdb") && msg.contains("ALA 2") && msg.contains("no hydrogens"),
        "{msg}"
    );
    let one_missing: String = ALDP
        .lines()
        .filter(|l| !l.contains(" HB3 ALA"))
        .map(|l| format!("{l}\n"))
        .collect();
    let msg = build(&one_missing);
    assert!(
        msg.contains("ALA 2")
            && msg.contains("missing atoms: HB3")
            && msg.contains("Missing hydrogens?"),
        "{msg}"
    );
}

#[test]
fn malformed_coordinates_name_the_line() {
    let msg = build(&ALDP.replace("   3.573   1.323", "   3.5x3   1.323"));
    assert!(
        msg.starts_with("input.pdb:10:") && msg.contains("bad coordinate"),
        "{msg}"
    );
    let msg = build("HEADER nothing\nEND\n");
    assert!(msg.contains("no ATOM or HETATM"), "{msg}");
}

#[test]
fn duplicate_atom_names_are_rejected() {
    let msg = build(&ALDP.replace(" HB2 ALA", " HB1 ALA"));
    assert!(
        msg.contains("ALA 2") && msg.contains("'HB1' occurs twice"),
        "{msg}"
    );
}

#[test]
fn non_finite_positions_are_named() {
    let sys = System::named("aldp", None, None).unwrap();
    let mut x = sys.positions.clone();
    x[3 * 10 + 1] = f64::NAN;
    let msg = sys.check_positions(&x, "x.npy").unwrap_err().to_string();
    assert!(
        msg.contains("x.npy") && msg.contains("atom 10") && msg.contains("ALA 2:CB"),
        "{msg}"
    );
    let msg = sys
        .check_positions(&x[..10], "x.npy")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("not a whole number of conformations"), "{msg}");
    // the Target seam maps a non-finite sample to +inf energy instead of NaN
    use bgen_system::Target;
    let mut e = [0.0; 2];
    let batch: Vec<f64> = sys.positions.iter().chain(x.iter()).copied().collect();
    sys.energy_and_grad(&batch, &mut e, None);
    assert!(e[0].is_finite() && e[1] == f64::INFINITY);
}

#[test]
fn malformed_npy_is_reported() {
    for (bytes, want) in [
        (b"not numpy at all".to_vec(), "bad magic"),
        (b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f8'".to_vec(), "truncated header"),
        (b"\x93NUMPY\x01\x00\x46\x00{'descr': '<c16', 'fortran_order': False, 'shape': (2, 3), }          \n".to_vec(), "unsupported dtype"),
        (b"\x93NUMPY\x01\x00\x46\x00{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }          \n\x00\x00".to_vec(), "truncated data"),
    ] {
        let msg = parse_npy(&bytes, "bad.npy").unwrap_err().to_string();
        assert!(msg.starts_with("bad.npy") && msg.contains(want), "{msg}");
    }
}

/// A .npy of `descr` and `shape` (header text) followed by `body`.
fn npy(descr: &str, shape: &str, body: &[u8]) -> Vec<u8> {
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend((h.len() as u16).to_le_bytes());
    b.extend(h.as_bytes());
    b.extend(body);
    b
}

/// A header that claims more than the file holds is refused before any allocation (2^62 frames
/// used to abort the process), and so is one that claims less (the rest was silently dropped).
#[test]
fn npy_shapes_must_match_the_data_exactly() {
    let body = vec![0u8; 2 * 3 * 8];
    assert_eq!(
        parse_npy(&npy("<f8", "(2, 3)", &body), "ok.npy")
            .unwrap()
            .shape,
        vec![2, 3]
    );
    for (shape, want) in [
        ("(4611686018427387904, 22, 3)", "too large"),
        ("(1, 3)", "more data than the header's shape"),
        ("(3, 3)", "truncated data"),
    ] {
        let msg = parse_npy(&npy("<f8", shape, &body), "bad.npy")
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("bad.npy") && msg.contains(want),
            "{shape}: {msg}"
        );
    }
    assert!(
        parse_npy(&npy("<i8", "(2, 3)", &body), "i.npy")
            .unwrap()
            .integer
    );
    assert!(
        !parse_npy(&npy("<f8", "(2, 3)", &body), "f.npy")
            .unwrap()
            .integer
    );
}

#[test]
fn npy_round_trip() {
    let dir = std::env::temp_dir().join(format!("bgen-npy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data: Vec<f64> = (0..24).map(|i| i as f64 * 0.25 - 3.0).collect();
    for f32_ in [false, true] {
        let p = dir.join(format!("a{f32_}.npy"));
        bgen_system::npy::write_npy(&p, &[2, 4, 3], &data, f32_).unwrap();
        let a = bgen_system::npy::read_npy(&p).unwrap();
        assert_eq!(a.shape, vec![2, 4, 3]);
        assert_eq!(a.data, data);
    }
    let ints: Vec<i64> = (-3..9).collect();
    let p = dir.join("i.npy");
    bgen_system::npy::write_npy_i64(&p, &[12], &ints).unwrap();
    let a = bgen_system::npy::read_npy(&p).unwrap();
    assert_eq!(a.shape, vec![12]);
    assert_eq!(a.data, ints.iter().map(|&v| v as f64).collect::<Vec<_>>());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn write_pdb_reads_back_to_the_same_energy() {
    let sys = System::named("ala4", None, None).unwrap();
    let text = bgen_system::pdb::write_pdb(&sys.topology, &sys.positions);
    let again = System::from_pdb(
        &PdbFile::parse(&text, "roundtrip.pdb").unwrap(),
        Setup::Amber99sbildnObc2,
        None,
    )
    .unwrap();
    assert_eq!(again.params.residue_template, sys.params.residue_template);
    assert!(
        (again.energy(&again.positions).total() - sys.energy(&sys.positions).total()).abs() < 1e-2
    );
}

/// Several MODELs without ENDMDL (as some tools write them) are the first model, not one
/// molecule of twice the atoms.
#[test]
fn models_without_endmdl_are_the_first_model() {
    let atoms: String = ALDP
        .lines()
        .filter(|l| l.starts_with("ATOM") || l.starts_with("HETATM"))
        .map(|l| format!("{l}\n"))
        .collect();
    let text = format!("MODEL        1\n{atoms}MODEL        2\n{atoms}END\n");
    let pdb = PdbFile::parse(&text, "models.pdb").unwrap();
    assert_eq!(pdb.atoms.len(), 22);
    assert_eq!(build(&text), "ok");
}

/// A molecule too large for the all-pairs energy is refused with the memory it would need,
/// before anything is allocated (a 20,000-atom PDB once asked for 9.6 GB per thread; now its
/// per-thread memory is linear in the atoms, and the limit is 20,000).
#[test]
fn a_molecule_beyond_the_all_pairs_limit_is_refused() {
    let line = ALDP
        .lines()
        .find(|l| l.starts_with("ATOM") || l.starts_with("HETATM"))
        .unwrap();
    let text: String = (0..30_000).map(|_| format!("{line}\n")).collect();
    let pdb = PdbFile::parse(&text, "huge.pdb").unwrap();
    let err = System::from_pdb(&pdb, Setup::Amber14Obc1, None)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("huge.pdb") && err.contains("30000 atoms") && err.contains("GB"),
        "{err}"
    );
}

/// Large molecules keep no per-pair scratch memory: a workspace is linear in the atoms above
/// `MAX_CACHED_PAIRS`, and recomputing the pair geometry gives the same energies and
/// gradients bit for bit.
#[test]
fn large_molecules_recompute_pairs_with_the_same_numbers() {
    use bgen_system::energy::Precision;
    use bgen_system::EnergyModel;
    // 130 copies of alanine dipeptide 1.5 nm apart: 2,860 atoms, 4.1 million pairs.
    let atoms: Vec<&str> = ALDP
        .lines()
        .filter(|l| l.starts_with("ATOM") || l.starts_with("HETATM"))
        .collect();
    let mut text = String::new();
    let mut serial = 1;
    for c in 0..130 {
        for l in &atoms {
            let res: i32 = l[22..26].trim().parse().unwrap();
            let shift = |k: usize, v: f64| {
                format!("{:8.3}", l[k..k + 8].trim().parse::<f64>().unwrap() + v)
            };
            let (dx, dy) = (15.0 * (c % 12) as f64, 15.0 * (c / 12) as f64);
            text.push_str(&format!(
                "{}{:5}{}{:4}{}{}{}{}{}\n",
                &l[..6],
                serial,
                &l[11..22],
                res + 3 * c,
                &l[26..30],
                shift(30, dx),
                shift(38, dy),
                &l[46..54],
                &l[54..]
            ));
            serial += 1;
        }
        text.push_str("TER\n");
    }
    text.push_str("END\n");
    let pdb = PdbFile::parse(&text, "many.pdb").unwrap();
    let sys = System::from_pdb(&pdb, Setup::Amber99sbildnObc2, None).unwrap();
    let n = sys.n_atoms();
    assert_eq!(n, 2860);
    let big = EnergyModel::new(&sys.params);
    for p in [Precision::Reference, Precision::Double, Precision::Mixed] {
        let ws = big.workspace_in(p);
        assert!(ws.bytes() < 2_000 * n, "{p:?}: {} bytes", ws.bytes());
    }
    let mut ws = big.workspace();
    let mut g = vec![0.0; 3 * n];
    let e = big.energy_grad(&sys.positions, &mut g, &mut ws);
    // Copies this far apart: the total is close to 130 times one copy (not exactly: Coulomb and
    // GB between copies).
    let one = System::named("aldp", None, None).unwrap();
    let e1 = one
        .model()
        .energy(&one.positions, &mut one.model().workspace())
        .total();
    assert!(
        e.total().is_finite() && (e.total() / 130.0 - e1).abs() < 0.05 * e1.abs(),
        "{} vs {e1}",
        e.total() / 130.0
    );
    // Smaller systems, with and without the pair cache: identical.
    for (name, setup) in [
        ("aldp", None),
        ("aldp", Some(Setup::Amber14Obc1)),
        ("chignolin", None),
    ] {
        let s = System::named(name, setup, None).unwrap();
        let cached = EnergyModel::new(&s.params);
        let plain = EnergyModel::new(&s.params).without_pair_cache();
        let x: Vec<f64> = s
            .positions
            .iter()
            .enumerate()
            .map(|(k, v)| v + 0.003 * ((k * 7) % 11) as f64)
            .collect();
        for p in [Precision::Reference, Precision::Double, Precision::Mixed] {
            let (mut ga, mut gb) = (vec![0.0; x.len()], vec![0.0; x.len()]);
            let ea = cached.energy_grad(&x, &mut ga, &mut cached.workspace_in(p));
            let eb = plain.energy_grad(&x, &mut gb, &mut plain.workspace_in(p));
            assert_eq!(ea.total().to_bits(), eb.total().to_bits(), "{name} {p:?}");
            assert_eq!(ga, gb, "{name} {p:?}");
            assert!(plain.workspace_in(p).bytes() < cached.workspace_in(p).bytes());
        }
    }
}

/// A sequence too long for the PDB format's columns is refused with its length, not written as
/// a PDB that cannot be read back; long sequences are named by their ends in messages.
#[test]
fn a_chain_beyond_pdb_columns_is_refused_and_named_briefly() {
    use bgen_system::peptide::{build_pdb, label, Caps};
    assert_eq!(label("KW"), "<sequence KW>");
    let l = label(&"A".repeat(1000));
    assert!(l.len() < 60 && l.contains("(1000 residues)"), "{l}");
    let e = build_pdb(
        &"A".repeat(1000),
        Caps::None,
        bgen_system::Setup::Amber14Obc1,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("beyond what PDB columns hold") && e.len() < 300,
        "{e}"
    );
}

/// A chain break (here the NME cap moved 0.6 nm away): refused, naming both atoms and the gap,
/// not bonded shut by a peptide bond of 0.7 nm.
#[test]
fn a_chain_break_is_named() {
    let moved: Vec<String> = ALDP
        .lines()
        .map(|l| {
            if (l.starts_with("ATOM") || l.starts_with("HETATM")) && &l[17..20] == "NME" {
                let x: f64 = l[30..38].trim().parse().unwrap();
                return format!("{}{:8.3}{}", &l[..30], x + 6.0, &l[38..]);
            }
            l.to_string()
        })
        .collect();
    let msg = build(&(moved.join("\n") + "\n"));
    assert!(
        msg.contains("input.pdb")
            && msg.contains("C of ALA 2")
            && msg.contains("N of NME 3")
            && msg.contains("chain break"),
        "{msg}"
    );
}

/// An unknown residue in a zwitterion is named as the cause, not its neighbour's terminal
/// hydrogens that no template then explains.
#[test]
fn an_unknown_residue_is_named_before_its_neighbours() {
    let pdb = bgen_system::peptide::build_pdb("AA", Default::default(), Setup::Amber14Obc1)
        .unwrap()
        .replace("ALA A   2", "XYZ A   2");
    let file = PdbFile::parse(&pdb, "input.pdb").unwrap();
    let msg = System::from_pdb(&file, Setup::Amber14Obc1, None)
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("input.pdb") && msg.contains("unknown residue 'XYZ'") && msg.contains("XYZ 2"),
        "{msg}"
    );
}

/// A write that cannot land (a directory where the file goes) is an error naming the path and
/// leaves no temporary file beside it.
#[test]
fn a_failed_atomic_write_leaves_nothing_behind() {
    let dir = std::env::temp_dir().join(format!("bgen-atomic-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let target = dir.join("out.npy");
    std::fs::create_dir_all(&target).unwrap();
    let e = bgen_system::npy::write_atomic(&target, b"bytes").unwrap_err();
    assert!(e.to_string().contains("out.npy"), "{e}");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("out.npy")], "{left:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A byte-order mark before the first record (as Windows editors save) keeps every atom.
#[test]
fn a_byte_order_mark_keeps_the_first_atom() {
    assert_eq!(build(&format!("\u{feff}{ALDP}")), "ok");
    let with = PdbFile::parse(&format!("\u{feff}{ALDP}"), "bom.pdb").unwrap();
    let without = PdbFile::parse(ALDP, "plain.pdb").unwrap();
    assert_eq!(with.atoms.len(), without.atoms.len());
}
