//! `bgen train` and `bgen sample` end to end on a tiny model: files, shapes, the summary
//! contract, and clear errors for a damaged run.

use bgen_system::npy::read_npy;
use std::path::PathBuf;

mod common;
use common::bgen;

fn path(name: &str) -> PathBuf {
    common::scratch_path(name)
}

fn tmp(name: &str) -> PathBuf {
    common::scratch(name)
}

/// The stdout of a bgen run that must succeed.
fn ok(o: std::process::Output) -> String {
    common::ok(o).stdout
}

#[test]
fn train_then_sample_with_every_method() {
    let (md, split, run) = (tmp("md"), tmp("split"), tmp("run"));
    ok(bgen()
        .args([
            "md",
            "--system",
            "aldp",
            "--ns",
            "0.05",
            "--save-every-ps",
            "0.1",
            "--equilibrate-ps",
            "1",
            "--replicas",
            "2",
            "--out",
        ])
        .arg(&md)
        .output()
        .unwrap());
    ok(bgen()
        .args(["dataset", "split", "--run"])
        .arg(&md)
        .arg("--out")
        .arg(&split)
        .output()
        .unwrap());
    // Cartesian coordinates: this test covers their CoM forms and energy cutoff (the default,
    // internal coordinates, is covered by the ArBG test below and by `bgen run`'s).
    ok(bgen()
        .args([
            "train",
            "--preset",
            "tiny",
            "--steps",
            "30",
            "--coords",
            "cartesian",
            "--matmul",
            "f32",
            "--data",
        ])
        .arg(split.join("train"))
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap());
    assert!(run.join("latest.json").exists() && run.join("run.json").exists());
    // A resume with other settings is refused, each difference named (they were ignored).
    let o = bgen()
        .args([
            "train", "--resume", "--steps", "50", "--lr", "0.01", "--matmul", "bf16", "--data",
        ])
        .arg(split.join("val"))
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    for want in [
        "--steps 50 (the run has 30)",
        "--lr 0.01",
        "--matmul bf16 (the run's products are f32)",
        "--data/--extra-data",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
    for method in ["proposal", "snis", "smc"] {
        let out = tmp(method);
        let mut cmd = bgen();
        cmd.args(["sample", "--method", method, "--n", "64", "--run"])
            .arg(&run)
            .arg("--out")
            .arg(&out);
        if method == "smc" {
            // The fixed schedule (the default is adaptive, with independence moves).
            cmd.args([
                "--steps",
                "4",
                "--cess",
                "0",
                "--independence",
                "0",
                "--moves",
                "2",
                "--mala",
                "--tau",
                "0.9",
            ]);
        }
        let stdout = ok(cmd.output().unwrap());
        let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let ess = s["ess"].as_f64().unwrap();
        assert!(ess > 0.0 && ess <= 1.0 + 1e-12, "{method}: ess {ess}");
        assert!(s["log_z"].as_f64().unwrap().is_finite());
        assert_eq!(
            read_npy(&out.join("samples.npy")).unwrap().shape,
            vec![64, 22, 3]
        );
        assert_eq!(read_npy(&out.join("energies.npy")).unwrap().shape, vec![64]);
        let e = read_npy(&out.join("energies.npy")).unwrap().data;
        let bad = e.iter().filter(|v| !v.is_finite()).count() as u64;
        assert_eq!(s["non_finite_energies"].as_u64().unwrap(), bad, "{method}");
        assert_eq!(out.join("log_weights.npy").exists(), method == "snis");
        if method == "smc" {
            // The start, 4 levels of 2 moves, and 2 moves after the final resampling.
            assert_eq!(s["energy_evaluations"].as_u64().unwrap(), 64 * 11);
        }
    }
    // SNIS's energy cutoff drops exactly the samples above it (same seed, same samples), and
    // a method without weights, run into the same directory, removes the stale weights.
    // A damaged sample array is caught by the directory's manifest before evaluation.
    let damaged = tmp("damaged");
    std::fs::create_dir_all(&damaged).unwrap();
    for f in [
        "samples.npy",
        "energies.npy",
        "log_weights.npy",
        "log_q.npy",
        "manifest.txt",
    ] {
        std::fs::copy(path("snis").join(f), damaged.join(f)).unwrap();
    }
    let mut bytes = std::fs::read(damaged.join("samples.npy")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(damaged.join("samples.npy"), bytes).unwrap();
    let o = bgen()
        .args(["eval", "--system", "aldp", "--samples"])
        .arg(&damaged)
        .arg("--reference")
        .arg(split.join("test"))
        .arg("--out")
        .arg(tmp("damaged-eval"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("samples.npy") && err.contains("manifest.txt"),
        "{err}"
    );
    // energies.npy is in kJ/mol, the cutoff in kT (aldp at 300 K); cut between two samples.
    let kt = bgen_system::System::named("aldp", None, None).unwrap().kt();
    let e: Vec<f64> = read_npy(&path("snis").join("energies.npy"))
        .unwrap()
        .data
        .iter()
        .map(|v| v / kt)
        .collect();
    let mut sorted = e.clone();
    sorted.sort_by(f64::total_cmp);
    let cut = 0.5 * (sorted[40] + sorted[41]);
    let out = tmp("cutoff");
    let s: serde_json::Value = serde_json::from_str(&ok(bgen()
        .args(["sample", "--method", "snis", "--n", "64", "--run"])
        .arg(&run)
        .arg("--out")
        .arg(&out)
        .args(["--energy-cutoff", &cut.to_string()])
        .output()
        .unwrap()))
    .unwrap();
    let above = e.iter().filter(|&&v| v > cut).count() as u64;
    assert_eq!(s["dropped_energy"].as_u64().unwrap(), above);
    assert!(above > 0);
    ok(bgen()
        .args(["sample", "--method", "proposal", "--n", "64", "--run"])
        .arg(&run)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap());
    assert!(
        !out.join("log_weights.npy").exists(),
        "stale weights removed"
    );
    std::fs::remove_dir_all(out).unwrap();
    // Evaluation with the model's held-out NLL and the proposal drawn beside SMC.
    let ev = tmp("eval");
    ok(bgen()
        .args(["eval", "--system", "aldp", "--samples"])
        .arg(path("smc"))
        .arg("--compare")
        .arg(path("proposal"))
        .arg("--model")
        .arg(&run)
        .arg("--reference")
        .arg(split.join("test"))
        .arg("--out")
        .arg(&ev)
        .output()
        .unwrap());
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ev.join("metrics.json")).unwrap()).unwrap();
    assert!(
        m["nll"].as_f64().unwrap().is_finite()
            && m["nll_nm"].as_f64().unwrap() < m["nll"].as_f64().unwrap()
    );
    for d in [path("proposal"), path("snis"), path("smc"), ev] {
        std::fs::remove_dir_all(d).unwrap();
    }
    arbg_train_then_sample(&split);
    // A damaged checkpoint is reported with its file: sampling reads the EMA weights (and with
    // --no-ema the raw ones), training all three.
    let latest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("latest.json")).unwrap()).unwrap();
    let ckpt = run.join(latest["checkpoint"].as_str().unwrap());
    for (file, extra) in [
        ("ema.safetensors", None),
        ("weights.safetensors", Some("--no-ema")),
    ] {
        let w = ckpt.join(file);
        let good = std::fs::read(&w).unwrap();
        std::fs::write(&w, b"not safetensors").unwrap();
        let o = bgen()
            .args(["sample", "--n", "4", "--run"])
            .arg(&run)
            .arg("--out")
            .arg(tmp("bad"))
            .args(extra)
            .output()
            .unwrap();
        assert!(!o.status.success());
        assert!(String::from_utf8_lossy(&o.stderr).contains(file));
        // One flipped bit in the tensors' bytes loads as other weights unless checked.
        let mut flipped = good.clone();
        let k = flipped.len() - 100;
        flipped[k] ^= 0x01;
        std::fs::write(&w, &flipped).unwrap();
        let o = bgen()
            .args(["sample", "--n", "4", "--run"])
            .arg(&run)
            .arg("--out")
            .arg(tmp("bad"))
            .args(extra)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(file) && err.contains("damaged"),
            "{err}"
        );
        std::fs::write(&w, good).unwrap();
    }
    for d in [md, split, run] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// The ArBG through the same commands, in both coordinates: SNIS, twisted SMC by residue and
