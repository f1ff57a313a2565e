//! The evaluation stage as a function of typed, serialisable settings: [`run`] scores samples
//! against reference MD (metrics, plots and an HTML report; `bgen eval`, `bgen run`'s
//! evaluation, `bgen.evaluate(...)` in Python) and returns the [`Metrics`].

use crate::evaluate::{evaluate, EvalOptions, Metrics};
use crate::Result;
use bgen_system::error::Context;
use bgen_system::npy::{read_npy, write_atomic};
use bgen_system::peptide::identity;
use bgen_system::{bail, SystemArgs};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The settings of `bgen eval` (and of `bgen run`'s evaluation stage, which builds them with
/// [`EvalArgs::new`]).
/// Python's `bgen.evaluate(...)` keywords (deserialised; unknown keys are refused).
#[derive(Args, Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalArgs {
    /// Samples: a directory with samples.npy (and log_weights.npy), a run or data-set directory
    /// (frames.npy), or a (n, atoms, 3) .npy file; nm.
    #[arg(long)]
    pub samples: PathBuf,
    /// Log importance weights (n,) for the samples (default: DIR/log_weights.npy if present).
    #[arg(long)]
    pub log_weights: Option<PathBuf>,
    /// Reference MD: a (frames, atoms, 3) .npy in time order, or a run / data-set directory (of a
    /// replica-exchange run, its replica 0: the frames at the run's temperature).
    #[arg(long)]
    pub reference: PathBuf,
    #[command(flatten)]
    pub sys: SystemArgs,
    /// Output directory: metrics.json, *.png, report.html.
    #[arg(long)]
    pub out: PathBuf,
    /// Samples and reference frames used at most (evenly strided).
    #[arg(long, default_value_t = MAX_SAMPLES, value_parser = bgen_system::options::count::<usize>, allow_hyphen_values = true)]
    pub max_samples: usize,
    /// TICA lag, in reference frames.
    #[arg(long, default_value_t = TICA_LAG, value_parser = bgen_system::options::count::<usize>, allow_hyphen_values = true)]
    pub tica_lag: usize,
    /// A training run (from `bgen train`): report the held-out NLL of the reference frames.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// More sample sets to draw in the energy plot (e.g. the proposal beside SMC); repeatable.
    #[arg(long)]
    pub compare: Vec<PathBuf>,
    /// The samples are an MD run: also score this many prefixes of it, each `curve_ratio` times
    /// longer than the one before, up to the whole run, with their simulated ns and wall time
    /// (curve.json, curve.png).
    #[arg(long, value_parser = bgen_system::options::count::<usize>, allow_hyphen_values = true)]
    pub curve: Option<usize>,
    /// With `curve`: how much longer each prefix is than the one before (> 1; 1.19 = 2^(1/4)
    /// scores four prefixes per doubling, so that the MD of a given wall time is one at most 19%
    /// shorter).
    #[arg(long, default_value_t = 2.0, value_parser = curve_ratio, requires = "curve")]
    pub curve_ratio: f64,
    /// With `curve`: a sampler's metrics.json (from `bgen eval`) to set beside the curve; reports
    /// the first prefix at which MD is as good on E-W2, T-W2 and the largest basin error.
    #[arg(long, requires = "curve")]
    pub reach: Option<PathBuf>,
}

/// Samples and reference frames used at most by default, and the TICA lag (frames).
/// Samples and reference frames scored at most, by default.
pub const MAX_SAMPLES: usize = 10_000;
/// TICA lag in reference frames, by default.
pub const TICA_LAG: usize = 10;

impl EvalArgs {
    /// The defaults of `bgen eval --samples SAMPLES --reference REFERENCE --out OUT` for the
    /// system `sys`.
    pub fn new(sys: SystemArgs, samples: PathBuf, reference: PathBuf, out: PathBuf) -> EvalArgs {
        EvalArgs {
            samples,
            log_weights: None,
            reference,
            sys,
            out,
            max_samples: MAX_SAMPLES,
            tica_lag: TICA_LAG,
            model: None,
            compare: Vec::new(),
            curve: None,
            curve_ratio: 2.0,
            reach: None,
        }
    }
}

impl Default for EvalArgs {
    fn default() -> Self {
        EvalArgs::new(
            SystemArgs::default(),
            PathBuf::new(),
            PathBuf::new(),
            PathBuf::new(),
        )
    }
}

