//! The `bgen energy` command-line contract.

use bgen_system::npy::{read_npy, write_npy};

mod common;

/// Runs bgen: (success, stdout, stderr).
fn bgen(args: &[&str]) -> (bool, String, String) {
    let o = common::bgen().args(args).output().unwrap();
    let p = common::printed(&o);
    (o.status.success(), p.stdout, p.stderr)
}

fn tmp(name: &str) -> std::path::PathBuf {
    common::scratch(name)
}

#[test]
fn energy_json_contract_and_forces() {
    let sys = bgen_system::System::named("aldp", None, None).unwrap();
    let n = sys.n_atoms();
    // two conformations, float32 input
    let x: Vec<f64> = sys
        .positions
        .iter()
        .chain(
            sys.positions
                .iter()
                .map(|v| v + 0.001)
                .collect::<Vec<_>>()
                .iter(),
        )
        .copied()
        .collect();
    let xp = tmp("x.npy");
    write_npy(&xp, &[2, n, 3], &x, true).unwrap();
    let fp = tmp("f.npy");
    let (ok, out, err) = bgen(&[
        "energy",
        "--system",
        "aldp",
        "--forcefield",
        "amber99sbildn-obc2",
        "--positions",
        xp.to_str().unwrap(),
        "--forces",
        fp.to_str().unwrap(),
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["unit"], "kJ/mol");
    let es = v["energies"].as_array().unwrap();
    assert_eq!(es.len(), 2);
    let x32: Vec<f64> = x.iter().map(|&v| v as f32 as f64).collect();
    for (c, e) in es.iter().enumerate() {
        let want = sys.energy(&x32[c * 3 * n..(c + 1) * 3 * n]);
        for k in ["total", "bond", "angle", "torsion", "nonbonded", "gb", "kT"] {
            assert!(e[k].is_number(), "missing {k}");
        }
        assert!((e["total"].as_f64().unwrap() - want.total()).abs() < 1e-9);
        assert!((e["kT"].as_f64().unwrap() - want.total() / sys.kt()).abs() < 1e-9);
        assert!((e["gb"].as_f64().unwrap() - want.gb()).abs() < 1e-9);
    }
    let f = read_npy(&fp).unwrap();
    assert_eq!(f.shape, vec![2, n, 3]);
    let mut want = vec![0.0; 3 * n];
    sys.energy_and_forces(&x32[..3 * n], &mut want);
    assert!(f.data[..3 * n]
        .iter()
        .zip(&want)
        .all(|(a, b)| (a - b).abs() < 1e-9));
}

#[test]
fn energy_of_a_pdb_file_and_the_table_output() {
    let p = tmp("aldp.pdb");
    std::fs::write(&p, include_str!("../../bgen-system/data/systems/aldp.pdb")).unwrap();
    let (ok, out, err) = bgen(&[
        "energy",
        "--pdb",
        p.to_str().unwrap(),
        "--forcefield",
        "amber14-obc1",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("amber14-obc1 at 310 K") && out.contains("total/kT"),
        "{out}"
    );
}

#[test]
fn wrong_atom_count_is_a_clear_error() {
    let xp = tmp("wrong.npy");
    write_npy(&xp, &[1, 23, 3], &[0.1; 69], false).unwrap();
    let (ok, _, err) = bgen(&[
        "energy",
        "--system",
        "aldp",
        "--positions",
        xp.to_str().unwrap(),
        "--json",
    ]);
    assert!(!ok);
    assert!(
        err.contains("wrong.npy") && err.contains("22 atoms") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn nan_positions_and_bad_files_are_clear_errors() {
    let sys = bgen_system::System::named("aldp", None, None).unwrap();
    let mut x = sys.positions.clone();
    x[5] = f64::NAN;
    let xp = tmp("nan.npy");
    write_npy(&xp, &[22, 3], &x, false).unwrap();
    let (ok, _, err) = bgen(&[
        "energy",
        "--system",
        "aldp",
        "--positions",
        xp.to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("nan.npy") && err.contains("non-finite") && err.contains("ACE 1:CH3"),
        "{err}"
    );
    let bad = tmp("bad.npy");
    std::fs::write(&bad, b"garbage").unwrap();
    let (ok, _, err) = bgen(&[
        "energy",
        "--system",
        "aldp",
        "--positions",
        bad.to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("bad.npy") && err.contains("not a .npy"),
        "{err}"
    );
    let (ok, _, err) = bgen(&["energy", "--pdb", "/nonexistent/x.pdb"]);
    assert!(!ok && err.contains("/nonexistent/x.pdb"), "{err}");
    let (ok, _, err) = bgen(&["energy", "--system", "nope"]);
    assert!(!ok && err.contains("unknown system 'nope'"), "{err}");
    let (ok, _, err) = bgen(&["energy", "--system", "aldp", "--forcefield", "charmm"]);
    assert!(!ok && err.contains("unknown force field 'charmm'"), "{err}");
}

/// Numbers that would panic, hang or give silently wrong results (zero counts, negative or
/// non-finite times, out-of-range fractions) are refused by name before any work starts, and
/// nothing is written.
#[test]
fn bad_numbers_are_refused_by_name_before_any_work() {
    let out = tmp("bad-numbers");
    let o = out.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["md", "--system", "aldp", "--checkpoint-secs", "-1"],
            "--checkpoint-secs",
        ),
        (
            &["md", "--system", "aldp", "--checkpoint-secs", "nan"],
            "--checkpoint-secs",
        ),
        (&["md", "--system", "aldp", "--replicas", "0"], "--replicas"),
        (
            &["md", "--system", "aldp", "--temperature", "0"],
            "--temperature",
        ),
        (&["md", "--system", "aldp", "--ns", "-1"], "--ns"),
        (&["sample", "--system", "aldp", "--n", "0"], "--n"),
        (&["sample", "--system", "aldp", "--batch", "0"], "--batch"),
        (
            &["sample", "--system", "aldp", "--drop-top", "2"],
            "--drop-top",
        ),
        (&["sample", "--system", "aldp", "--tau", "inf"], "--tau"),
        (
            &["sample", "--system", "aldp", "--step-size", "0"],
            "--step-size",
        ),
        (
            &["sample", "--system", "aldp", "--step-size", "nan"],
            "--step-size",
        ),
        (&["sample", "--system", "aldp", "--cess", "1.5"], "--cess"),
        (&["sample", "--system", "aldp", "--moves", "0"], "--moves"),
        (
            &["train", "--data", "x", "--batch-size", "0"],
            "--batch-size",
        ),
        (&["train", "--data", "x", "--steps", "0"], "--steps"),
        (&["train", "--data", "x", "--lr", "-1e-3"], "--lr"),
        (
            &["train", "--data", "x", "--checkpoint-secs", "inf"],
            "--checkpoint-secs",
        ),
        // Finite, but beyond what f32 bins, an XTC precision or a thread pool can take.
        (&["train", "--data", "x", "--range", "1e300"], "--range"),
        (&["train", "--data", "x", "--range", "1e-300"], "--range"),
        (
            &["train", "--data", "x", "--threads", "100000"],
            "--threads",
        ),
        (
            &["md", "--system", "aldp", "--threads", "100000"],
            "--threads",
        ),
        (
            &["sample", "--system", "aldp", "--threads", "100000"],
            "--threads",
        ),
        (
            &["dataset", "export", "--run", "x", "--precision", "1e300"],
            "--precision",
        ),
        (
            &[
                "eval",
                "--samples",
                "a",
                "--reference",
                "b",
                "--tica-lag",
                "0",
            ],
            "--tica-lag",
        ),
    ];
    for (args, name) in cases {
        let mut v = args.to_vec();
        v.extend(["--out", o]);
        let (ok, _, err) = bgen(&v);
        assert!(
            !ok && err.contains(&format!("for '{name} ")) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
        assert!(!out.exists(), "{args:?} wrote {o}");
    }
}

/// Options that only work together, or would be ignored, are refused by name; a proposal so
/// narrow that every SNIS weight is zero says so instead of writing zero weights.
#[test]
fn ignored_options_and_empty_weights_are_refused() {
    let out = tmp("ignored");
    let o = out.to_str().unwrap();
    let (ok, _, err) = bgen(&["md", "--sequences", "AA", "--shard-count", "2", "--out", o]);
    assert!(!ok && err.contains("--shard-index"), "{err}");
    let (ok, _, err) = bgen(&[
        "sample", "--system", "aldp", "--method", "snis", "--n", "16", "--tau", "1e-300", "--out",
        o,
    ]);
    assert!(
        !ok && err.contains("weight zero") && err.contains("--tau"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(out);
}

/// All atoms at one point: a clear error naming the conformation and the atoms, not a NaN table.
#[test]
fn coinciding_atoms_are_an_error_not_a_nan() {
    let x = vec![0.5; 22 * 3];
    let p = tmp("collapsed.npy");
    write_npy(&p, &[1, 22, 3], &x, false).unwrap();
    let (ok, out, err) = bgen(&[
        "energy",
        "--system",
        "aldp",
        "--positions",
        p.to_str().unwrap(),
    ]);
    assert!(!ok && !out.contains("NaN"), "{out}");
    assert!(
        err.contains("collapsed.npy")
            && err.contains("conformation 0")
            && err.contains("not finite"),
        "{err}"
    );
    // At the sampler seam such a conformation has energy +inf (zero weight), never NaN.
    use bgen_system::Target;
    let sys = bgen_system::System::named("aldp", None, None).unwrap();
    let (mut e, mut g) = ([0.0], vec![1.0; 66]);
    sys.energy_and_grad(&x, &mut e, Some(&mut g));
    assert_eq!(e[0], f64::INFINITY);
    assert!(g.iter().all(|&v| v == 0.0));
}

/// An atom flung 1e200 nm away is named through its stretched bond (the closest pair alone
/// pointed at an ordinary N-H bond).
#[test]
fn a_far_away_atom_is_named_by_its_bond() {
    let sys = bgen_system::System::named("aldp", None, None).unwrap();
    let mut x = sys.positions.clone();
    x[3 * 3] += 1e200;
    let p = tmp("far.npy");
    write_npy(&p, &[1, 22, 3], &x, false).unwrap();
    let (ok, _, err) = bgen(&[
        "energy",
        "--system",
        "aldp",
        "--positions",
        p.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("longest bond"), "{err}");
    let bond = err.split("longest bond, ").nth(1).unwrap_or("");
    assert!(bond.starts_with("3 (") || bond.contains("-3 ("), "{err}");
}

#[test]
fn an_smc_schedule_target_outside_its_range_is_a_clear_error() {
    let out = tmp("bad-cess");
    let (ok, _, err) = bgen(&[
        "sample",
        "--system",
        "aldp",
        "--cess",
        "1.5",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("'1.5' for '--cess"), "{err}");
    assert!(!out.join("summary.json").exists());
}

/// No conformations, and a finite energy with non-finite forces (two bonded atoms on top of each
/// other): clear errors naming the file, never a panic or NaN forces written beside an energy.
#[test]
fn empty_files_and_nan_forces_are_clear_errors() {
    let sys = bgen_system::System::named("aldp", None, None).unwrap();
    let n = sys.n_atoms();
    let empty = tmp("empty.npy");
    write_npy(&empty, &[0, n, 3], &[], false).unwrap();
    for json in [false, true] {
        let mut args = vec!["energy", "--system", "aldp", "--positions"];
        args.push(empty.to_str().unwrap());
        if json {
            args.push("--json");
        }
        let (ok, _, err) = bgen(&args);
        assert!(
            !ok && err.contains("empty.npy")
                && err.contains("no conformations")
                && !err.contains("panicked"),
            "{err}"
        );
    }
    // Integers are no positions (the file holds the structure in nm, rounded to 0: it would
    // have been scored as a clash, or as Angstroms read as nm).
    let ints = tmp("integer-positions.npy");
    let rounded: Vec<i64> = sys
        .positions
        .iter()
        .map(|v| (v * 10.0).round() as i64)
        .collect();
    bgen_system::npy::write_npy_i64(&ints, &[1, n, 3], &rounded).unwrap();
    let (ok, _, err) = bgen(&[
        "energy",
        "--system",
        "aldp",
        "--positions",
        ints.to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("integer-positions.npy") && err.contains("holds integers"),
        "{err}"
    );
    let b = &sys.params.bonds[0];
    let mut x = sys.positions.clone();
    let at_i = x[3 * b.i..3 * b.i + 3].to_vec();
    x[3 * b.j..3 * b.j + 3].copy_from_slice(&at_i);
    let (xp, fp) = (tmp("bonded-on-top.npy"), tmp("bonded-on-top-forces.npy"));
    write_npy(&xp, &[1, n, 3], &x, false).unwrap();
    let _ = std::fs::remove_file(&fp);
    let (ok, _, err) = bgen(&[
        "energy",
        "--system",
        "aldp",
        "--positions",
        xp.to_str().unwrap(),
        "--forces",
        fp.to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("bonded-on-top.npy") && err.contains("forces are not finite"),
        "{err}"
    );
    assert!(!fp.exists(), "no NaN forces written");
    // Without --forces the energy is finite and printed.
    let (ok, out, err) = bgen(&[
        "energy",
        "--system",
        "aldp",
        "--positions",
        xp.to_str().unwrap(),
    ]);
    assert!(ok && out.contains("total/kT"), "{err}");
}