/// by atom (in Z-matrix order for internal coordinates, whose first block holds three atoms),
/// the chi CoM form, and a clear refusal of Langevin SMC.
fn arbg_train_then_sample(split: &std::path::Path) {
    for coords in ["cartesian", "internal"] {
        arbg_in(split, coords);
    }
}

fn arbg_in(split: &std::path::Path, coords: &str) {
    let run = tmp("arbg");
    ok(bgen()
        .args([
            "train", "--model", "arbg", "--preset", "tiny", "--steps", "20", "--coords", coords,
            "--data",
        ])
        .arg(split.join("train"))
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap());
    for (method, extra) in [
        ("snis", vec!["--com", "chi"]),
        ("twisted", vec![]),
        ("twisted", vec!["--blocks", "atom", "--tau", "0.9"]),
    ] {
        let out = tmp("arbg-sample");
        let stdout = ok(bgen()
            .args(["sample", "--method", method, "--n", "48", "--run"])
            .arg(&run)
            .arg("--out")
            .arg(&out)
            .args(&extra)
            .output()
            .unwrap());
        let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let ess = s["ess"].as_f64().unwrap();
        assert!(
            ess > 0.0 && ess <= 1.0 + 1e-12,
            "{method} {extra:?}: ess {ess}"
        );
        assert_eq!(
            read_npy(&out.join("samples.npy")).unwrap().shape,
            vec![48, 22, 3]
        );
        assert_eq!(s["coords"], coords);
        if method == "twisted" {
            // By residue (3) or atom (22) in Cartesian coordinates; by atom in Z-matrix
            // order in internal ones (the first block places three).
            let blocks = match (extra.is_empty(), coords) {
                (true, "cartesian") => 3,
                (false, "cartesian") => 22,
                _ => 20,
            };
            assert_eq!(s["blocks"].as_u64().unwrap(), blocks);
            assert_eq!(
                s["ess_per_block"].as_array().unwrap().len(),
                blocks as usize
            );
        }
        std::fs::remove_dir_all(&out).unwrap();
    }
    // A finished sample directory, then a failed rerun into it: it no longer looks finished.
    let done = tmp("arbg-smc");
    ok(bgen()
        .args(["sample", "--method", "snis", "--n", "8", "--run"])
        .arg(&run)
        .arg("--out")
        .arg(&done)
        .output()
        .unwrap());
    assert!(done.join("summary.json").exists() && done.join("manifest.txt").exists());
    let o = bgen()
        .args(["sample", "--method", "smc", "--n", "8", "--run"])
        .arg(&run)
        .arg("--out")
        .arg(&done)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--method smc moves along the gradient"),
        "{err}"
    );
    assert!(!done.join("summary.json").exists() && !done.join("manifest.txt").exists());
    std::fs::remove_dir_all(&done).unwrap();
    std::fs::remove_dir_all(run).unwrap();
}