impl EvalArgs {
    /// Refuses settings that would break an evaluation, naming them.
    pub fn check(&self) -> Result<()> {
        use bgen_system::options::check;
        for (k, p) in [
            ("samples", &self.samples),
            ("reference", &self.reference),
            ("out", &self.out),
        ] {
            if p.as_os_str().is_empty() {
                bail!("{k}: give a path");
            }
        }
        check::count("max_samples", self.max_samples as i64)?;
        check::count("tica_lag", self.tica_lag as i64)?;
        Ok(())
    }
}

/// Held-out NLL per dimension of frames (nm) under the EMA flow of a training run: (normalised
/// units, nm units).
fn held_out_nll(run: &Path, frames: &[f64], n_atoms: usize) -> Result<(f64, f64)> {
    let (state, model) = bgen_models::train::Trainer::load_model(run, tch::Device::Cpu, true)?;
    let norm = state.normalizer.clone();
    if norm.n_atoms as usize != n_atoms {
        bail!(
            "{}: the model has {} atoms, the reference {n_atoms}",
            run.display(),
            norm.n_atoms
        );
    }
    let x = state.features(frames);
    let nll = bgen_models::train::nll(&model, &x);
    // In nm units for a Cartesian model; a model on internal coordinates has no such unit.
    let nll_nm = match state.internal {
        None => norm.nll_in_nm(nll),
        Some(_) => f64::NAN,
    };
    Ok((nll, nll_nm))
}

/// The sampler's diagnostics from `DIR/summary.json` beside the samples, as report rows
/// (none when there is no summary).
fn sampler_rows(samples: &Path) -> Vec<(String, String)> {
    let Some(v) = std::fs::read_to_string(samples.join("summary.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    else {
        return Vec::new();
    };
    let keys = [
        ("method", "method"),
        ("coords", "coordinates"),
        ("n", "samples / particles"),
        ("ess", "ESS (before the final resampling)"),
        ("levels", "SMC levels"),
        ("resamplings", "resamplings"),
        ("lineages", "lineages after each resampling"),
        ("final_lineages", "lineages at the end"),
        ("acceptance", "MALA acceptance"),
        ("independence_acceptance", "independence-move acceptance"),
        ("energy_evaluations", "energy evaluations"),
        ("wall_seconds", "wall time, s"),
    ];
    let show = |x: &serde_json::Value| match x {
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.4}"),
            _ => n.to_string(),
        },
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, x)| format!("{k} {:.3}", x.as_f64().unwrap_or(f64::NAN)))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    };
    keys.iter()
        .filter_map(|(k, label)| v.get(*k).map(|x| (label.to_string(), show(x))))
        .collect()
}

/// An MD run given as the reference must be of the evaluated molecule (its identity, caps
/// included, not only its atom count) in the evaluated force field at the evaluated
/// temperature; a bare .npy carries no identity to check.
fn check_identity(reference: &Path, sys: &bgen_system::System) -> Result<()> {
    let (dir, top) = (reference.join("run.json"), reference.join("topology.pdb"));
    if !reference.is_dir() || !dir.exists() {
        return Ok(());
    }
    if let Ok((settings, _)) = bgen_md::run::settings_and_wall(reference) {
        let what = format!("{}: MD", reference.display());
        check_conditions(&what, &settings.forcefield, settings.temperature_k, sys)?;
    }
    if top.exists() {
        let a = bgen_system::peptide::identity_of_pdb_file(&top)?;
        let b = identity(&sys.topology);
        if a != b {
            bail!(
                "{}: MD of {a}, but the samples are scored as {b}",
                reference.display()
            );
        }
    }
    Ok(())
}

/// `what` (MD or samples) was made in `forcefield` at `temperature_k`: the evaluated system's.
fn check_conditions(
    what: &str,
    forcefield: &str,
    temperature_k: f64,
    sys: &bgen_system::System,
) -> Result<()> {
    let ours = sys.params.setup.name();
    if forcefield != ours {
        bail!("{what} in {forcefield}, but the samples are scored in {ours} (give --forcefield)");
    }
    if (temperature_k - sys.temperature).abs() > 1e-6 {
        bail!(
            "{what} at {temperature_k} K, but the samples are scored at {} K (give --temperature)",
            sys.temperature
        );
    }
    Ok(())
}

