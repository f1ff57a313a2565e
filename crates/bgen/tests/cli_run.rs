//! `bgen run`, the main job, on a tiny configuration: every output, the summary table, a kill
//! during training that the rerun resumes, skipped stages, and clear errors for bad settings.

use std::path::PathBuf;
use std::time::{Duration, Instant};

mod common;
use common::{bgen, fails};

fn tmp(name: &str) -> PathBuf {
    common::scratch(name)
}

const TINY: &str = r#"
system = "aldp"
[md]
ns = 0.05
replicas = 2
save_every_ps = 0.1
equilibrate_ps = 1
[train]
preset = "tiny"
steps = 400
checkpoint_secs = 0.2
[sample]
n = 64
smc_particles = 32
smc_steps = 4
[eval]
max_samples = 500
"#;

#[test]
fn main_job_runs_resumes_after_a_kill_and_skips_finished_stages() {
    let dir = tmp("job");
    let cfg = tmp("cfg.toml");
    std::fs::write(&cfg, TINY).unwrap();
    let run = || {
        let mut c = bgen();
        c.args(["run", "--threads", "1", "--config"])
            .arg(&cfg)
            .arg("--out")
            .arg(&dir);
        c
    };
    // Killed once training has written a checkpoint.
    let mut child = run()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !dir.join("model/latest.json").exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "no checkpoint written"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!dir.join("summary.json").exists(), "killed before the end");

    let o = run().output().unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    );
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("== molecular dynamics (resumed)") && err.contains("== training (resumed)"),
        "{err}"
    );
    assert!(
        err.contains("run already complete"),
        "MD is not redone: {err}"
    );
    for f in [
        "config.toml",
        "summary.json",
        "metrics.json",
        "report.html",
        "sample-snis/samples.npy",
        "sample-smc/samples.npy",
        "eval-smc/energy.png",
        "data/test/frames.npy",
    ] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    assert!(
        out.contains("sampler") && out.contains("snis") && out.contains("smc"),
        "{out}"
    );
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["samplers"].as_array().unwrap().len(), 2);
    // The default TarFlow works in internal coordinates, trained also on 450 K frames; SMC
    // reports its schedule and lineages.
    let smc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("sample-smc/summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(smc["coords"], "internal", "{smc}");
    assert!(smc["final_lineages"].as_u64().unwrap() >= 1, "{smc}");
    assert!(smc["levels"].as_u64().unwrap() >= 1, "{smc}");
    // The evaluation of SNIS says where the proposal put its samples (beside the weighted basins).
    let snis: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("eval-snis/metrics.json")).unwrap())
            .unwrap();
    let mass: f64 = snis["details"]["proposal_basins"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!((mass - 1.0).abs() < 1e-9, "{snis}");
    // The default MD is a replica-exchange ladder: its lowest rung is the data, the raised
    // rungs are extra training frames.
    let md: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("md/run.json")).unwrap()).unwrap();
    let ladder = md["settings"]["temperatures_k"].as_array().unwrap();
    assert_eq!(ladder.len(), 4);
    assert_eq!(ladder[3].as_f64().unwrap(), 450.0);
    let test = bgen_md::dataset::load(&dir.join("data/test")).unwrap();
    assert!(
        test.replica.iter().all(|&r| r == 0),
        "the data are the 300 K rung"
    );
    let info = std::fs::read_to_string(dir.join("model/run.json")).unwrap();
    assert!(
        info.contains("\"n_train\": 1900"),
        "400 frames at 300 K + 3 x 500 raised: {info}"
    );
    let report = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(report.contains("Sampler diagnostics"));
    let state = std::fs::read_to_string(dir.join("model/latest.json")).unwrap();
    assert!(state.contains("ckpt-00000400"), "{state}");

    // A rerun finds everything done; a lost stage output is remade alone.
    std::fs::remove_dir_all(dir.join("eval-smc")).unwrap();
    let o = run().output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("evaluation (smc)") && !err.contains("sampling ("),
        "{err}"
    );

    // An ArBG run on the same data (no new MD): SNIS and twisted SMC by default.
    let arbg = tmp("arbg");
    let cfg2 = tmp("arbg.toml");
    std::fs::write(
        &cfg2,
        TINY.replace("[md]\n", &format!("[md]\ndata = {:?}\n", dir.join("data"))),
    )
    .unwrap();
    let o = bgen()
        .args(["run", "--model", "arbg", "--threads", "1", "--config"])
        .arg(&cfg2)
        .arg("--out")
        .arg(&arbg)
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    );
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("molecular dynamics"), "data reused: {err}");
    assert!(
        out.contains("twisted") && arbg.join("sample-twisted/samples.npy").exists(),
        "{out}"
    );
    std::fs::remove_dir_all(&arbg).unwrap();
    std::fs::remove_file(&cfg2).unwrap();

    // The saved config.toml reproduces the run; other settings in the same directory are refused.
    let o = bgen()
        .args(["run", "--model", "arbg", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("other settings"));
    // An unknown setting names the file and the key.
    std::fs::write(&cfg, format!("{TINY}\n[typo]\nx = 1\n")).unwrap();
    let o = bgen()
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(tmp("other"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        !o.status.success() && err.contains("cfg.toml") && err.contains("typo"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_file(&cfg).unwrap();
}

/// A bad value anywhere in the TOML is refused by its key before the first stage runs, and the
/// refused settings are not saved (so they cannot block the corrected ones).
#[test]
fn bad_settings_are_refused_by_key_before_any_stage() {
    let dir = tmp("bad-settings");
    let cfg = tmp("bad.toml");
    for (toml, key) in [
        ("[sample]\nn = 0\n", "sample.n"),
        ("[md]\nns = -1.0\n", "md.ns"),
        ("[train]\nlr = 0.0\n", "train.lr"),
        // A closed choice: the line, the value and the allowed ones.
        (
            "[sample]\ncom = \"x\"\n",
            "expected one of `none`, `gaussian`, `chi`",
        ),
        (
            "[sample]\nmethods = [\"mcmc\"]\n",
            "expected one of `proposal`, `snis`",
        ),
        ("[eval]\ntica_lag = 0\n", "eval.tica_lag"),
        ("temperature = 0.0\n", "temperature = 0: must be"),
    ] {
        std::fs::write(&cfg, toml).unwrap();
        let o = bgen()
            .args(["run", "--config"])
            .arg(&cfg)
            .arg("--out")
            .arg(&dir)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(key), "{toml}: {err}");
        assert!(!dir.exists(), "{toml}: nothing written");
    }
}

/// A non-UTF-8 output path is refused (the stages would have written to its lossy form).
#[cfg(unix)]
#[test]
fn a_non_utf8_output_path_is_refused() {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::OsStr::from_bytes(b"bgen-run-\xff");
    let out = std::env::temp_dir().join(name);
    let o = bgen().args(["run", "--out"]).arg(&out).output().unwrap();
    fails(o, "not valid UTF-8");
    assert!(!out.exists());
}
