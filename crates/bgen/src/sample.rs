//! `bgen sample`: draw from a trained model and correct toward the Boltzmann density
//! (proposal only, SNIS or SMC).

use crate::train::{device, RunInfo};
use anyhow::{bail, Context, Result};
use bgen_models::proposal::FlowProposal;
use bgen_models::train::Trainer;
use bgen_sample::resample::Scheme;
use bgen_sample::{smc, snis, Proposal, SmcOptions, SnisOptions};
use bgen_system::npy::{write_atomic, write_npy};
use bgen_system::{Setup, System, Target};
use clap::Args;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;
use tch::Kind;

#[derive(Args)]
pub struct SampleArgs {
    /// Training run directory (from `bgen train`).
    #[arg(long)]
    run: PathBuf,
    /// Number of samples (particles for SMC).
    #[arg(long, default_value_t = 10_000)]
    n: usize,
    /// proposal, snis or smc.
    #[arg(long, default_value = "snis")]
    method: String,
    /// Output directory: samples.npy, log_q.npy, energies.npy, log_weights.npy, summary.json.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// SNIS: fraction of the largest log-weights dropped.
    #[arg(long, default_value_t = 0.002)]
    drop_top: f64,
    /// SNIS: samples with a target energy above this (kT) get zero weight.
    #[arg(long)]
    energy_cutoff: Option<f64>,
    /// SMC: annealing levels.
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// SMC: Langevin step size, nm^2 per kT.
    #[arg(long, default_value_t = 1e-6)]
    step_size: f64,
    /// SMC: Metropolis-adjust the moves (MALA) and adapt the step size.
    #[arg(long)]
    mala: bool,
    /// SMC: resample when the normalised ESS falls below this.
    #[arg(long, default_value_t = 0.5)]
    ess_threshold: f64,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long, default_value_t = 1)]
    threads: i32,
    /// Use the raw weights instead of their moving average.
    #[arg(long)]
    no_ema: bool,
    /// Samples per network pass.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
}

/// The flow with the centre-of-mass term: log q'(x) = log q(x) - log N(c; 0, std^2/N), so that
/// E_src = -log q' = -log q + A(x) as in Proposition 1 of the SBG paper. Behind a mutex, since
/// libtorch tensors are not shared between threads.
pub struct ComAdjusted(Mutex<FlowProposal>, usize);

impl Proposal for ComAdjusted {
    fn dim(&self) -> usize {
        self.1
    }
    fn sample(&self, n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let p = self.0.lock().expect("flow");
        let (x, mut lq) = p.sample(n, seed);
        let mut a = vec![0.0; n];
        p.com_log_density(&x, &mut a, None);
        lq.iter_mut().zip(&a).for_each(|(l, a)| *l -= a);
        (x, lq)
    }
    fn log_q(&self, x: &[f64], out: &mut [f64], mut grad: Option<&mut [f64]>) {
        let p = self.0.lock().expect("flow");
        p.log_q(x, out, grad.as_deref_mut());
        let mut a = vec![0.0; out.len()];
        // d(-A)/dx: accumulate the CoM gradient with the opposite sign.
        if let Some(g) = grad {
            g.iter_mut().for_each(|v| *v = -*v);
            p.com_log_density(x, &mut a, Some(g));
            g.iter_mut().for_each(|v| *v = -*v);
        } else {
            p.com_log_density(x, &mut a, None);
        }
        out.iter_mut().zip(&a).for_each(|(l, a)| *l -= a);
    }
}

/// The system and the CoM-adjusted flow proposal of a training run.
pub fn load_proposal(
    run: &Path,
    dev: tch::Device,
    batch: usize,
    ema: bool,
) -> Result<(System, ComAdjusted)> {
    let info_path = run.join("run.json");
    let info: RunInfo = serde_json::from_str(
        &std::fs::read_to_string(&info_path)
            .with_context(|| format!("{}: not a training run", info_path.display()))?,
    )
    .with_context(|| format!("{}: corrupt", info_path.display()))?;
    let setup = Setup::from_name(&info.forcefield)?;
    let sys = System::recorded(
        &info.system,
        &run.join("topology.pdb"),
        setup,
        info.temperature_k,
    )?;
    let trainer = Trainer::load(run, dev)?;
    let norm = trainer.state.normalizer.clone();
    if norm.n_atoms as usize != sys.n_atoms() {
        bail!(
            "{}: the model has {} atoms, {} has {}",
            run.display(),
            norm.n_atoms,
            sys.name,
            sys.n_atoms()
        );
    }
    let d = 3 * sys.n_atoms();
    let flow = FlowProposal {
        flow: trainer.into_flow(ema).context("not a TarFlow run")?,
        normalizer: norm,
        device: dev,
        kind: Kind::Float,
        batch,
    };
    Ok((sys, ComAdjusted(Mutex::new(flow), d)))
}