#[test]
fn shipped_aldp_weights_sample_at_once() {
    let out = tmp("shipped");
    let stdout = ok(bgen()
        .args([
            "sample", "--system", "aldp", "--method", "snis", "--n", "32", "--out",
        ])
        .arg(&out)
        .output()
        .unwrap());
    let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(s["ess"].as_f64().unwrap() > 0.0);
    let e = read_npy(&out.join("energies.npy")).unwrap().data;
    // A trained model: most proposals are physical (energies in kJ/mol well below a clash).
    let median = {
        let mut v = e.clone();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    assert!(median < 2.5e3, "median energy {median} kJ/mol");
    std::fs::remove_dir_all(&out).unwrap();
    // Trialanine's shipped model too.
    let out3 = tmp("shipped-ala3");
    let s3: serde_json::Value = serde_json::from_str(&ok(bgen()
        .args([
            "sample", "--system", "ala3", "--method", "snis", "--n", "32", "--out",
        ])
        .arg(&out3)
        .output()
        .unwrap()))
    .unwrap();
    assert!(s3["ess"].as_f64().unwrap() > 0.0, "{s3}");
    assert_eq!(
        read_npy(&out3.join("samples.npy")).unwrap().shape,
        vec![32, 33, 3]
    );
    std::fs::remove_dir_all(&out3).unwrap();
    let o = bgen()
        .args(["sample", "--system", "chignolin", "--n", "4", "--out"])
        .arg(tmp("shipped-none"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no shipped weights for 'chignolin'"));
    // An --out that holds another stage's output (here an MD run's frames) is refused, and left
    // as it was; so is one that is a file.
    let md = tmp("looks-like-md");
    std::fs::create_dir_all(&md).unwrap();
    std::fs::write(md.join("frames.npy"), b"frames").unwrap();
    for out in [md.clone(), md.join("frames.npy")] {
        let o = bgen()
            .args(["sample", "--system", "aldp", "--n", "4", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(
            !o.status.success() && (err.contains("choose another") || err.contains("is a file")),
            "{err}"
        );
    }
    assert_eq!(
        std::fs::read_dir(&md).unwrap().count(),
        1,
        "nothing written"
    );
    assert_eq!(std::fs::read(md.join("frames.npy")).unwrap(), b"frames");
}

/// Four first-time users at once unpack the shipped weights into one (fresh) temporary directory
/// without tearing each other's files.
#[test]
fn concurrent_first_use_of_the_shipped_weights() {
    let fresh = tmp("fresh-tmpdir");
    std::fs::create_dir_all(&fresh).unwrap();
    let children: Vec<_> = (0..4)
        .map(|k| {
            bgen()
                .env("TMPDIR", &fresh)
                .args([
                    "sample", "--system", "aldp", "--method", "snis", "--n", "8", "--out",
                ])
                .arg(fresh.join(format!("out{k}")))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    std::fs::remove_dir_all(fresh).unwrap();
}

/// Quality regression: the shipped aldp model's seeded SNIS (5,000 samples, seconds) puts every
/// Ramachandran basin within 0.03 of the shipped replica-exchange reference
/// (`models/reference/aldp-300K-remd.npy`; measured 2026-12-03: beta 0.582 / 0.578, alphaR
/// 0.403 / 0.399, alphaL 0.014 / 0.024) and keeps an ESS near its 0.10. A change to the energy,
/// the flow or the weights that moves a basin or halves the ESS fails here.
#[test]
fn shipped_aldp_snis_recovers_the_reference_basins() {
    use bgen_system::energy::bonded::dihedral;
    let out = tmp("quality");
    let s: serde_json::Value = serde_json::from_str(&ok(bgen()
        .args([
            "sample", "--system", "aldp", "--method", "snis", "--n", "5000", "--seed", "0",
        ])
        .args(["--threads", "2", "--out"])
        .arg(&out)
        .output()
        .unwrap()))
    .unwrap();
    let ess = s["ess"].as_f64().unwrap();
    assert!(ess > 0.07, "ESS {ess}");
    let sys = bgen_system::System::named("aldp", None, None).unwrap();
    let bb = sys.topology.backbone_dihedrals();
    let (phi, psi) = (bb[0].atoms, bb[1].atoms);
    let d = 3 * sys.n_atoms();
    // beta, alphaR, alphaL populations of conformations `x` with weights `w`
    let basins = |x: &[f64], w: &[f64]| {
        let mut p = [0.0; 3];
        for (c, wc) in x.chunks(d).zip(w) {
            let (f, y) = (dihedral(c, phi).to_degrees(), dihedral(c, psi).to_degrees());
            let k = if f >= 0.0 {
                2
            } else if !(-150.0..50.0).contains(&y) {
                0
            } else {
                1
            };
            p[k] += wc;
        }
        let total: f64 = p.iter().sum();
        p.map(|v| v / total)
    };
    let x = read_npy(&out.join("samples.npy")).unwrap().data;
    let lw = read_npy(&out.join("log_weights.npy")).unwrap().data;
    let top = lw.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = lw.iter().map(|v| (v - top).exp()).collect();
    let got = basins(&x, &w);
    let reference = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/reference/aldp-300K-remd.npy"
    );
    let r = read_npy(std::path::Path::new(reference)).unwrap().data;
    let want = basins(&r, &vec![1.0; r.len() / d]);
    for (k, name) in ["beta", "alphaR", "alphaL"].iter().enumerate() {
        assert!(
            (got[k] - want[k]).abs() < 0.03,
            "{name}: SNIS {:.3}, reference {:.3}",
            got[k],
            want[k]
        );
    }
    std::fs::remove_dir_all(&out).unwrap();
}
