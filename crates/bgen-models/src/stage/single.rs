//! One molecule's training run: its frames (with raised-temperature extras), a model of the
//! preset in Cartesian or internal coordinates, and the run's record.

use super::{
    arbg_sized, data_system, overrides, prepare_trainer, preset, Job, Rows, RunInfo, TrainArgs,
};
use crate::data::Normalizer;
use crate::internal::Internal;
use crate::train::{OptimConfig, Trainer};
use crate::{Coords, Family, ModelConfig, Result};
use bgen_system::bail;
use bgen_system::error::Context;
use tch::{Kind, Tensor};

/// The trainer and rows of one molecule's run on `a.data`.
pub(super) fn prepare(a: &TrainArgs, dev: tch::Device) -> Result<Job> {
    if a.raised_rungs > 0 {
        bail!(
            "--raised-rungs: for a transferable model on a merged data set; one molecule's raised \
             rungs come with --extra-data RUN"
        );
    }
    for (set, flag) in [
        (a.temperature_label, "--temperature-label"),
        (a.sequence_label, "--sequence-label"),
        (a.oversample.is_some(), "--oversample"),
    ] {
        if set {
            bail!("{flag}: for a transferable model (on a merged data set, or with --init)");
        }
    }
    if a.kl_weight.is_some_and(|w| w > 0.0) {
        bail!("--kl-weight: for a transferable TarFlow (on a merged data set, or with --init)");
    }
    let (train_x, val_x, na) = single_frames(a)?;
    let d = 3 * na;
    let counts = (train_x.len() / d, val_x.len() / d);
    for input in std::iter::once(&a.data).chain(&a.extra_data) {
        bgen_system::outdir::refuse_same(input, &a.out, "training data")?;
    }
    let lock = bgen_system::outdir::lock_dir(&a.out)?;
    let (trainer, preset_name) = prepare_trainer(
        a,
        dev,
        counts,
        |_, _| Ok(()),
        |preset| fresh(a, dev, preset, &train_x, na, counts),
    )?;
    let norm = &trainer.state.normalizer;
    if norm.n_atoms as usize != na {
        bail!(
            "{}: frames have {na} atoms, the run's model {}",
            a.data.display(),
            norm.n_atoms
        );
    }
    let train = trainer.state.features(&train_x).to_device(dev);
    let val = trainer.state.features(&val_x).to_device(dev);
    let tc = &trainer.state.train;
    bgen_system::say!(
        "{} ({}): {} training / {} validation frames of {na} atoms, std {:.4} nm; {} steps of {}",
        trainer.state.model.describe(),
        preset_name,
        counts.0,
        counts.1,
        norm.std,
        tc.steps,
        tc.batch_size
    );
    if let ModelConfig::Arbg(c) = &trainer.state.model {
        bgen_system::say!(
            "frames with a coordinate outside +-{} std (before augmentation): training {:.2e}, validation {:.2e}",
            c.range,
            outside(&train, c.range),
            outside(&val, c.range)
        );
    }
    Ok(Job {
        trainer,
        rows: Rows {
            train,
            train_labels: None,
            pool: None,
            val,
            val_labels: None,
        },
        by_energy: Vec::new(),
        counts,
        _lock: lock,
    })
}

/// The fraction of rows of `x` with a coordinate beyond +-`range` (an ArBG's bins).
fn outside(x: &Tensor, range: f64) -> f64 {
    f64::try_from(
        x.abs()
            .gt(range)
            .any_dims([1].as_slice(), false)
            .to_kind(Kind::Double)
            .mean(Kind::Double),
    )
    .unwrap_or(f64::NAN)
}