/// A `bgen sample` directory records what its samples are of (its summary.json's identity,
/// force field and temperature): they must be the evaluated system's, or the weights and the
/// metrics mean nothing. Directories from before the record pass unchecked.
fn check_samples(samples: &Path, sys: &bgen_system::System) -> Result<()> {
    let summary = samples.join("summary.json");
    let Ok(text) = std::fs::read_to_string(&summary) else {
        return Ok(());
    };
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: corrupt", summary.display()))?;
    let what = format!("{}: samples", samples.display());
    if let (Some(ff), Some(t)) = (v["forcefield"].as_str(), v["temperature_k"].as_f64()) {
        check_conditions(&what, ff, t, sys)?;
    }
    if let Some(theirs) = v["identity"].as_str() {
        let ours = identity(&sys.topology);
        if theirs != ours {
            bail!(
                "{what} of {theirs}, but scored as {ours} (give the PDB of the sampled molecule)"
            );
        }
    }
    Ok(())
}

/// Positions (nm) and optional log-weights from a samples path.
fn load_samples(
    path: &Path,
    log_weights: &Option<PathBuf>,
) -> Result<(Vec<f64>, usize, Option<Vec<f64>>)> {
    let (x, n_atoms) = if path.is_dir() && path.join("samples.npy").exists() {
        // A `bgen sample` directory: its arrays must be those its manifest recorded, and a
        // directory without one is a sampling run that did not finish (its manifest goes first).
        if !path.join("manifest.txt").exists() {
            bail!(
                "{}: no manifest.txt beside samples.npy: the sampling run did not finish (rerun \
                 bgen sample), or give the .npy file itself",
                path.display()
            );
        }
        for f in ["samples.npy", "log_weights.npy"] {
            if f == "samples.npy" || path.join(f).exists() {
                bgen_system::manifest::verify(path, "manifest.txt", f)?;
            }
        }
        let f = bgen_md::dataset::read_frames_npy(&path.join("samples.npy"))?;
        (f.x, f.n_atoms)
    } else {
        // An MD run scored as samples stands for its own temperature: a replica-exchange run's
        // replica 0 only (its raised rungs put ES's E-W2 against its own seed at 9.9 kT).
        let f = bgen_md::dataset::load_run_temperature(path)?;
        (f.x, f.n_atoms)
    };
    let lw_path = log_weights
        .clone()
        .or_else(|| Some(path.join("log_weights.npy")).filter(|p| path.is_dir() && p.exists()));
    let lw = match lw_path {
        Some(p) => {
            let a = read_npy(&p)?;
            let n = x.len() / (3 * n_atoms);
            if a.shape != [n] {
                bail!(
                    "{}: shape {:?}, expected ({n},) for {n} samples",
                    p.display(),
                    a.shape
                );
            }
            if let Some(k) = a
                .data
                .iter()
                .position(|v| v.is_nan() || *v == f64::INFINITY)
            {
                bail!(
                    "{}: sample {k} has log-weight {}: the weights cannot be normalised",
                    p.display(),
                    a.data[k]
                );
            }
            if a.data.iter().all(|v| *v == f64::NEG_INFINITY) {
                bail!(
                    "{}: every log-weight is -inf: no sample carries weight",
                    p.display()
                );
            }
            Some(a.data)
        }
        None => None,
    };
    Ok((x, n_atoms, lw))
}

/// Scores the samples of `a.samples` against `a.reference`, writing metrics.json (last),
/// plots and report.html to `a.out`.
pub fn run(a: EvalArgs) -> Result<Metrics> {
    a.check()?;
    let (sys, samples, reference) = inputs(&a)?;
    let _lock = bgen_system::outdir::lock_dir(&a.out)?;
    // metrics.json marks a finished evaluation: an old one goes before anything else changes,
    // so that a failure leaves no stale scores beside new plots.
    let marker = a.out.join("metrics.json");
    if marker.exists() {
        std::fs::remove_file(&marker).with_context(|| marker.display().to_string())?;
    }
    let opts = EvalOptions {
        max_samples: a.max_samples,
        tica_lag: a.tica_lag,
        ..Default::default()
    };
    let (x, lw) = samples;
    let (mut metrics, mut data) =
        evaluate(&sys, &x, lw.as_deref(), &reference, opts).context(a.samples.display())?;
    if metrics.details.n_nonfinite > 0 {
        bgen_system::say!(
            "{}: {} samples with a non-finite energy or zero weight left out",
            a.samples.display(),
            metrics.details.n_nonfinite
        );
    }
    if let Some(run) = &a.model {
        let (nll, nll_nm) = held_out_nll(run, &reference, sys.n_atoms())?;
        metrics.nll = Some(nll);
        metrics.nll_nm = Some(nll_nm).filter(|v| v.is_finite());
    }
    for c in &a.compare {
        compare(c, &sys, &reference, opts, &mut data)?;
    }
    if let Some(points) = a.curve {
        md_curve_stage(&a, &sys, &reference, points, opts)?;
    }
    write_report(&a, &sys, &metrics, &data)?;
    show(&metrics, &a.out);
    Ok(metrics)
}