pub fn run(a: SampleArgs) -> Result<()> {
    tch::set_num_threads(a.threads);
    let dev = device(&a.device)?;
    let (sys, proposal) = load_proposal(&a.run, dev, a.batch, !a.no_ema)?;
    std::fs::create_dir_all(&a.out).with_context(|| a.out.display().to_string())?;
    let t0 = Instant::now();
    let na = sys.n_atoms();
    let mut summary = serde_json::Map::new();
    summary.insert("method".into(), a.method.clone().into());
    summary.insert("n".into(), a.n.into());
    let (x, energies, log_w) = match a.method.as_str() {
        "proposal" | "snis" => {
            let (x, lq) = proposal.sample(a.n, a.seed);
            let mut e = vec![0.0; a.n];
            sys.energy_and_grad(&x, &mut e, None);
            write_npy(&a.out.join("log_q.npy"), &[a.n], &lq, false)?;
            let src: Vec<f64> = lq.iter().map(|v| -v).collect();
            let r = snis(
                &src,
                &e,
                SnisOptions {
                    drop_top: if a.method == "snis" { a.drop_top } else { 0.0 },
                    energy_cutoff: None,
                },
            );
            summary.insert("ess".into(), r.ess.into());
            summary.insert("log_z".into(), r.log_z.into());
            summary.insert("dropped_top".into(), r.dropped_top.into());
            summary.insert("dropped_energy".into(), r.dropped_energy.into());
            summary.insert("energy_evaluations".into(), a.n.into());
            summary.insert("model_evaluations".into(), a.n.into());
            let lw = if a.method == "snis" {
                Some(r.log_weights)
            } else {
                None
            };
            (x, e, lw)
        }
        "smc" => {
            let o = SmcOptions {
                steps: a.steps,
                moves_per_step: 1,
                step_size: a.step_size,
                mala: a.mala,
                ess_threshold: a.ess_threshold,
                scheme: Scheme::Systematic,
                seed: a.seed,
                ..Default::default()
            };
            let r = smc(&proposal, &sys, a.n, o);
            summary.insert("ess".into(), r.ess.into());
            summary.insert("log_z".into(), r.log_z.into());
            summary.insert("acceptance".into(), r.acceptance.into());
            summary.insert("resamplings".into(), r.resamplings.into());
            summary.insert("final_step_size".into(), r.final_step_size.into());
            summary.insert("energy_evaluations".into(), r.energy_evaluations.into());
            summary.insert("model_evaluations".into(), r.model_evaluations.into());
            summary.insert("model_seconds".into(), r.model_seconds.into());
            summary.insert("energy_seconds".into(), r.energy_seconds.into());
            summary.insert("particle_steps_per_s".into(), r.particle_steps_per_s.into());
            (r.x, r.energies, None)
        }
        other => bail!("unknown --method '{other}' (proposal, snis, smc)"),
    };
    // Mirror images (all chiral centres inverted) are reflected back; the energy is unchanged.
    let mut x = x;
    let centres = sys.topology.chiral_centres();
    let mirrored = bgen_system::topology::fix_mirror_images(&mut x, na, &centres, &sys.positions);
    summary.insert("mirrored".into(), mirrored.into());
    write_npy(&a.out.join("samples.npy"), &[a.n, na, 3], &x, true)?;
    write_npy(&a.out.join("energies.npy"), &[a.n], &energies, false)?;
    if let Some(lw) = &log_w {
        write_npy(&a.out.join("log_weights.npy"), &[a.n], lw, false)?;
    }
    summary.insert("wall_seconds".into(), t0.elapsed().as_secs_f64().into());
    let text = serde_json::to_string_pretty(&summary)?;
    write_atomic(&a.out.join("summary.json"), text.as_bytes())?;
    println!("{text}");
    Ok(())
}
