//! `bgen eval` from the command line: metrics.json with the contract's keys, real PNG plots and a
//! self-contained report; mismatched input is refused with the file named.

use std::path::PathBuf;

mod common;
use common::{bgen, fails};

fn tmp(name: &str) -> PathBuf {
    common::scratch(name)
}

fn md(out: &PathBuf, seed: &str) {
    let o = bgen()
        .args([
            "md",
            "--system",
            "aldp",
            "--ns",
            "0.1",
            "--save-every-ps",
            "0.1",
        ])
        .args([
            "--equilibrate-ps",
            "1",
            "--replicas",
            "2",
            "--seed",
            seed,
            "--out",
        ])
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn eval_writes_metrics_plots_and_report() {
    let (s, r, out) = (tmp("samples"), tmp("reference"), tmp("out"));
    md(&s, "1");
    md(&r, "2");
    let o = bgen()
        .args(["eval", "--system", "aldp", "--samples"])
        .arg(&s)
        .arg("--reference")
        .arg(r.join("frames.npy"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    for key in ["ess", "energy_w1", "energy_w2", "torus_w2", "tica_w2"] {
        let v = m[key].as_f64().unwrap_or(f64::NAN);
        assert!(v.is_finite() && v >= 0.0, "{key} = {}", m[key]);
    }
    let basins = m["basins"].as_object().unwrap();
    let total: f64 = basins.values().map(|v| v.as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-9 && basins.contains_key("beta"));
    for png in ["ramachandran_0.png", "energy.png", "tica.png"] {
        let bytes = std::fs::read(out.join(png)).unwrap();
        assert!(bytes.len() > 5000 && bytes.starts_with(b"\x89PNG"), "{png}");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(html.matches("data:image/png;base64,").count(), 3);
    assert!(html.contains("T-W2") && html.contains("beta"));

    // metrics.json (what `bgen run` takes for a finished evaluation) is written last: when the
    // report cannot be written, there is none.
    let blocked = tmp("blocked");
    std::fs::create_dir_all(blocked.join("report.html").join("x")).unwrap();
    let o = bgen()
        .args(["eval", "--system", "aldp", "--samples"])
        .arg(&s)
        .arg("--reference")
        .arg(&r)
        .arg("--out")
        .arg(&blocked)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(!blocked.join("metrics.json").exists());
    std::fs::remove_dir_all(blocked).unwrap();
    // Nor does a failed re-evaluation leave the previous scores beside its new plots.
    std::fs::remove_file(out.join("report.html")).unwrap();
    std::fs::create_dir_all(out.join("report.html").join("x")).unwrap();
    let o = bgen()
        .args(["eval", "--system", "aldp", "--samples"])
        .arg(&s)
        .arg("--reference")
        .arg(&r)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(!out.join("metrics.json").exists());
    std::fs::remove_dir_all(out.join("report.html")).unwrap();

    // A sampling directory without its manifest (a run that did not finish) is refused.
    let unfinished = tmp("unfinished");
    std::fs::create_dir_all(&unfinished).unwrap();
    std::fs::copy(s.join("frames.npy"), unfinished.join("samples.npy")).unwrap();
    let o = bgen()
        .args(["eval", "--system", "aldp", "--samples"])
        .arg(&unfinished)
        .arg("--reference")
        .arg(&r)
        .arg("--out")
        .arg(tmp("unfinished-eval"))
        .output()
        .unwrap();
    fails(o, "no manifest.txt");
    std::fs::remove_dir_all(unfinished).unwrap();

    // Samples of another molecule are refused.
    let o = bgen()
        .args(["eval", "--system", "ala6", "--samples"])
        .arg(&s)
        .arg("--reference")
        .arg(&r)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("22 atoms") && err.contains("63"), "{err}");
    for d in [s, r, out] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// A reference of another molecule with the same atom count (WK for KW), or at another
/// temperature, is refused, named: its identity travels in its run directory.
#[test]
fn a_reference_of_another_molecule_or_temperature_is_refused() {
    let md = tmp("identity");
    let o = bgen()
        .args([
            "md",
            "--sequences",
            "KW,WK",
            "--ns",
            "0.002",
            "--save-every-ps",
            "0.5",
        ])
        .args(["--equilibrate-ps", "0", "--out"])
        .arg(&md)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (kw, wk) = (md.join("shards/KW"), md.join("shards/WK"));
    let eval = |reference: &PathBuf, extra: &[&str]| {
        bgen()
            .args(["eval", "--pdb"])
            .arg(kw.join("topology.pdb"))
            .arg("--samples")
            .arg(&kw)
            .arg("--reference")
            .arg(reference)
            .args(extra)
            .arg("--out")
            .arg(md.join("eval"))
            .output()
            .unwrap()
    };
    let o = eval(&wk, &[]);
    fails(o, "MD of WK, but the samples are scored as KW");
    let o = eval(&kw, &["--temperature", "350"]);
    fails(o, "MD at 310 K");
    assert!(eval(&kw, &[]).status.success());
    std::fs::remove_dir_all(md).unwrap();
}