/// The evaluation's system, samples (nm, with their log-weights) and reference frames (nm),
/// checked to be of one molecule, force field and temperature.
#[allow(clippy::type_complexity)]
fn inputs(a: &EvalArgs) -> Result<(bgen_system::System, (Vec<f64>, Option<Vec<f64>>), Vec<f64>)> {
    let sys = a.sys.load()?;
    let (x, na, lw) = load_samples(&a.samples, &a.log_weights)?;
    let reference = bgen_md::dataset::load_run_temperature(&a.reference)?;
    for (what, path, n) in [
        ("samples", &a.samples, na),
        ("reference", &a.reference, reference.n_atoms),
    ] {
        if n != sys.n_atoms() {
            bail!(
                "{}: {what} of {n} atoms, but {} has {}",
                path.display(),
                sys.name,
                sys.n_atoms()
            );
        }
    }
    check_identity(&a.reference, &sys)?;
    let samples_dir = match a.samples.file_name() {
        Some(f) if f == "samples.npy" => a.samples.parent().unwrap_or(Path::new(".")),
        _ => a.samples.as_path(),
    };
    check_samples(samples_dir, &sys)?;
    Ok((sys, (x, lw), reference.x))
}

/// Scores another sampler's output `c` (`--compare`) against the same reference, printed, its
/// energies added to the plots' data.
fn compare(
    c: &Path,
    sys: &bgen_system::System,
    reference: &[f64],
    opts: EvalOptions,
    data: &mut crate::evaluate::EvalData,
) -> Result<()> {
    let (cx, cna, clw) = load_samples(c, &None)?;
    if cna != sys.n_atoms() {
        bail!(
            "{}: {cna} atoms, but {} has {}",
            c.display(),
            sys.name,
            sys.n_atoms()
        );
    }
    let (cm, cd) = evaluate(sys, &cx, clw.as_deref(), reference, opts).context(c.display())?;
    let label = c
        .file_name()
        .map_or("other".into(), |n| n.to_string_lossy().to_string());
    bgen_system::show!(
        "  {label}: ESS {:.4}  E-W2 {:.4}  T-W2 {:.4}",
        cm.ess,
        cm.energy_w2,
        cm.torus_w2
    );
    let w = cd.has_weights.then_some(cd.weights.clone());
    data.extra_energies.push((label, cd.energy_samples, w));
    Ok(())
}

/// The plots, report.html and, last, metrics.json (which marks the evaluation complete: `bgen
/// run` skips a stage that has it).
fn write_report(
    a: &EvalArgs,
    sys: &bgen_system::System,
    metrics: &Metrics,
    data: &crate::evaluate::EvalData,
) -> Result<()> {
    let plots = crate::plots::write_plots(&a.out, data)?;
    let title = format!(
        "{} ({}): samples {} against reference {}",
        sys.name,
        sys.params.setup.name(),
        a.samples.display(),
        a.reference.display()
    );
    let mut rows = sampler_rows(&a.samples);
    // Where the proposal puts its samples and where the importance weights put their mass.
    let share = |m: &std::collections::BTreeMap<String, f64>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(p) = &metrics.details.proposal_basins {
        rows.push(("proposal basins".into(), share(p)));
        let w: std::collections::BTreeMap<String, f64> = metrics
            .details
            .basins_samples
            .iter()
            .map(|(k, v)| (k.clone(), v.value))
            .collect();
        rows.push(("weight basins".into(), share(&w)));
    }
    let html = crate::report::html(&title, metrics, &rows, &plots)?;
    write_atomic(&a.out.join("report.html"), html.as_bytes())?;
    let text = serde_json::to_string_pretty(metrics).context("metrics.json")?;
    write_atomic(&a.out.join("metrics.json"), text.as_bytes())?;
    Ok(())
}

