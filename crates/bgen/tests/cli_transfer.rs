//! The transferable model from the command line: MD of a few toy peptides, merged and split by
//! sequence, a tiny transferable TarFlow trained on them for a few steps (and resumed), and
//! zero-shot SNIS and SMC of the held-out peptide, evaluated against its MD.

use std::path::PathBuf;

mod common;
use common::{bgen, fails};

fn tmp(name: &str) -> PathBuf {
    common::scratch_dir(name)
}

/// The stderr (the status lines) of a bgen run that must succeed.
fn ok(o: std::process::Output) -> String {
    common::ok(o).stderr
}

/// Short MD of `sequences` into `dir/md`, merged into `dir/data` with `held_out` left out.
fn toy_data(dir: &std::path::Path, sequences: &str, ns: &str, held_out: &str) {
    ok(bgen()
        .args(["md", "--sequences", sequences, "--ns", ns])
        .args(["--save-every-ps", "0.5", "--equilibrate-ps", "0", "--out"])
        .arg(dir.join("md"))
        .output()
        .unwrap());
    ok(bgen()
        .args(["dataset", "merge", "--held-out", held_out, "--run"])
        .arg(dir.join("md"))
        .arg("--out")
        .arg(dir.join("data"))
        .output()
        .unwrap());
}

