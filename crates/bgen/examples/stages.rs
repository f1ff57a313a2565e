//! Every stage through its typed settings, as the command line, `bgen run` and the Python package
//! call them (`crates/bgen-py/examples/stages.py` is the same in Python): MD of alanine
//! dipeptide, a time split, a small TarFlow on internal coordinates, SNIS and SMC, and the
//! evaluation of both against the shipped held-out replica-exchange MD. 5-10 minutes on 2
//! cores; a demonstration of the API (`bgen run` has the settings for quality: on the dev VM this
//! example's small model gives SNIS ESS 0.007 and SMC E-W2 1.6 kT, `bgen run` 0.10 and 0.17).
//!
//! Run: `eval "$(scripts/libtorch.sh)" && cargo run --release --example stages -- [OUT_DIR]`

use bgen::eval::EvalArgs;
use bgen::md::{MdArgs, SplitArgs};
use bgen::models::TrainArgs;
use bgen::sample::{Method, SampleArgs};
use bgen::system::SystemArgs;
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or("aldp-stages".into()));
    let aldp = SystemArgs::named("aldp");

    // MD: two 2.5 ns replicas at 300 K (resumes if killed; a finished run is kept).
    let mut md = MdArgs::new(aldp.clone(), out.join("md"));
    md.ns = Some(2.5);
    md.replicas = Some(2);
    md.resume = out.join("md/run.json").exists();
    let r = bgen::md::stage::run(md)?;
    println!(
        "md: {} frames, <U> {:.2} kJ/mol",
        r.frames.unwrap_or(0),
        r.mean_energy_kj_mol.unwrap_or(f64::NAN)
    );

    // Train / validation / test in consecutive time blocks of each replica.
    let sets = bgen::md::stage::split(SplitArgs::new(out.join("md"), out.join("data")))?;
    println!("split: {sets:?}");

    // A small TarFlow on internal coordinates (the default), 1,500 steps on 2 workers.
    let mut train = TrainArgs::new(out.join("data/train"), out.join("model"));
    train.steps = Some(1500);
    train.threads = 2;
    train.resume = out.join("model/latest.json").exists();
    let t = bgen::models::stage::run(train)?;
    println!("train: validation NLL {:.3} per dim", t.val_nll);

    // SNIS and SMC, each scored against the shipped held-out reference.
    let reference =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/reference/aldp-300K-remd.npy");
    for (method, n) in [(Method::Snis, 5000), (Method::Smc, 1000)] {
        let mut s = SampleArgs::new(out.join("model"), out.join(format!("sample-{method}")));
        s.method = Some(method);
        s.n = Some(n);
        s.threads = 2;
        let summary = bgen::sample::stage::run(s)?;
        let e = EvalArgs::new(
            aldp.clone(),
            out.join(format!("sample-{method}")),
            reference.clone(),
            out.join(format!("eval-{method}")),
        );
        let m = bgen::eval::stage::run(e)?;
        println!(
            "{method}: ESS {:.3}, E-W2 {:.3} kT, T-W2 {:.3} ({:.1} s of sampling)",
            m.ess, m.energy_w2, m.torus_w2, summary.wall_seconds
        );
    }
    Ok(())
}