/// Prints the scores and each basin beside the reference's.
fn show(metrics: &Metrics, out: &Path) {
    bgen_system::show!(
        "ESS {:.4}  E-W1 {:.4}  E-W2 {:.4} kT  T-W2 {:.4}  TICA-W2 {}",
        metrics.ess,
        metrics.energy_w1,
        metrics.energy_w2,
        metrics.torus_w2,
        metrics.tica_w2.map_or("-".into(), |v| format!("{v:.4}"))
    );
    for (k, v) in &metrics.details.basins_samples {
        let r = metrics
            .details
            .basins_reference
            .get(k)
            .map_or(f64::NAN, |r| r.value);
        bgen_system::show!("  {k:<14} {:.3} +- {:.3}   reference {r:.3}", v.value, v.se);
    }
    bgen_system::show!(
        "{} samples vs {} reference frames in {:.1} s; wrote {}",
        metrics.details.n_samples,
        metrics.details.n_reference,
        metrics.details.seconds,
        out.join("report.html").display()
    );
}

/// The scores of a `bgen eval` metrics.json: E-W2 (kT), T-W2 and the largest basin error.
fn scores_of(path: &Path) -> Result<[f64; 3]> {
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(path).with_context(|| path.display().to_string())?,
    )
    .with_context(|| format!("{}: not a metrics.json", path.display()))?;
    let num = |x: &serde_json::Value| x.as_f64();
    let d = &v["details"];
    let basin = d["basins_samples"].as_object().map(|m| {
        m.iter()
            .map(|(k, s)| {
                let r = num(&d["basins_reference"][k]["value"]).unwrap_or(0.0);
                (num(&s["value"]).unwrap_or(f64::NAN) - r).abs()
            })
            .fold(0.0, f64::max)
    });
    match (num(&v["energy_w2"]), num(&v["torus_w2"]), basin) {
        (Some(e), Some(t), Some(b)) => Ok([e, t, b]),
        _ => bail!("{}: no energy_w2, torus_w2 or basins", path.display()),
    }
}

/// `--curve-ratio`: a finite number > 1.
fn curve_ratio(s: &str) -> std::result::Result<f64, String> {
    match bgen_system::options::positive(s)? {
        v if v > 1.0 => Ok(v),
        _ => Err(format!(
            "{s}: each prefix must be longer than the one before (> 1)"
        )),
    }
}

/// `--curve`: scores prefixes of the MD run `a.samples` (curve.json, curve.png), and with
/// `--reach` the first at which MD matches a sampler's scores.
fn md_curve_stage(
    a: &EvalArgs,
    sys: &bgen_system::System,
    reference: &[f64],
    points: usize,
    opts: EvalOptions,
) -> Result<()> {
    let (settings, wall) = bgen_md::run::settings_and_wall(&a.samples)
        .with_context(|| format!("--curve: {} is not a finished MD run", a.samples.display()))?;
    let frames = bgen_md::dataset::load_run_temperature(&a.samples)?;
    let cost = crate::curve::MdCost {
        replicas: settings.replicas,
        equilibrate_ps: settings.equilibrate_ps,
        wall_seconds: wall,
    };
    let curve = crate::curve::md_curve(sys, &frames, reference, cost, points, a.curve_ratio, opts)?;
    let marks = a.reach.as_deref().map(scores_of).transpose()?;
    let reached = marks.and_then(|m| crate::curve::first_reaching(&curve, m));
    bgen_system::show!("MD prefix       ns   wall s   E-W2/kT   T-W2   basin err");
    for p in &curve {
        bgen_system::show!(
            "{:>9.0} ps {:>8.3} {:>8.1} {:>9.4} {:>6.4} {:>9.4}",
            p.time_ps,
            p.ns,
            p.wall_seconds,
            p.energy_w2,
            p.torus_w2,
            p.basin_error
        );
    }
    if let Some(m) = marks {
        match reached {
            Some(p) => bgen_system::show!(
                "MD reaches E-W2 {:.3}, T-W2 {:.3}, basin error {:.3} at {:.3} ns ({:.1} s)",
                m[0],
                m[1],
                m[2],
                p.ns,
                p.wall_seconds
            ),
            None => bgen_system::show!(
                "MD does not reach E-W2 {:.3}, T-W2 {:.3}, basin error {:.3} within the run",
                m[0],
                m[1],
                m[2]
            ),
        }
    }
    crate::plots::curve_plot(&a.out.join("curve.png"), &curve, marks)?;
    let json = serde_json::json!({
        "run": a.samples.display().to_string(),
        "wall_seconds": wall,
        "points": curve,
        "scores": marks,
        "reached": reached,
    });
    let text = serde_json::to_string_pretty(&json).context("curve.json")?;
    write_atomic(&a.out.join("curve.json"), text.as_bytes())?;
    Ok(())
}