/// SNIS of 16 draws of `sequence` from the transferable model in `run`, into `out`.
fn snis16(run: &std::path::Path, sequence: &str, out: &std::path::Path) -> std::process::Output {
    bgen()
        .args([
            "sample",
            "--method",
            "snis",
            "--n",
            "16",
            "--sequence",
            sequence,
        ])
        .arg("--run")
        .arg(run)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

/// A sampler's `summary.json` in `out`.
fn summary(out: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn a_tiny_transferable_model_trains_on_toy_peptides() {
    let dir = tmp("toy");
    toy_data(&dir, "AA,GG,AG,GA", "0.01", "GA");
    let train = |steps: &str, extra: &[&str]| {
        bgen()
            .args([
                "train",
                "--preset",
                "tiny",
                "--steps",
                steps,
                "--checkpoint-secs",
                "0",
            ])
            .args(extra)
            .arg("--data")
            .arg(dir.join("data"))
            .arg("--out")
            .arg(dir.join("run"))
            .output()
            .unwrap()
    };
    let log = ok(train("4", &[]));
    assert!(
        log.contains("3 molecules") && log.contains("validation NLL"),
        "{log}"
    );
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run/run.json")).unwrap()).unwrap();
    assert_eq!(run["system"], "transferable");
    assert_eq!(run["coords"], "internal");
    // The checkpoint records what the model was trained on, and the per-class standards.
    let latest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run/latest.json")).unwrap())
            .unwrap();
    let ckpt = dir
        .join("run")
        .join(latest["checkpoint"].as_str().unwrap_or("ckpt-00000004"));
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ckpt.join("state.json")).unwrap()).unwrap();
    let seen: Vec<&str> = state["transfer"]["trained_on"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(seen, ["AA", "GG", "AG"]);
    assert!(
        state["transfer"]["standards"]["classes"]
            .as_object()
            .unwrap()
            .len()
            > 20
    );
    assert_eq!(state["step"], 4);
    oversampled_molecules_are_drawn_more(&dir);
    // A resume continues the run as it was set up; other settings are refused, by name.
    ok(train("4", &["--resume"]));
    fails(train("6", &["--resume"]), "--steps 6 (the run has 4)");
    // Resumed on data merged with another split, it would train on its held-out GA unrecorded
    // (and call GA zero-shot): refused, naming the molecules.
    ok(bgen()
        .args(["dataset", "merge", "--held-out", "AG", "--run"])
        .arg(dir.join("md"))
        .arg("--out")
        .arg(dir.join("data2"))
        .output()
        .unwrap());
    let o = bgen()
        .args(["train", "--resume", "--preset", "tiny", "--steps", "4"])
        .args(["--checkpoint-secs", "0", "--data"])
        .arg(dir.join("data2"))
        .arg("--out")
        .arg(dir.join("run"))
        .output()
        .unwrap();
    fails(o, "new: GA; missing: AG");
    // The same names over other frames (the data set removed and merged again from another
    // run: here its record of the source changed in place) are refused as well.
    let path = dir.join("data").join("dataset.json");
    let original = std::fs::read_to_string(&path).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&original).unwrap();
    v["source"] = serde_json::json!("/elsewhere/md");
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let o = train("4", &["--resume"]);
    fails(o, "merged again since");
    std::fs::write(&path, original).unwrap();
    ok(train("4", &["--resume"]));
    // The other family: a transferable ArBG trains on the same molecules and samples the one
    // it never saw (SNIS: its draws and their log q agree, or the weights would not be finite).
    let log = ok(bgen()
        .args([
            "train", "--model", "arbg", "--preset", "tiny", "--bins", "32",
        ])
        .args(["--steps", "2", "--checkpoint-secs", "0", "--data"])
        .arg(dir.join("data"))
        .arg("--out")
        .arg(dir.join("run-arbg"))
        .output()
        .unwrap());
    assert!(
        log.contains("transferable ArBG") && log.contains("3 molecules"),
        "{log}"
    );
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run-arbg/run.json")).unwrap())
            .unwrap();
    assert_eq!(run["model"], "arbg");
    ok(snis16(&dir.join("run-arbg"), "GA", &dir.join("ga-arbg")));
    let s = summary(&dir.join("ga-arbg"));
    assert_eq!(s["seen_in_training"], false, "{s}");
    let ess = s["ess"].as_f64().unwrap();
    assert!(ess > 0.0 && ess <= 1.0, "{s}");
    // A fine-tune adds the whole-sequence label to an ArBG as to a TarFlow, and it samples.
    ok(bgen()
        .arg("train")
        .arg("--init")
        .arg(dir.join("run-arbg"))
        .args(["--sequence-label", "--steps", "2", "--checkpoint-secs", "0"])
        .arg("--data")
        .arg(dir.join("data"))
        .arg("--out")
        .arg(dir.join("run-arbg-seq"))
        .output()
        .unwrap());
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("run-arbg-seq/ckpt-00000002/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["model"]["conditioning"]["sequence"], true, "{state}");
    ok(snis16(
        &dir.join("run-arbg-seq"),
        "GA",
        &dir.join("ga-arbg-seq"),
    ));
    // Training by energy needs the flow's differentiable inverse over many molecules: an ArBG
    // and one molecule's model are refused, by name, before any training.
    let by_energy = |model: &str, data: PathBuf, out: &str| {
        bgen()
            .args([
                "train", "--model", model, "--preset", "tiny", "--steps", "2",
            ])
            .args(["--kl-weight", "0.1", "--checkpoint-secs", "0", "--data"])
            .arg(data)
            .arg("--out")
            .arg(dir.join(out))
            .output()
            .unwrap()
    };
    fails(
        by_energy("arbg", dir.join("data"), "run-arbg-kl"),
        "an ArBG's draws are not differentiable",
    );
    let one = dir.join("md").join("shards").join("AA");
    assert!(one.join("frames.npy").exists(), "one molecule's MD run");
    fails(
        by_energy("tarflow", one, "run-one-kl"),
        "--kl-weight: for a transferable TarFlow",
    );
    // Resample-move needs no gradient of the model (its moves are on the target alone).
    ok(bgen()
        .args([
            "sample",
            "--method",
            "resample-move",
            "--n",
            "8",
            "--final-rounds",
            "2",
        ])
        .args(["--sequence", "GA", "--run"])
        .arg(dir.join("run-arbg"))
        .arg("--out")
        .arg(dir.join("ga-arbg-rm"))
        .output()
        .unwrap());
}

/// `--oversample`: a listed molecule's frames are drawn as often per epoch as the file says
/// (every molecule has as many frames, so AA x3 makes an epoch 5/3 of the frames), recorded and
/// kept by a resume (the same file accepted, another refused), not inherited by a fine-tune; a
/// bad file and one molecule's run are refused. Also: a run.json that contradicts its
/// checkpoint is refused when sampled and when resumed.
fn oversampled_molecules_are_drawn_more(dir: &std::path::Path) {
    let file = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let train = |data: PathBuf, out: &str, over: &PathBuf, extra: &[&str]| {
        bgen()
            .args(["train", "--preset", "tiny", "--steps", "2"])
            .args(["--checkpoint-secs", "0"])
            .args(extra)
            .arg("--oversample")
            .arg(over)
            .arg("--data")
            .arg(data)
            .arg("--out")
            .arg(dir.join(out))
            .output()
            .unwrap()
    };
    let good = file(
        "over.txt",
        "# the worst fitted\nAA 3\n\nGG 1  # once, as unlisted\n",
    );
    let log = ok(train(dir.join("data"), "run-over", &good, &[]));
    let number_before = |log: &str, key: &str| -> usize {
        let at = log.find(key).unwrap_or_else(|| panic!("{key}: {log}"));
        let words: Vec<&str> = log[..at].split_whitespace().collect();
        words.last().unwrap().parse().unwrap()
    };
    let (frames, drawn) = (
        number_before(&log, " training"),
        number_before(&log, " of them"),
    );
    assert_eq!(3 * drawn, 5 * frames, "{log}");
    let state = |run: &str, step: &str| -> serde_json::Value {
        let p = dir
            .join(run)
            .join(format!("ckpt-{step}"))
            .join("state.json");
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let drawn_in = |run: &str, step: &str| state(run, step)["transfer"]["oversample"].clone();
    assert_eq!(
        drawn_in("run-over", "00000002"),
        serde_json::json!({"AA": 3, "GG": 1})
    );
    // A resume without the file, or with the same draws, keeps the run's; another is refused.
    let resume = |steps: &str, extra: &[&str]| {
        let mut c = bgen();
        c.args([
            "train",
            "--resume",
            "--checkpoint-secs",
            "0",
            "--steps",
            steps,
        ]);
        c.args(extra).arg("--data").arg(dir.join("data"));
        c.arg("--out").arg(dir.join("run-over")).output().unwrap()
    };
    let log = ok(resume("2", &[]));
    assert!(log.contains("of them: --oversample"), "{log}");
    let same = file("same.txt", "GG 1\nAA 3\n");
    ok(resume("2", &["--oversample", same.to_str().unwrap()]));
    let other = file("over2.txt", "AA 2\n");
    let err = fails(
        resume("2", &["--oversample", other.to_str().unwrap()]),
        "lists other draws (AA 2) than the run's (AA 3, GG 1)",
    );
    assert!(err.contains("--init"), "{err}");
    // A fine-tune takes its own draws (none here), not its --init run's.
    ok(bgen()
        .args(["train", "--steps", "2", "--checkpoint-secs", "0", "--init"])
        .arg(dir.join("run-over"))
        .arg("--data")
        .arg(dir.join("data"))
        .arg("--out")
        .arg(dir.join("run-over-ft"))
        .output()
        .unwrap());
    assert_eq!(drawn_in("run-over-ft", "00000002"), serde_json::Value::Null);
    // A fine-tune can grow the flow's blocks (tiny: 2 -> 3), and the grown model samples; a new
    // model takes its blocks from its preset.
    let grow = |init: bool, out: &str| {
        let mut c = bgen();
        c.args([
            "train",
            "--steps",
            "2",
            "--checkpoint-secs",
            "0",
            "--grow-blocks",
            "3",
        ]);
        if init {
            c.arg("--init").arg(dir.join("run-over"));
        } else {
            c.args(["--preset", "tiny"]);
        }
        c.arg("--data").arg(dir.join("data"));
        c.arg("--out").arg(dir.join(out)).output().unwrap()
    };
    let log = ok(grow(true, "run-grown"));
    assert!(log.contains("3 blocks"), "{log}");
    ok(snis16(&dir.join("run-grown"), "GA", &dir.join("ga-grown")));
    fails(
        grow(false, "run-grown-new"),
        "--grow-blocks: for a fine-tune",
    );
    // Bad files name the file, the line and the problem.
    for (text, says) in [
        ("GA 3\n", "GA is not a training molecule"),
        ("AA 0\n", "not a whole number from 1 to 100"),
        ("AA\n", "expected NAME DRAWS"),
        ("AA 2\nAA 3\n", "AA is listed twice"),
    ] {
        let bad = file("bad.txt", text);
        let err = fails(train(dir.join("data"), "run-bad", &bad, &[]), says);
        assert!(err.contains("bad.txt line"), "{err}");
    }
    assert!(
        !dir.join("run-bad").exists(),
        "a bad file is refused before the run starts"
    );
    // One molecule's run has nothing to weigh.
    let one = dir.join("md").join("shards").join("AA");
    fails(
        train(one, "run-one", &good, &[]),
        "--oversample: for a transferable model",
    );
    // A run.json edited to another temperature than the model's is refused when sampled and
    // when resumed, naming it.
    let record = dir.join("run-over-ft").join("run.json");
    let text = std::fs::read_to_string(&record).unwrap();
    std::fs::write(&record, text.replace("310.0", "350.0")).unwrap();
    for o in [
        snis16(&dir.join("run-over-ft"), "GA", &dir.join("ga-edited")),
        bgen()
            .args(["train", "--resume", "--checkpoint-secs", "0", "--data"])
            .arg(dir.join("data"))
            .arg("--out")
            .arg(dir.join("run-over-ft"))
            .output()
            .unwrap(),
    ] {
        let err = fails(o, "temperature_k 350 (the model's is 310)");
        assert!(err.contains("run-over-ft/run.json"), "{err}");
    }
}

/// MD too short to split (one frame per molecule: it validates, and nothing trains) is refused
/// with what to do, before any training.
#[test]
fn md_too_short_to_train_on_is_refused() {
    let dir = tmp("short");
    toy_data(&dir, "AA,GG", "0.0005", "GG");
    let o = bgen()
        .args(["train", "--preset", "tiny", "--steps", "2", "--data"])
        .arg(dir.join("data"))
        .arg("--out")
        .arg(dir.join("run"))
        .output()
        .unwrap();
    fails(o, "no training frames");
}

/// A built His-X PDB made HIP: an HE2 on NE2, 0.101 nm out along the ring's bisector.
fn with_he2(pdb: &str) -> String {
    let at = |name: &str| -> [f64; 3] {
        let l = pdb
            .lines()
            .find(|l| l.starts_with("ATOM") && l[12..16].trim() == name && &l[17..20] == "HIS")
            .unwrap();
        [30, 38, 46].map(|c| l[c..c + 8].trim().parse::<f64>().unwrap())
    };
    let (ne2, ce1, cd2) = (at("NE2"), at("CE1"), at("CD2"));
    let out: [f64; 3] = std::array::from_fn(|k| ne2[k] - 0.5 * (ce1[k] + cd2[k]));
    let norm = out.iter().map(|v| v * v).sum::<f64>().sqrt();
    let h: [f64; 3] = std::array::from_fn(|k| ne2[k] + 1.01 * out[k] / norm);
    let line = format!(
        "ATOM     99  HE2 HIS A   1    {:8.3}{:8.3}{:8.3}  1.00  0.00           H",
        h[0], h[1], h[2]
    );
    let mut lines: Vec<String> = pdb.lines().map(String::from).collect();
    let i = lines
        .iter()
        .position(|l| l.starts_with("ATOM") && l[12..16].trim() == "NE2")
        .unwrap();
    lines.insert(i + 1, line);
    lines.join("\n") + "\n"
}

/// The shipped transferable dipeptide model (`--system dipeptides`): zero-shot on a dipeptide
/// held out of its training (Ala-Asp, from its sequence and from a built PDB), and it knows a
/// training dipeptide (Ala-Ala) as seen; without a molecule it says what to give.
#[test]
fn the_shipped_dipeptide_model_samples_a_dipeptide_it_never_saw() {
    let dir = tmp("shipped");
    let pdb = dir.join("ad.pdb");
    ok(bgen()
        .args(["build", "--sequence", "AD", "--out"])
        .arg(&pdb)
        .output()
        .unwrap());
    let sample = |molecule: &[&str], out: &str| {
        let o = bgen()
            .args(["sample", "--system", "dipeptides", "--method", "snis"])
            .args(["--n", "32", "--out"])
            .arg(dir.join(out))
            .args(molecule)
            .output()
            .unwrap();
        let log = ok(o);
        let summary: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(out).join("summary.json")).unwrap(),
        )
        .unwrap();
        (log, summary)
    };
    let (log, s) = sample(&["--pdb", pdb.to_str().unwrap()], "ad");
    assert!(log.contains("zero-shot"), "{log}");
    assert_eq!(s["seen_in_training"], false);
    let ess = s["ess"].as_f64().unwrap();
    assert!(ess > 0.0 && ess <= 1.0, "{s}");
    let (_, s) = sample(&["--sequence", "AA"], "aa");
    assert_eq!(s["seen_in_training"], true);
    // Seen means this very molecule: the capped Ace-Ala-Ala-Nme never reached training (the
    // model knew only zwitterions), whatever the one-letter sequence says.
    let (log, s) = sample(&["--sequence", "AA", "--caps", "ace-nme"], "aa-capped");
    assert_eq!(s["seen_in_training"], false, "{log}");
    assert_eq!(s["identity"], "ace-AA-nme");
    // Nor is His-Ala with a doubly protonated His (HIP): the training molecules were built with
    // HID, and HIP's residue label was never learned.
    let (_, s) = sample(&["--sequence", "HA"], "ha");
    assert_eq!(s["seen_in_training"], true);
    let hip = dir.join("hip-a.pdb");
    ok(bgen()
        .args(["build", "--sequence", "HA", "--out"])
        .arg(&hip)
        .output()
        .unwrap());
    std::fs::write(&hip, with_he2(&std::fs::read_to_string(&hip).unwrap())).unwrap();
    let (log, s) = sample(&["--pdb", hip.to_str().unwrap()], "hip-a");
    assert_eq!(s["seen_in_training"], false, "{log}");
    assert!(log.contains("is NHIP") && log.contains("NHID"), "{log}");
    // Ala-D-Ala (residue 2's HA and CB swapped): refused by name, not sampled as Ala-Ala.
    let ld = dir.join("ala-dala.pdb");
    ok(bgen()
        .args(["build", "--sequence", "AA", "--out"])
        .arg(&ld)
        .output()
        .unwrap());
    let text = std::fs::read_to_string(&ld).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let find = |lines: &[String], name: &str| {
        lines
            .iter()
            .position(|l| {
                l.starts_with("ATOM") && l[12..16].trim() == name && l[22..26].trim() == "2"
            })
            .unwrap()
    };
    let (ha, cb) = (find(&lines, "HA"), find(&lines, "CB"));
    let (xa, xb) = (lines[ha][30..54].to_string(), lines[cb][30..54].to_string());
    lines[ha].replace_range(30..54, &xb);
    lines[cb].replace_range(30..54, &xa);
    std::fs::write(&ld, lines.join("\n") + "\n").unwrap();
    let o = bgen()
        .args(["sample", "--system", "dipeptides", "--n", "8", "--pdb"])
        .arg(&ld)
        .arg("--out")
        .arg(dir.join("ala-dala"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("D-amino acid at ALA 2") && err.contains("both hands"),
        "{err}"
    );
    assert_eq!(
        (s["forcefield"].as_str(), s["temperature_k"].as_f64()),
        (Some("amber14-obc1"), Some(310.0))
    );
    // With no method a transferable TarFlow resamples SNIS's draws and moves them on the target:
    // the model draws each particle once and is asked nothing more.
    ok(bgen()
        .args([
            "sample",
            "--system",
            "dipeptides",
            "--n",
            "64",
            "--final-rounds",
            "2",
        ])
        .args(["--pdb", pdb.to_str().unwrap(), "--out"])
        .arg(dir.join("default"))
        .output()
        .unwrap());
    let s: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("default").join("summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(s["method"], "resample-move", "{s}");
    // It weights 2.5 draws per sample kept: 160 for 64.
    assert_eq!(
        (s["levels"].as_u64(), s["model_evaluations"].as_u64()),
        (Some(1), Some(160))
    );
    let kept = bgen_system::npy::read_npy(&dir.join("default").join("samples.npy")).unwrap();
    assert_eq!(kept.shape[0], 64);
    assert!(s["final_acceptance"].as_f64().unwrap() > 0.0, "{s}");
    // Its final rounds are HMC trajectories of 10 leapfrog steps of the 64 kept, one target
    // gradient a step, after the draws' energies and the level's 3 Langevin moves.
    assert_eq!(s["leapfrog"].as_u64(), Some(10), "{s}");
    // The weights' tail is reported beside their ESS (a shape, finite).
    assert!(s["pareto_k"].as_f64().is_some_and(f64::is_finite), "{s}");
    assert_eq!(
        s["energy_evaluations"].as_u64(),
        Some(160 * (1 + 3) + 64 * 2 * 10),
        "{s}"
    );
    // It weights and moves on the target in mixed precision (the written energies are
    // recomputed in double).
    assert_eq!(s["precision"], "mixed", "{s}");
    // Fewer draws than samples kept, or draws for a method that keeps what it draws: refused.
    for (extra, says) in [
        (
            ["--method", "resample-move"],
            "--draws 32 is fewer than the 64 samples",
        ),
        (["--method", "snis"], "--draws is resample-move's"),
    ] {
        let o = bgen()
            .args(["sample", "--system", "dipeptides", "--n", "64"])
            .args(extra)
            .args(["--draws", "32", "--pdb", pdb.to_str().unwrap(), "--out"])
            .arg(dir.join("draws"))
            .output()
            .unwrap();
        fails(o, says);
    }
    // Final rounds (and the precision of their moves) mean nothing to SNIS or twisted SMC:
    // refused, not silently dropped.
    for (method, flags) in [
        ("snis", vec!["--leapfrog", "4", "--keep-weights"]),
        (
            "twisted",
            vec!["--final-rounds", "2", "--precision", "double"],
        ),
    ] {
        let o = bgen()
            .args([
                "sample",
                "--system",
                "dipeptides",
                "--n",
                "8",
                "--method",
                method,
            ])
            .args(&flags)
            .args(["--pdb", pdb.to_str().unwrap(), "--out"])
            .arg(dir.join("final-refused"))
            .output()
            .unwrap();
        let err = fails(o, &format!("--method {method} has no final rounds"));
        let named = flags.iter().filter(|f| f.starts_with("--"));
        assert!(named.clone().all(|f| err.contains(f)), "{err}");
    }
    // Annealing settings mean nothing to resample-move: refused, not silently dropped.
    let o = bgen()
        .args([
            "sample",
            "--system",
            "dipeptides",
            "--n",
            "8",
            "--independence",
            "3",
        ])
        .args(["--pdb", pdb.to_str().unwrap(), "--out"])
        .arg(dir.join("annealed"))
        .output()
        .unwrap();
    fails(o, "--independence set the annealing of --method smc");
    let o = bgen()
        .args(["sample", "--system", "dipeptides", "--out"])
        .arg(dir.join("none"))
        .output()
        .unwrap();
    fails(o, "--pdb");
    // A peptide longer than those it trained on, a single-molecule model given a molecule, and
    // caps beside a PDB (which has its own ends) are refused with what is wrong.
    let o = bgen()
        .args([
            "sample",
            "--system",
            "dipeptides",
            "--caps",
            "ace-nme",
            "--pdb",
            "x.pdb",
        ])
        .arg("--out")
        .arg(dir.join("caps"))
        .output()
        .unwrap();
    fails(o, "'--caps <CAPS>' cannot be used with '--pdb");
    for (system, seq, says) in [
        (
            "dipeptides",
            "WWWW",
            "trained on peptides of 2 residues; <sequence WWWW> has 4",
        ),
        ("aldp", "AA", "not a transferable model"),
        (
            "dipeptides",
            "AAA",
            "trained on peptides of 2 residues; <sequence AAA> has 3",
        ),
    ] {
        let o = bgen()
            .args(["sample", "--system", system, "--sequence", seq, "--out"])
            .arg(dir.join("refused"))
            .output()
            .unwrap();
        fails(o, says);
    }
    // Fine-tuned on Ala-Asp's own (short) MD from the shipped weights, it has seen Ala-Asp.
    let md = |ns: &str, extra: &[&str], out: &str| {
        ok(bgen()
            .args([
                "md",
                "--ns",
                ns,
                "--save-every-ps",
                "0.5",
                "--equilibrate-ps",
                "0",
            ])
            .args(extra)
            .arg("--pdb")
            .arg(&pdb)
            .arg("--out")
            .arg(dir.join(out))
            .output()
            .unwrap())
    };
    let fine_tune = |data: &str, out: &str| {
        bgen()
            .args([
                "train",
                "--init",
                "dipeptides",
                "--steps",
                "2",
                "--batch-size",
                "8",
            ])
            .args(["--checkpoint-secs", "0", "--data"])
            .arg(dir.join(data))
            .arg("--out")
            .arg(dir.join(out))
            .output()
            .unwrap()
    };
    md("0.004", &[], "ad-md");
    let log = ok(fine_tune("ad-md", "ft"));
    assert!(log.contains("(dipeptides)"), "{log}");
    // A replica-exchange run's raised rungs, each labelled with its temperature: the fine-tune
    // adds the label to the shipped model; a run started without it cannot resume with it.
    md("0.002", &["--temperatures", "310,380"], "ad-remd");
    let labelled = |extra: &[&str], out: &str| {
        let mut c = bgen();
        c.args(["train", "--raised-rungs", "1", "--temperature-label"]);
        c.args([
            "--steps",
            "2",
            "--batch-size",
            "8",
            "--checkpoint-secs",
            "0",
        ]);
        c.args(extra).arg("--data").arg(dir.join("ad-remd"));
        c.arg("--out").arg(dir.join(out)).output().unwrap()
    };
    // It adds the whole-sequence label too (zero at first, like the temperature's).
    let log = ok(labelled(
        &["--init", "dipeptides", "--sequence-label"],
        "ft-t",
    ));
    // The last of 4 times validates at 310 K, and its 380 K frame (tied to it by exchanges)
    // does not train.
    assert!(
        log.contains("6 training / 1 validation"),
        "3 at 310 K + 3 at 380 K: {log}"
    );
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("ft-t/ckpt-00000002/state.json")).unwrap(),
    )
    .unwrap();
    let conditioning = &state["model"]["conditioning"];
    assert_eq!(conditioning["temperature"], true, "{conditioning}");
    assert_eq!(conditioning["sequence"], true, "{conditioning}");
    // A run started without a label cannot resume with it (the shipped model has the
    // temperature's, so its plain fine-tune lacks only the sequence's).
    let o = bgen()
        .args([
            "train",
            "--resume",
            "--sequence-label",
            "--checkpoint-secs",
            "0",
        ])
        .arg("--data")
        .arg(dir.join("ad-md"))
        .arg("--out")
        .arg(dir.join("ft"))
        .output()
        .unwrap();
    let err = fails(o, "was started without it");
    assert!(err.contains("--sequence-label"), "{err}");
    // A resume keeps the run's raised rungs when not told them (it trained at 310 K alone
    // before), and refuses others.
    let resume = |data: &str, out: &str, extra: &[&str]| {
        let mut c = bgen();
        c.args(["train", "--resume", "--batch-size", "8"]);
        c.args(["--checkpoint-secs", "0"]).args(extra);
        c.arg("--data").arg(dir.join(data));
        c.arg("--out").arg(dir.join(out)).output().unwrap()
    };
    let log = ok(resume("ad-remd", "ft-t", &[]));
    assert!(log.contains("6 training"), "the run's raised rung: {log}");
    fails(
        resume("ad-remd", "ft-t", &["--raised-rungs", "2"]),
        "--raised-rungs 2 (the run has 1)",
    );
    // A fine-tune on one molecule's MD resumes as a transferable run (it was taken for a
    // single-molecule one: "frames have 25 atoms, the run's model 59").
    let log = ok(resume("ad-md", "ft", &[]));
    assert!(log.contains("1 molecules"), "{log}");
    // MD in another force field: its atom types are not the model's, refused before training.
    md(
        "0.002",
        &["--forcefield", "amber99sbildn-obc2"],
        "ad-md-obc2",
    );
    let err = fails(
        fine_tune("ad-md-obc2", "ft-obc2"),
        "a model of amber14-obc1",
    );
    assert!(err.contains("amber99sbildn-obc2"), "{err}");
    // MD at another temperature: the model's standards and weights are of its own ensemble.
    md("0.002", &["--temperature", "300"], "ad-md-300");
    fails(fine_tune("ad-md-300", "ft-300"), "a model of 310 K");
    // Samples are scored only as the molecule, force field and temperature they are of: Ala-Asp's
    // samples as Asp-Ala (the same atoms), or at 300 K, are refused even against a bare .npy
    // reference that carries no identity of its own.
    let da = dir.join("da.pdb");
    ok(bgen()
        .args(["build", "--sequence", "DA", "--out"])
        .arg(&da)
        .output()
        .unwrap());
    let frames = dir.join("ad-md").join("frames.npy");
    for (pdb_of, extra, says) in [
        (&da, vec![], "samples of AD, but scored as DA"),
        (
            &pdb,
            vec!["--temperature", "300"],
            "samples at 310 K, but the samples are scored at 300 K",
        ),
    ] {
        let o = bgen()
            .arg("eval")
            .arg("--pdb")
            .arg(pdb_of)
            .args(extra)
            .arg("--samples")
            .arg(dir.join("ad"))
            .arg("--reference")
            .arg(&frames)
            .arg("--out")
            .arg(dir.join("ev-refused"))
            .output()
            .unwrap();
        fails(o, says);
    }
    // Both fine-tunes sample: the unlabelled one and the temperature- and sequence-labelled one.
    for (run, out) in [("ft", "ft-ad"), ("ft-t", "ft-t-ad")] {
        let o = bgen()
            .args(["sample", "--method", "snis", "--n", "8", "--run"])
            .arg(dir.join(run))
            .arg("--pdb")
            .arg(&pdb)
            .arg("--out")
            .arg(dir.join(out))
            .output()
            .unwrap();
        ok(o);
    }
    let s: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("ft-ad").join("summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(s["seen_in_training"], true);
}

/// Peptides of 2, 3 and 4 residues train one model, which samples a tetrapeptide it never saw
/// (its atoms and residues placed as its own: 37 atoms, finite weights); a peptide larger than
/// the model was made for is refused by name.
#[test]
fn one_model_takes_peptides_of_several_lengths() {
    let dir = tmp("lengths");
    toy_data(&dir, "AA,GAG,AGAA,GAGA", "0.005", "GAGA");
    let log = ok(bgen()
        .args(["train", "--preset", "tiny", "--steps", "2"])
        .args(["--checkpoint-secs", "0", "--data"])
        .arg(dir.join("data"))
        .arg("--out")
        .arg(dir.join("run"))
        .output()
        .unwrap());
    assert!(log.contains("3 molecules"), "{log}");
    let sample = |sequence: &str| snis16(&dir.join("run"), sequence, &dir.join(sequence));
    ok(sample("GAGA"));
    let s = summary(&dir.join("GAGA"));
    assert_eq!(s["seen_in_training"], false, "{s}");
    let ess = s["ess"].as_f64().unwrap();
    assert!(ess > 0.0 && ess <= 1.0, "{s}");
    let x = bgen_system::npy::read_npy(&dir.join("GAGA").join("samples.npy")).unwrap();
    assert_eq!(x.shape, [16, 37, 3]);
    assert!(x.data.iter().all(|v| v.is_finite()));
    // Trp4 has 99 atoms; the model was made for AGAA's 40 and a few more.
    fails(sample("WWWW"), "99 atoms, the model takes at most");
    // Ala5 is longer than any peptide it trained on: said so before its atoms are counted.
    fails(sample("AAAAA"), "trained on peptides of 2, 3, 4 residues");
}
