//! `bgen md` and `bgen dataset split` from the command line: a run killed with SIGKILL and
//! resumed keeps every frame once and equals an uninterrupted run.

use bgen_system::npy::read_npy;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{bgen, fails};

fn tmp(name: &str) -> PathBuf {
    common::scratch(name)
}

const MD: [&str; 14] = [
    "md",
    "--system",
    "aldp",
    "--ns",
    "0.3",
    "--replicas",
    "2",
    "--seed",
    "7",
    "--save-every-ps",
    "0.5",
    "--equilibrate-ps",
    "1",
    "--checkpoint-secs",
];

fn run_md(out: &Path, extra: &[&str]) -> std::process::Output {
    bgen()
        .args(MD)
        .arg("0")
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn killed_md_run_resumes_and_keeps_every_frame_once() {
    let (a, b) = (tmp("full"), tmp("killed"));
    let o = run_md(&a, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let mut child = bgen()
        .args(MD)
        .arg("0")
        .arg("--out")
        .arg(&b)
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !b.join("chunks/00003.frames.npy").exists() {
        assert!(t0.elapsed() < Duration::from_secs(120), "no chunk written");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!b.join("frames.npy").exists(), "killed before the end");

    // Settings that contradict the run are refused; then it resumes.
    // (Given alone: with the run's own options beside it, clap refused the repeated --seed
    // before bgen could.)
    let o = bgen()
        .args(["md", "--resume", "--seed", "8", "--out"])
        .arg(&b)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--seed differs from the run"), "{err}");
    let o = bgen()
        .args(["md", "--resume", "--out"])
        .arg(&b)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    for f in ["frames.npy", "energies.npy", "replica.npy", "time_ps.npy"] {
        let (x, y) = (
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
        );
        assert!(x == y, "{f} differs after kill + resume");
    }
    let frames = read_npy(&b.join("frames.npy")).unwrap();
    assert_eq!(frames.shape, vec![2 * 600, 22, 3]);
    let t = read_npy(&b.join("time_ps.npy")).unwrap().data;
    assert_eq!(&t[..3], &[0.5, 1.0, 1.5]);
    assert_eq!(t[599], 300.0);

    // Starting again in a used directory is refused.
    let o = run_md(&a, &[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--resume"));

    // Split by time: 80/10/10 of each replica, consecutive blocks.
    let s = tmp("split");
    let o = bgen()
        .args(["dataset", "split", "--run"])
        .arg(&a)
        .arg("--out")
        .arg(&s)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let n = |set: &str| read_npy(&s.join(set).join("frames.npy")).unwrap().shape[0];
    assert_eq!((n("train"), n("val"), n("test")), (960, 120, 120));
    assert!(s.join("train/topology.pdb").exists() && s.join("split.json").exists());
    // DCD export: one trajectory per replica, positions to float32 precision.
    let x = tmp("dcd");
    let o = bgen()
        .args(["dataset", "export", "--run"])
        .arg(&a)
        .arg("--out")
        .arg(&x)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (n_atoms, dcd) = bgen_md::dcd::read_dcd(&x.join("replica_001.dcd")).unwrap();
    let npy = read_npy(&a.join("frames.npy")).unwrap().data;
    assert_eq!((n_atoms, dcd.len()), (22, 600 * 66));
    let worst = dcd
        .iter()
        .zip(&npy[600 * 66..])
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-6, "{worst}");
    assert!(x.join("topology.pdb").exists());
    // XTC export, and the XTC read back as a data set: positions to 1/1000 nm, times kept.
    let xt = tmp("xtc");
    let o = bgen()
        .args(["dataset", "export", "--format", "xtc", "--run"])
        .arg(&a)
        .arg("--out")
        .arg(&xt)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let traj = xt.join("replica_001.xtc");
    let back = bgen_md::dataset::load(&traj).unwrap();
    assert_eq!((back.n_atoms, back.len()), (22, 600));
    let worst = back
        .x
        .iter()
        .zip(&npy[600 * 66..])
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f64::max);
    assert!(worst <= 5.0e-4 + 1e-6, "{worst}");
    assert!(back.time_ps[1] > back.time_ps[0]);
    let o = bgen()
        .args(["dataset", "split", "--run"])
        .arg(&traj)
        .arg("--out")
        .arg(xt.join("split"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for d in [a, b, s, x, xt] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn md_bad_input_is_reported() {
    let out = tmp("bad");
    let o = bgen()
        .args(["md", "--system", "nope", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown system 'nope'"));
    let o = bgen()
        .args(["md", "--system", "aldp", "--timestep-fs", "0.3", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("whole number"));
    let o = bgen()
        .args(["md", "--resume", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("no run to resume"));
    let _ = std::fs::remove_dir_all(out);
}

/// An output directory that is also the input is refused before anything is written, and two
/// processes never write one directory at once.
#[test]
fn outputs_never_overwrite_inputs_and_one_writer_per_directory() {
    let r = tmp("same");
    let o = run_md(&r, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let run_json = std::fs::read(r.join("run.json")).unwrap();
    for args in [
        vec!["dataset", "split", "--run"],
        vec!["dataset", "export", "--run"],
        vec!["train", "--preset", "tiny", "--steps", "1", "--data"],
    ] {
        let o = bgen()
            .args(&args)
            .arg(&r)
            .arg("--out")
            .arg(r.join("."))
            .output()
            .unwrap();
        assert!(!o.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("would be overwritten"), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read(r.join("run.json")).unwrap(), run_json);
    assert!(std::fs::read(r.join("topology.pdb")).unwrap().len() > 100);

    // A second writer of a running MD directory is refused at once.
    let live = tmp("live");
    let mut first = bgen()
        .args(["md", "--system", "aldp", "--ns", "50", "--out"])
        .arg(&live)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while !live.join("checkpoint.json").exists() {
        assert!(t0.elapsed().as_secs() < 60, "the first run never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = bgen()
        .args(["md", "--resume", "--out"])
        .arg(&live)
        .output()
        .unwrap();
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("another bgen process"), "{err}");
    for d in [r, live] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// `bgen build` makes a peptide that the other stages take as it is: MD of Lys-Trp from its
/// sequence alone.
#[test]
fn a_built_peptide_runs_md() {
    let dir = tmp("build");
    std::fs::create_dir_all(&dir).unwrap();
    let pdb = dir.join("kw.pdb");
    let out = bgen()
        .args(["build", "--sequence", "KW", "--out"])
        .arg(&pdb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bgen()
        .args([
            "md",
            "--ns",
            "0.002",
            "--save-every-ps",
            "0.5",
            "--equilibrate-ps",
            "0",
            "--pdb",
        ])
        .arg(&pdb)
        .arg("--out")
        .arg(dir.join("md"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frames = read_npy(&dir.join("md/frames.npy")).unwrap();
    assert_eq!(frames.shape, vec![4, 49, 3]);
    // amber14-obc1 at 310 K, the transferable models' setting, by default for a PDB.
    let run = std::fs::read_to_string(dir.join("md/run.json")).unwrap();
    assert!(run.contains("amber14-obc1") && run.contains("310"), "{run}");
    // Resumed with another molecule: refused, not quietly continued with the run's own.
    let aa = dir.join("aa.pdb");
    assert!(bgen()
        .args(["build", "--sequence", "AA", "--out"])
        .arg(&aa)
        .output()
        .unwrap()
        .status
        .success());
    let o = bgen()
        .args(["md", "--resume", "--ns", "0.004", "--pdb"])
        .arg(&aa)
        .arg("--out")
        .arg(dir.join("md"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("not the molecule of the run") && err.contains("KW"),
        "{err}"
    );
    assert_eq!(read_npy(&dir.join("md/frames.npy")).unwrap().shape[0], 4);
    // Two atoms on top of each other: refused up front, naming them (minimising NaN energies
    // and blaming the time step was the old answer).
    let text = std::fs::read_to_string(&aa).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let (first, last) = (
        lines.iter().position(|l| l.starts_with("ATOM")).unwrap(),
        lines.iter().rposition(|l| l.starts_with("ATOM")).unwrap(),
    );
    let xyz = lines[first][30..54].to_string();
    lines[last].replace_range(30..54, &xyz);
    let on_top = dir.join("on-top.pdb");
    std::fs::write(&on_top, lines.join("\n") + "\n").unwrap();
    let o = bgen()
        .args(["md", "--ns", "0.002", "--pdb"])
        .arg(&on_top)
        .arg("--out")
        .arg(dir.join("md-on-top"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("on-top.pdb") && err.contains("closest atoms"),
        "{err}"
    );
    assert!(!dir.join("md-on-top/run.json").exists());
    let bad = bgen()
        .args(["build", "--sequence", "KZ", "--out"])
        .arg(dir.join("x.pdb"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("'Z' at position 2"));
}

/// Many peptides: the SLURM array script, run here as two plain processes (two array tasks),
/// fills one directory with a shard per sequence; a stopped shard resumes, a finished one is
/// skipped; `bgen dataset merge` refuses an unfinished run, naming the shard, and splits a
/// finished one by sequence.
#[test]
fn the_slurm_array_runs_shards_and_merge_splits_them_by_sequence() {
    let dir = tmp("shards");
    std::fs::create_dir_all(&dir).unwrap();
    let seqs = dir.join("seqs.txt");
    std::fs::write(&seqs, "KW\naa  # lower case is fine\n\nGP\n").unwrap();
    let out = dir.join("md");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/slurm/md_shards.sh");
    let opts = [
        "--ns",
        "0.004",
        "--save-every-ps",
        "0.5",
        "--equilibrate-ps",
        "0",
    ];
    let task = |i: usize, extra: &[&str]| {
        Command::new("bash")
            .arg(&script)
            .arg(&seqs)
            .arg(&out)
            .args(opts)
            .args(extra)
            .env("SLURM_ARRAY_TASK_ID", i.to_string())
            .env("SLURM_ARRAY_TASK_COUNT", "2")
            .env("SLURM_CPUS_PER_TASK", "1")
            .env("BGEN", env!("CARGO_BIN_EXE_bgen"))
            .spawn()
            .unwrap()
    };
    // Task 1 (shard AA) stops at its first checkpoint, as a job out of time would.
    let mut t0 = task(0, &[]);
    let mut t1 = task(
        1,
        &["--checkpoint-secs", "0", "--stop-after-checkpoints", "1"],
    );
    assert!(t0.wait().unwrap().success() && t1.wait().unwrap().success());
    let merge = |extra: &[&str]| {
        bgen()
            .args(["dataset", "merge", "--run"])
            .arg(&out)
            .arg("--out")
            .arg(dir.join("data"))
            .args(extra)
            .output()
            .unwrap()
    };
    let o = merge(&["--held-out", "GP"]);
    fails(o, "AA: not finished");
    // Or the finished shards alone, naming the one left out, also while another process is
    // running it (it holds the shard's lock).
    let lock = bgen_system::outdir::lock_dir(&out.join("shards/AA")).unwrap();
    let o = bgen()
        .args(["dataset", "merge", "--finished-only", "--run"])
        .arg(&out)
        .arg("--out")
        .arg(dir.join("finished"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success()
            && err.contains("left out: 1 not finished (running, or run it again to resume) (AA)"),
        "{err}"
    );
    drop(lock);
    // Resuming with another recipe is refused, naming the option: the finished shards would be
    // skipped and the stopped one finished differently.
    let o = Command::new("bash")
        .arg(&script)
        .arg(&seqs)
        .arg(&out)
        .args(opts)
        .args(["--friction", "2"])
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env("SLURM_ARRAY_TASK_COUNT", "2")
        .env("SLURM_CPUS_PER_TASK", "1")
        .env("BGEN", env!("CARGO_BIN_EXE_bgen"))
        .output()
        .unwrap();
    fails(o, "--friction");
    // Resubmitting the array completes it: KW and GP are skipped, AA resumed.
    let (mut t0, mut t1) = (task(0, &[]), task(1, &[]));
    assert!(t0.wait().unwrap().success() && t1.wait().unwrap().success());
    let o = merge(&["--held-out", "gp"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("data/dataset.json")).unwrap())
            .unwrap();
    let names = |k: &str| -> Vec<String> {
        d[k].as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("train"), ["KW", "AA"]);
    assert_eq!(names("held_out"), ["GP"]);
    assert_eq!(d["forcefield"], "amber14-obc1");
    for e in d["train"].as_array().unwrap() {
        assert_eq!(e["frames"], 8, "{e}");
    }
    assert_eq!(d["train"][0]["atoms"], 49);
    // Nor into the run it merges (a shard's directory is the run's).
    let o = bgen()
        .args(["dataset", "merge", "--run"])
        .arg(&out)
        .arg("--out")
        .arg(out.join("shards/KW/data"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("would be overwritten"),
        "{err}"
    );
    assert!(!out.join("shards/KW/data").exists());
    // The same merge again is fine; another split into the same directory is refused (a model
    // trained on it would see its held-out peptide).
    assert!(merge(&["--held-out", "GP"]).status.success());
    let o = merge(&["--held-out", "KW"]);
    fails(o, "another split");
    // A shard made with another recipe (here: its record edited, as a shard copied in from
    // another run would be): merge refuses to mix them, naming the setting.
    let gp = out.join("shards/GP/run.json");
    let text = std::fs::read_to_string(&gp).unwrap();
    let edited = text.replace("\"friction_per_ps\": 1.0", "\"friction_per_ps\": 2.0");
    assert_ne!(text, edited);
    std::fs::write(&gp, edited).unwrap();
    let o = merge(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.contains("GP: made with other settings than KW")
            && err.contains("friction_per_ps"),
        "{err}"
    );
    // A typo in a sequence stops the run before any MD, naming it.
    let o = bgen()
        .args(["md", "--sequences", "KW,KB", "--out"])
        .arg(dir.join("typo"))
        .output()
        .unwrap();
    fails(o, "'B' at position 2");
}

/// A closed output pipe (`bgen md ... 2>&1 | head -1`) loses the status lines, not the run:
/// every shard still runs and the exit status is 0 (a status line used to panic, exit 101,
/// leaving the remaining shards unrun).
#[test]
fn a_closed_output_pipe_does_not_stop_a_many_peptide_run() {
    let out = tmp("pipe");
    let mut child = bgen()
        .args([
            "md",
            "--sequences",
            "GG,AA,GA",
            "--jobs",
            "1",
            "--ns",
            "0.002",
        ])
        .args(["--save-every-ps", "0.5", "--equilibrate-ps", "0", "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    assert!(child.wait().unwrap().success());
    for s in ["GG", "AA", "GA"] {
        assert!(
            out.join("shards").join(s).join("frames.npy").exists(),
            "{s}"
        );
    }
}

/// A many-peptide directory given where one run or a data set is expected says what to do:
/// merge it, or give one shard; `md --resume` on it says to rerun the same command.
#[test]
fn a_many_peptide_directory_given_as_one_run_says_what_to_do() {
    let out = tmp("many-hint");
    let o = bgen()
        .args([
            "md",
            "--sequences",
            "GG",
            "--ns",
            "0.002",
            "--save-every-ps",
            "0.5",
        ])
        .args(["--equilibrate-ps", "0", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let d = out.to_str().unwrap();
    let gg = out.join("shards/GG/topology.pdb");
    let gg = gg.to_str().unwrap();
    let x = tmp("many-hint-out");
    let x = x.to_str().unwrap();
    for args in [
        vec![
            "eval",
            "--pdb",
            gg,
            "--samples",
            d,
            "--reference",
            d,
            "--out",
            x,
        ],
        vec!["train", "--data", d, "--out", x],
        vec!["dataset", "split", "--run", d, "--out", x],
    ] {
        let o = bgen().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains("bgen dataset merge --run"),
            "{args:?}: {err}"
        );
    }
    let o = bgen()
        .args(["md", "--resume", "--out", d])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("runs again (without --resume)"),
        "{err}"
    );
}

/// A sequences file with a byte-order mark reads as without one, and a bad sequence is named
/// by file and line (or by the --sequences item).
#[test]
fn a_sequences_file_names_its_bad_lines_and_takes_a_bom() {
    let dir = tmp("seqfile");
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.txt");
    std::fs::write(&bad, "\u{feff}KW\n# a comment\nAX\n").unwrap();
    let o = bgen()
        .args(["md", "--sequences-file"])
        .arg(&bad)
        .arg("--out")
        .arg(dir.join("bad"))
        .output()
        .unwrap();
    fails(o, "bad.txt:3: sequence AX");
    let good = dir.join("good.txt");
    std::fs::write(&good, "\u{feff}GG\n").unwrap();
    let o = bgen()
        .args([
            "md",
            "--ns",
            "0.002",
            "--save-every-ps",
            "0.5",
            "--equilibrate-ps",
            "0",
        ])
        .arg("--sequences-file")
        .arg(&good)
        .arg("--out")
        .arg(dir.join("good"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(dir.join("good/shards/GG/frames.npy").exists());
}

/// Options of the many-peptide path take effect there or are refused by name (issue 27, class
/// 3): shards, jobs and caps on one molecule, caps on PDBs, --resume on a many-peptide run.
#[test]
fn many_peptide_options_on_one_molecule_are_refused() {
    let dir = tmp("many-options");
    for (args, says) in [
        (
            vec!["--system", "aldp", "--jobs", "2"],
            "jobs: for many peptides",
        ),
        (
            vec![
                "--system",
                "aldp",
                "--shard-index",
                "0",
                "--shard-count",
                "2",
            ],
            "shard_index: for many peptides",
        ),
        (
            vec!["--system", "aldp", "--caps", "ace-nme"],
            "caps: for many peptides",
        ),
        (
            vec!["--pdbs", "x.pdb", "--caps", "ace-nme"],
            "caps: for peptides built from sequences",
        ),
        (vec!["--sequences", "AA", "--resume"], "drop --resume"),
    ] {
        let o = bgen()
            .arg("md")
            .args(&args)
            .arg("--out")
            .arg(&dir)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(says), "{args:?}: {err}");
        assert!(!dir.exists(), "{args:?} wrote {}", dir.display());
    }
}

/// Some of a many-peptide run's shards run again with a longer --ns: those are lengthened,
/// the others left as they were; a shard the run does not hold is refused.
#[test]
fn some_shards_of_a_many_peptide_run_lengthen() {
    let out = tmp("lengthen");
    let md = |seqs: &str, ns: &str| {
        bgen()
            .args(["md", "--sequences", seqs, "--ns", ns, "--jobs", "1"])
            .args(["--save-every-ps", "0.5", "--equilibrate-ps", "0", "--out"])
            .arg(&out)
            .output()
            .unwrap()
    };
    let frames = |s: &str| {
        let f = out.join("shards").join(s).join("time_ps.npy");
        read_npy(&f).unwrap().data.len()
    };
    let o = md("GG,AA", "0.002");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!((frames("GG"), frames("AA")), (4, 4));
    let o = md("GG", "0.004");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!((frames("GG"), frames("AA")), (8, 4));
    fails(md("GA", "0.004"), "name some of its shards");
    // The first command again (a pipeline resumed from the top) skips the longer shard.
    // The first command again (a pipeline resumed from the top) skips the longer shard.
    let o = md("GG,AA", "0.002");
    let log = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{log}");
    assert!(
        log.contains("GG: skipped (0.004 ns, longer than asked)"),
        "{log}"
    );
    assert_eq!((frames("GG"), frames("AA")), (8, 4));
    // Shards of different lengths are one recipe; a model trains on as many frames of each.
    let data = tmp("lengthen-data");
    let o = bgen()
        .args(["dataset", "merge", "--run"])
        .arg(&out)
        .arg("--out")
        .arg(&data)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = bgen()
        .args([
            "train",
            "--preset",
            "tiny",
            "--steps",
            "1",
            "--batch-size",
            "4",
        ])
        .args(["--checkpoint-secs", "0", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(tmp("lengthen-model"))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{log}");
    assert!(
        log.contains("6 training / 2 validation"),
        "4 frames of each, thinned: {log}"
    );
    // A shard lengthened after the merge: the data set is stale, and says so.
    let o = md("AA", "0.004");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = bgen()
        .args(["train", "--preset", "tiny", "--steps", "1", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(tmp("lengthen-stale"))
        .output()
        .unwrap();
    fails(
        o,
        "AA holds 8 frames at the run's temperature, the data set 4; merge the run again",
    );
    // A shard stopped while being lengthened goes on to its own length when the first
    // command runs again.
    let o = bgen()
        .args(["md", "--sequences", "AA", "--ns", "0.006", "--jobs", "1"])
        .args(["--save-every-ps", "0.5", "--equilibrate-ps", "0"])
        .args([
            "--checkpoint-secs",
            "0",
            "--stop-after-checkpoints",
            "1",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!out.join("shards/AA/frames.npy").exists());
    let o = md("GG,AA", "0.002");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!((frames("GG"), frames("AA")), (8, 12));
}

/// A checkpoint interval of 1e300 s means never (it panicked converting to a Duration), a
/// length beyond 2^53 steps is refused by name before a directory exists, a split that would
/// leave a set empty is refused, and the split's own directory given as training data points
/// at its sets.
#[test]
fn extreme_lengths_and_empty_sets_are_refused_or_handled() {
    let out = tmp("md-forever-checkpoint");
    let o = bgen()
        .args([
            "md",
            "--system",
            "aldp",
            "--replicas",
            "1",
            "--threads",
            "1",
        ])
        .args([
            "--ns",
            "0.002",
            "--save-every-ps",
            "0.1",
            "--equilibrate-ps",
            "1",
            "--checkpoint-secs",
            "1e300",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let p = common::printed(&o);
    assert!(o.status.success(), "{}", p.stderr);

    let long = tmp("md-too-long");
    let o = bgen()
        .args(["md", "--system", "aldp", "--ns", "1e20", "--out"])
        .arg(&long)
        .output()
        .unwrap();
    fails(o, "length (ns) is more than 2^53 steps");
    assert!(!long.exists());

    let split = tmp("split-empty");
    let o = bgen()
        .args(["dataset", "split", "--gap", "100000", "--run"])
        .arg(&out)
        .arg("--out")
        .arg(&split)
        .output()
        .unwrap();
    fails(o, "the val set would get no frames");
    assert!(!split.join("split.json").exists());

    let split = tmp("split-ok");
    let o = bgen()
        .args(["dataset", "split", "--run"])
        .arg(&out)
        .arg("--out")
        .arg(&split)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::printed(&o).stderr);
    let o = bgen()
        .args(["train", "--data"])
        .arg(&split)
        .args(["--out"])
        .arg(tmp("train-from-split-dir"))
        .output()
        .unwrap();
    fails(o, "the sets of `bgen dataset split`");
}