/// A new model of `preset` for `na` atoms in `a.coords`, with its normaliser (and internal
/// coordinates' standards) fitted to `train_x`, and its record; the data's topology is copied
/// into the run.
fn fresh(
    a: &TrainArgs,
    dev: tch::Device,
    preset_name: &str,
    train_x: &[f64],
    na: usize,
    counts: (usize, usize),
) -> Result<(Trainer, RunInfo)> {
    let family = a.model.unwrap_or_default();
    let coords = a.coords.unwrap_or_default();
    let (model, mut tc) = model_of(a, family, coords, preset_name, na)?;
    overrides(&mut tc, a, 0);
    let (system, forcefield, temperature_k) = match (&a.system, data_system(&a.data)) {
        (Some(s), _) => {
            let sys = bgen_system::System::named(s, None, None)?;
            let ff = sys.params.setup.name().to_string();
            (s.clone(), ff, sys.temperature)
        }
        (None, Some(t)) => t,
        (None, None) => bail!(
            "{}: cannot tell which system the frames are; pass --system",
            a.data.display()
        ),
    };
    let info = RunInfo {
        model: family,
        preset: preset_name.to_string(),
        system,
        forcefield,
        temperature_k,
        data: std::iter::once(&a.data)
            .chain(&a.extra_data)
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        n_train: counts.0,
        n_val: counts.1,
        coords,
    };
    for t in [a.data.join("topology.pdb"), a.data.join("../topology.pdb")] {
        if t.exists() {
            std::fs::copy(&t, a.out.join("topology.pdb"))
                .with_context(|| format!("copying {}", t.display()))?;
            break;
        }
    }
    let mut t = Trainer::new(model, tc, Normalizer::fit(train_x, na), dev);
    if coords == Coords::Internal {
        let sys = bgen_system::System::recorded(
            &info.system,
            &a.out.join("topology.pdb"),
            bgen_system::Setup::from_name(&info.forcefield)?,
            info.temperature_k,
        )?;
        if sys.n_atoms() != na {
            bail!(
                "{}: frames have {na} atoms, {} has {}",
                a.data.display(),
                sys.name,
                sys.n_atoms()
            );
        }
        let z = bgen_system::ZMatrix::from_topology(&sys.topology)?;
        t.state.internal = Some(Internal::fit(train_x, &z));
    }
    Ok((t, info))
}

/// The model and optimiser of `preset` for `na` atoms of `family` in `coords`, with the command
/// line's token layout and bins.
fn model_of(
    a: &TrainArgs,
    family: Family,
    coords: Coords,
    preset_name: &str,
    na: usize,
) -> Result<(ModelConfig, OptimConfig)> {
    let n = na as i64;
    let internal = coords == Coords::Internal;
    Ok(match family {
        Family::Tarflow => {
            let (mut m, tc) = preset(preset_name, n)?;
            // Internal: N - 2 tokens of (b, theta, phi), the first three atoms' (b1, b2,
            // theta2) together.
            (m.tokens, m.token_dim) = match (internal, a.per_coordinate) {
                (false, false) => (n, 3),
                (false, true) => (3 * n, 1),
                (true, false) => (n - 2, 3),
                (true, true) => (3 * n - 6, 1),
            };
            (m.into(), tc)
        }
        Family::Arbg => {
            // Internal: tokens of 3, (b1, b2, theta2), then (b, theta, phi) per atom from the
            // fourth.
            let atoms = if internal { n - 2 } else { n };
            let (m, tc) = arbg_sized(a, preset_name, atoms, internal)?;
            (m.into(), tc)
        }
    })
}

/// One molecule's frames: training (with `--extra-data`'s raised-temperature frames) and
/// validation (a sibling `val/`, else the last 10%), nm, and the atom count.
fn single_frames(a: &TrainArgs) -> Result<(Vec<f64>, Vec<f64>, usize)> {
    let frames = bgen_md::dataset::load_run_temperature(&a.data)?;
    let na = frames.n_atoms;
    let d = 3 * na;
    let val_dir = a
        .data
        .parent()
        .map(|p| p.join("val"))
        .filter(|p| p.join("frames.npy").exists() && a.data.is_dir());
    let (train_x, val_x): (Vec<f64>, Vec<f64>) = match &val_dir {
        Some(v) if v != &a.data => (
            frames.x.clone(),
            bgen_md::dataset::load_run_temperature(v)?.x,
        ),
        _ => {
            let n = frames.len();
            let cut = n - (n / 10).max(1);
            (frames.x[..cut * d].to_vec(), frames.x[cut * d..].to_vec())
        }
    };
    let mut train_x = train_x;
    for extra in &a.extra_data {
        let f = bgen_md::dataset::load_raised_temperatures(extra)?;
        if f.n_atoms != na {
            bail!(
                "{}: frames have {} atoms, {} has {na}",
                extra.display(),
                f.n_atoms,
                a.data.display()
            );
        }
        train_x.extend_from_slice(&f.x);
    }
    let n_train = train_x.len() / d;
    if n_train < 2 {
        bail!(
            "{}: {n_train} training frames are too few",
            a.data.display()
        );
    }
    Ok((train_x, val_x, na))
}
