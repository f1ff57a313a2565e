//! A transferable TarFlow's training run on a merged many-peptide data set (`bgen dataset
//! merge`), or fine-tuned from `--init`: each molecule in its own internal coordinates,
//! standardised per class ([`crate::transfer`]), batches mixing molecules; the last 10% of each
//! molecule's frames validate.

use super::{
    data_system, init_dir, merged_dataset, overrides, prepare_trainer, preset, Job, Rows, RunInfo,
    Start, TrainArgs,
};
use crate::kl::KlMolecule;
use crate::tarflow::{temperature_feature, Conditioning, Labels};
use crate::train::{State, Trainer};
use crate::transfer::{load_dataset, rows, Molecule, Standards, ValidationSplit};
use crate::{Coords, Family, ModelConfig, Result};
use bgen_system::bail;
use bgen_system::error::Context;
use bgen_system::peptide::identity;
use std::path::Path;
use tch::Tensor;

/// Tokens a transferable model makes room for beyond the largest training molecule's, so that
/// it can sample somewhat larger molecules zero-shot.
pub const TRANSFER_HEADROOM: i64 = 8;
/// How a new transferable model's Z-matrices close rings: from both neighbours (a perturbation of
/// 5% of each coordinate's spread strains PW by 0.58 kT (median) this way, 1.09 kT along the
/// chain; KW 1.00 against 1.33).
pub const TRANSFER_RING_CLOSURE: bgen_system::RingClosure = bgen_system::RingClosure::Both;

/// Largest residue index plus one (and molecule length) a transferable model embeds.
pub const TRANSFER_MAX_RESIDUES: i64 = 16;

/// One molecule's frames, nm: for training rung by rung (temperature K and frames: the target
/// temperature's first 90% of time, then its raised rungs' over the same time), and for
/// validation (the last 10% of time at the target temperature).
struct Split {
    train: Vec<(f64, Vec<f64>)>,
    val: Vec<f64>,
}

/// The trainer and labelled rows of a transferable run on `a.data`.
pub(super) fn prepare(a: &TrainArgs, dev: tch::Device) -> Result<Job> {
    refuse_options(a)?;
    let earlier = earlier_state(a)?;
    refuse_new_label(a, earlier.as_ref())?;
    // Rings close as the model was trained to close them (a new one's from both neighbours).
    let rings = earlier
        .as_ref()
        .and_then(|s| s.transfer.as_ref())
        .map_or(TRANSFER_RING_CLOSURE, |t| t.ring_closure);
    let raised = raised_rungs(a, earlier.as_ref())?;
    let (mols, data_crc) = molecules(a, rings, raised)?;
    if a.oversample.is_some() && mols.len() < 2 {
        bail!("--oversample: for a data set of several molecules (one molecule's epoch would only grow)");
    }
    let listed = (a.oversample.as_ref())
        .map(|file| read_oversample(file, &mols))
        .transpose()?;
    bgen_system::outdir::refuse_same(&a.data, &a.out, "training data")?;
    let lock = bgen_system::outdir::lock_dir(&a.out)?;
    let scheme = validation_split(a, earlier.as_ref());
    let parts: Vec<Split> = mols.iter().map(|m| split(m, scheme)).collect();
    // Training (false) or validation (true) frames over all molecules.
    let n_frames = |val: bool| -> usize {
        let frames = |(p, m): (&Split, &Molecule)| {
            let values = match val {
                true => p.val.len(),
                false => p.train.iter().map(|r| r.1.len()).sum(),
            };
            values / (3 * m.system.n_atoms())
        };
        parts.iter().zip(&mols).map(frames).sum()
    };
    let counts = (n_frames(false), n_frames(true));
    if counts.0 == 0 {
        bail!(
            "{}: no training frames: every molecule's frames fall in its last tenth of time, \
             which validates (give it longer MD)",
            a.data.display()
        );
    }
    let (mut trainer, preset_name) = prepare_trainer(
        a,
        dev,
        counts,
        |t, start| {
            adopt(t, start, a, &mols, data_crc)?;
            // The raised rungs and the split it trains on from here (a run from before the
            // records gets them).
            if let Some(transfer) = t.state.transfer.as_mut() {
                transfer.raised_rungs = Some(raised);
                transfer.validation = Some(scheme);
            }
            Ok(())
        },
        |preset| fresh(a, dev, preset, &mols, &parts, rings, data_crc, counts),
    )?;
    oversample(a, &mut trainer, listed)?;
    let Some((tokens, conditioning)) = trainer.state.model.transfer_capacity() else {
        bail!("{}: not a transferable model", a.out.display());
    };
    for m in &mols {
        crate::transfer::check_fits(&m.system, tokens, Some(conditioning))
            .map_err(|e| format!("{}: {e}", m.name))?;
    }
    let rows = labelled_rows(&trainer, &mols, &parts, tokens, dev)?;
    let oversampled = (rows.pool.as_ref())
        .map(|p| format!(" (an epoch draws {} of them: --oversample)", p.len()))
        .unwrap_or_default();
    bgen_system::say!(
        "transferable {} ({preset_name}): {} molecules, {} training{oversampled} / {} validation frames (NLL on {}), up to {} tokens; {} steps of {}",
        trainer.state.model.describe(),
        mols.len(),
        counts.0,
        counts.1,
        rows.val.size()[0],
        tokens,
        trainer.state.train.steps,
        trainer.state.train.batch_size
    );
    let by_energy = by_energy(&trainer, mols, tokens)?;
    Ok(Job {
        trainer,
        rows,
        by_energy,
        counts,
        _lock: lock,
    })
}

/// The molecules of training by energy ([`crate::kl`]), when the run has a weight for it: each
/// training molecule at the model's temperature, its typical energy from its first frames.
fn by_energy(trainer: &Trainer, mols: Vec<Molecule>, tokens: i64) -> Result<Vec<KlMolecule>> {
    if trainer.state.train.kl_weight <= 0.0 {
        return Ok(Vec::new());
    }
    if !matches!(trainer.state.model, ModelConfig::TarFlow(_)) {
        bail!("--kl-weight: for a transferable TarFlow (an ArBG's draws are not differentiable)");
    }
    let transfer = trainer.state.transfer.as_ref().expect("a transferable run");
    let out = mols
        .into_iter()
        .map(|m| {
            let (internal, _) = transfer.standards.internal(&m.system, &m.zmatrix);
            let labels = crate::transfer::padded_labels(&m.system, &m.zmatrix, tokens);
            let dx = 3 * m.system.n_atoms();
            let few = &m.frames[..(KL_TYPICAL_FRAMES * dx).min(m.frames.len())];
            KlMolecule::new(&m.name, m.system, m.zmatrix, internal, labels, few)
        })
        .collect();
    Ok(out)
}

/// Frames per molecule whose mean energy is its typical one in training by energy.
const KL_TYPICAL_FRAMES: usize = 32;

/// Refuses the options of single-molecule training (they take effect there).
fn refuse_options(a: &TrainArgs) -> Result<()> {
    if a.coords.is_some_and(|c| c != Coords::Internal) || a.per_coordinate {
        bail!("a transferable model works in each molecule's internal coordinates, one token per atom");
    }
    for (k, given) in [
        (
            "--extra-data (raised rungs come with --raised-rungs)",
            !a.extra_data.is_empty(),
        ),
        (
            "--system (each molecule's comes with its data)",
            a.system.is_some(),
        ),
        (
            "--bins (an ArBG's)",
            a.bins.is_some() && a.model != Some(Family::Arbg),
        ),
        (
            "--range (an ArBG's)",
            a.range.is_some() && a.model != Some(Family::Arbg),
        ),
    ] {
        if given {
            bail!("{k}: not an option of a transferable model");
        }
    }
    Ok(())
}

/// The state of the run a training run continues, read once before the data: the resumed run's
/// or the fine-tuned model's (none for a new model).
fn earlier_state(a: &TrainArgs) -> Result<Option<State>> {
    let dir = match (a.resume, &a.init) {
        (true, _) => a.out.clone(),
        (false, Some(init)) => init_dir(init),
        (false, None) => return Ok(None),
    };
    Ok(Some(Trainer::load_state(&dir)?))
}

/// A resumed run keeps its conditioning: `--temperature-label` and `--sequence-label` are
/// refused for a run started without them.
fn refuse_new_label(a: &TrainArgs, earlier: Option<&State>) -> Result<()> {
    let Some(k) = earlier
        .filter(|_| a.resume)
        .and_then(|s| s.model.transfer_capacity().map(|(_, k)| k.clone()))
    else {
        return Ok(());
    };
    for (asked, has, flag) in [
        (a.temperature_label, k.temperature, "--temperature-label"),
        (a.sequence_label, k.sequence, "--sequence-label"),
    ] {
        if asked && !has {
            bail!(
                "{flag}: {} was started without it; start a new run (--init {} adds it)",
                a.out.display(),
                a.out.display()
            );
        }
    }
    Ok(())
}

/// Sets the run's `--oversample` draws per molecule: a resume keeps the run's (another file's
/// are refused), any other run takes the file's or none (a fine-tune does not inherit its
/// `--init` run's, whose molecules may not be in its data).
fn oversample(
    a: &TrainArgs,
    trainer: &mut Trainer,
    listed: Option<std::collections::BTreeMap<String, u32>>,
) -> Result<()> {
    let transfer = trainer.state.transfer.as_mut().expect("a transferable run");
    let given = match listed {
        Some(map) => map,
        None if a.resume => return Ok(()),
        None => Default::default(),
    };
    if a.resume && given != transfer.oversample {
        let list = |m: &std::collections::BTreeMap<String, u32>| match m.is_empty() {
            true => "none".to_string(),
            false => (m.iter().map(|(n, d)| format!("{n} {d}")))
                .collect::<Vec<_>>()
                .join(", "),
        };
        bail!(
            "{}: --resume with other settings than the run's: --oversample {} lists other \
             draws ({}) than the run's ({}); drop it, or start a run with new draws (--init {})",
            a.out.display(),
            a.oversample.as_ref().expect("given").display(),
            list(&given),
            list(&transfer.oversample),
            a.out.display()
        );
    }
    transfer.oversample = given;
    Ok(())
}

/// The `--oversample` file: `NAME DRAWS` per line, every name a training molecule's.
fn read_oversample(
    file: &Path,
    mols: &[Molecule],
) -> Result<std::collections::BTreeMap<String, u32>> {
    let text = std::fs::read_to_string(file).with_context(|| file.display().to_string())?;
    let mut out = std::collections::BTreeMap::new();
    for (k, line) in bgen_system::options::list_lines(&text) {
        let at = || format!("{} line {k}", file.display());
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, draws] = fields[..] else {
            bail!("{}: expected NAME DRAWS, got '{line}'", at());
        };
        let draws: u32 = match draws.parse() {
            Ok(d) if (1..=MAX_OVERSAMPLE).contains(&d) => d,
            _ => bail!(
                "{}: draws '{draws}' is not a whole number from 1 to {MAX_OVERSAMPLE}",
                at()
            ),
        };
        if !mols.iter().any(|m| m.name == name) {
            bail!("{}: {name} is not a training molecule of the data", at());
        }
        if out.insert(name.to_string(), draws).is_some() {
            bail!("{}: {name} is listed twice", at());
        }
    }
    Ok(out)
}

/// Most draws per epoch of one frame (`--oversample`).
const MAX_OVERSAMPLE: u32 = 100;

/// The raised rungs each molecule trains on: a resumed run's own (`--raised-rungs` may be left
/// out, and another count is refused; a run from before they were recorded takes the option),
/// else the option's.
fn raised_rungs(a: &TrainArgs, earlier: Option<&State>) -> Result<usize> {
    let saved = earlier
        .filter(|_| a.resume)
        .and_then(|s| s.transfer.as_ref())
        .and_then(|t| t.raised_rungs);
    match saved {
        Some(r) if a.raised_rungs != 0 && a.raised_rungs != r => bail!(
            "{}: --resume with other settings than the run's: --raised-rungs {} (the run has \
             {r}); drop it or train into another --out",
            a.out.display(),
            a.raised_rungs
        ),
        Some(r) => Ok(r),
        None => Ok(a.raised_rungs),
    }
}

/// The training molecules of `a.data` (a merged data set, or one molecule's MD run), with the
/// data set's dataset.json CRC.
fn molecules(
    a: &TrainArgs,
    rings: bgen_system::RingClosure,
    raised: usize,
) -> Result<(Vec<Molecule>, Option<u32>)> {
    let (mols, crc) = match merged_dataset(&a.data) {
        Some(file) => {
            let bytes = std::fs::read(&file).with_context(|| file.display().to_string())?;
            let crc = bgen_system::manifest::crc32(&bytes);
            let mols = load_dataset(&file, false, rings, raised)?;
            (mols, Some(crc))
        }
        None => (vec![one_molecule(&a.data, rings, raised)?], None),
    };
    if mols.is_empty() {
        bail!("{}: no training molecules", a.data.display());
    }
    Ok((mols, crc))
}

/// A resumed run's split (a run from before the record split by frames); any other run
/// splits by time.
fn validation_split(a: &TrainArgs, earlier: Option<&State>) -> ValidationSplit {
    match earlier
        .filter(|_| a.resume)
        .and_then(|s| s.transfer.as_ref())
    {
        Some(t) => t.validation.unwrap_or(ValidationSplit::LastFrames),
        None => ValidationSplit::LastTime,
    }
}

/// A molecule's training and validation frames. Split in time ([`ValidationSplit::LastTime`]):
/// validation is its last 10% of simulated time at the target temperature (of every ladder of
/// a replica exchange at once), training everything before that, raised rungs included; raised
/// rungs over the validation time are left out, as exchanges tie them to the validation frames.
fn split(m: &Molecule, scheme: ValidationSplit) -> Split {
    let d = 3 * m.system.n_atoms();
    if scheme == ValidationSplit::LastFrames {
        let n = m.frames.len() / d;
        let cut = n - validated(n);
        let mut train = vec![(m.system.temperature, m.frames[..cut * d].to_vec())];
        train.extend(m.raised.iter().map(|r| (r.temperature_k, r.x.clone())));
        return Split {
            train,
            val: m.frames[cut * d..].to_vec(),
        };
    }
    let cut = validation_start(&m.time_ps);
    let pick = |x: &[f64], time_ps: &[f64], val: bool| -> Vec<f64> {
        (time_ps.iter().enumerate())
            .filter(|&(_, &t)| (t >= cut) == val)
            .flat_map(|(i, _)| x[i * d..(i + 1) * d].iter().copied())
            .collect()
    };
    let mut train = vec![(m.system.temperature, pick(&m.frames, &m.time_ps, false))];
    train.extend((m.raised.iter()).map(|r| (r.temperature_k, pick(&r.x, &r.time_ps, false))));
    Split {
        train,
        val: pick(&m.frames, &m.time_ps, true),
    }
}

/// The time (ps) from which a trajectory's frames validate: the last tenth of the frames (at
/// least one), counted over all its ladders, whose clocks agree.
fn validation_start(time_ps: &[f64]) -> f64 {
    let mut t = time_ps.to_vec();
    t.sort_by(f64::total_cmp);
    t.get(t.len() - validated(t.len()))
        .copied()
        .unwrap_or(f64::INFINITY)
}

/// How many of `n` frames validate: a tenth, at least one (none of none).
fn validated(n: usize) -> usize {
    (n / 10).max(1).min(n)
}

/// Checks an earlier model against the molecules before it trains on them. Resumed: the same
/// molecules and data set as when its run started. Fine-tuned: their force field and
/// temperature are the model's, and they join what it was trained on.
fn adopt(
    t: &mut Trainer,
    start: &Start,
    a: &TrainArgs,
    mols: &[Molecule],
    data_crc: Option<u32>,
) -> Result<()> {
    let Some(transfer) = t.state.transfer.as_mut() else {
        match start {
            Start::FineTune(init) => bail!("--init {}: not a transferable model", init.display()),
            _ => bail!("{}: not a transferable run", a.out.display()),
        }
    };
    let Start::FineTune(init) = start else {
        return check_same_data(transfer, a, mols, data_crc);
    };
    for m in mols {
        // Its labels index its force field's atom types and templates.
        let ff = m.system.params.setup.name();
        if ff != transfer.forcefield {
            bail!(
                "--init {}: a model of {}, and {} was simulated in {ff}; fine-tune on data of \
                 the model's force field",
                init.display(),
                transfer.forcefield,
                m.name
            );
        }
        // Its standards and weights are of its temperature's ensemble.
        if (m.system.temperature - transfer.temperature_k).abs() > 1e-6 {
            bail!(
                "--init {}: a model of {} K, and {} was simulated at {} K; fine-tune on data at \
                 the model's temperature",
                init.display(),
                transfer.temperature_k,
                m.name,
                m.system.temperature
            );
        }
    }
    for m in mols {
        let id = identity(&m.system.topology);
        if !transfer.trained_on.contains(&id) {
            transfer.trained_on.push(id);
        }
    }
    transfer.data_crc = data_crc;
    Ok(())
}

/// A resumed run trains on the molecules and data set it started with: a data set merged again
/// with another split would leak held-out peptides into it unrecorded, and the same names can
/// hold other frames. Its data hold no molecule it has not seen (a fine-tuned run has seen
/// more than its data).
fn check_same_data(
    transfer: &crate::train::Transfer,
    a: &TrainArgs,
    mols: &[Molecule],
    data_crc: Option<u32>,
) -> Result<()> {
    let ids: Vec<String> = mols.iter().map(|m| identity(&m.system.topology)).collect();
    let mut now: Vec<&str> = ids.iter().map(|s| s.as_str()).collect();
    let mut then: Vec<&str> = transfer.trained_on.iter().map(|s| s.as_str()).collect();
    now.sort_unstable();
    then.sort_unstable();
    // A fine-tuned run has seen more than its data (the model it started from saw the rest);
    // its data are checked by path (and a merged set's by checksum) below and in check_resume.
    if now.iter().any(|n| !then.contains(n)) {
        let list = |a: &[&str], b: &[&str]| {
            let only: Vec<&str> = a.iter().filter(|n| !b.contains(n)).copied().collect();
            if only.is_empty() {
                "none".to_string()
            } else {
                only.join(",")
            }
        };
        bail!(
            "{}: the run trains on other molecules than {} holds now (new: {}; missing: {}); \
             resume on the data it started with, or start a new run (--init {} fine-tunes it on \
             new data)",
            a.out.display(),
            a.data.display(),
            list(&now, &then),
            list(&then, &now),
            a.out.display()
        );
    }
    if let (Some(then), Some(now)) = (transfer.data_crc, data_crc) {
        if then != now {
            bail!(
                "{}: the run started on another {} (merged again since: its dataset.json \
                 changed); resume on the data it started with, or start a new run",
                a.out.display(),
                a.data.display()
            );
        }
    }
    Ok(())
}

/// A new transferable TarFlow of `preset`, with room for the largest molecule plus
/// [`TRANSFER_HEADROOM`] tokens, labels over its force field's atom types and templates, and
/// per-class standards fitted to the training frames; and its record.
#[allow(clippy::too_many_arguments)]
fn fresh(
    a: &TrainArgs,
    dev: tch::Device,
    preset_name: &str,
    mols: &[Molecule],
    parts: &[Split],
    rings: bgen_system::RingClosure,
    data_crc: Option<u32>,
    counts: (usize, usize),
) -> Result<(Trainer, RunInfo)> {
    let setup = mols[0].system.params.setup;
    let largest = mols.iter().map(|m| m.system.n_atoms() as i64 - 2).max();
    let tokens = largest.unwrap_or(1) + TRANSFER_HEADROOM;
    let conditioning = Some(Conditioning {
        temperature: a.temperature_label,
        sequence: a.sequence_label,
        ..Conditioning::of(setup, TRANSFER_MAX_RESIDUES)
    });
    let family = a.model.unwrap_or(Family::Tarflow);
    let (m, mut tc): (ModelConfig, _) = match family {
        Family::Tarflow => {
            let (mut m, tc) = preset(preset_name, tokens)?;
            m.conditioning = conditioning;
            (m.into(), tc)
        }
        Family::Arbg => {
            // Tokens of 3 per placed atom, as the TarFlow's.
            let (mut m, tc) = super::arbg_sized(a, preset_name, tokens, true)?;
            m.conditioning = conditioning;
            (m.into(), tc)
        }
    };
    overrides(&mut tc, a, 0);
    let fit: Vec<(&bgen_system::System, &bgen_system::ZMatrix, &[f64])> = mols
        .iter()
        .zip(parts)
        .flat_map(|(m, p)| {
            p.train
                .iter()
                .map(|r| (&m.system, &m.zmatrix, r.1.as_slice()))
        })
        .collect();
    let norm = crate::data::Normalizer {
        n_atoms: tokens + 2,
        std: 1.0,
    };
    let temperature_k = mols[0].system.temperature;
    let mut t = Trainer::new(m, tc, norm, dev);
    t.state.transfer = Some(crate::train::Transfer {
        standards: Standards::fit(&fit),
        forcefield: setup.name().into(),
        temperature_k,
        trained_on: mols.iter().map(|m| identity(&m.system.topology)).collect(),
        ring_closure: rings,
        data_crc,
        raised_rungs: Some(a.raised_rungs),
        validation: Some(ValidationSplit::LastTime),
        oversample: Default::default(),
    });
    let info = RunInfo {
        model: family,
        preset: preset_name.to_string(),
        system: "transferable".into(),
        forcefield: setup.name().into(),
        temperature_k,
        data: a.data.display().to_string(),
        n_train: counts.0,
        n_val: counts.1,
        coords: Coords::Internal,
    };
    Ok((t, info))
}

/// Every molecule's training and validation frames as rows of `tokens` tokens in the model's
/// standardised internal coordinates, with their labels (each training frame's temperature its
/// rung's); the validation rows cut to [`validation_rows`].
fn labelled_rows(
    trainer: &Trainer,
    mols: &[Molecule],
    parts: &[Split],
    tokens: i64,
    dev: tch::Device,
) -> Result<Rows> {
    let transfer = trainer.state.transfer.as_ref().expect("a transferable run");
    let binned = match &trainer.state.model {
        ModelConfig::Arbg(c) => Some(c.range),
        ModelConfig::TarFlow(_) => None,
    };
    let (mut xt, mut lt, mut xv, mut lv) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Each molecule's training rows and the draws per epoch of each.
    let mut draws: Vec<(i64, u32)> = Vec::new();
    for (m, p) in mols.iter().zip(parts) {
        let (internal, _) = transfer.standards.internal(&m.system, &m.zmatrix);
        let d = transfer.oversample.get(&m.name).copied().unwrap_or(1);
        for (t_k, frames) in &p.train {
            let feature = temperature_feature(*t_k, transfer.temperature_k);
            let (x, l) = rows(m, &internal, frames, tokens, feature, binned)?;
            draws.push((x.size()[0], d));
            xt.push(x);
            lt.push(l);
        }
        let (x, l) = rows(m, &internal, &p.val, tokens, 0.0, binned)?;
        xv.push(x);
        lv.push(l);
    }
    let (val, val_l) = (Tensor::cat(&xv, 0).to_device(dev), Labels::cat(&lv).to(dev));
    let (val, val_labels) = validation_rows(&val, &val_l);
    Ok(Rows {
        train: Tensor::cat(&xt, 0).to_device(dev),
        train_labels: Some(Labels::cat(&lt).to(dev)),
        pool: pool(&draws),
        val,
        val_labels: Some(val_labels),
    })
}

/// The rows an epoch draws, from each consecutive group's (rows, draws per epoch): every row of
/// a group as often as it is drawn; none when every group is drawn once (an epoch is the rows).
fn pool(draws: &[(i64, u32)]) -> Option<Vec<i64>> {
    if draws.iter().all(|&(_, d)| d == 1) {
        return None;
    }
    let mut out = Vec::new();
    let mut first = 0;
    for &(n, d) in draws {
        for _ in 0..d {
            out.extend(first..first + n);
        }
        first += n;
    }
    Some(out)
}

/// The validation rows a transferable run scores at each checkpoint: at most `VALIDATION_ROWS`,
/// evenly spaced (rows come molecule by molecule, so every molecule keeps its share), ordered
/// by size so that each pass cuts its pads. The same rows every time, so NLLs compare.
fn validation_rows(x: &Tensor, l: &Labels) -> (Tensor, Labels) {
    let n = x.size()[0];
    let stride = (n + VALIDATION_ROWS - 1) / VALIDATION_ROWS;
    let tokens: Vec<i64> = Vec::try_from(&l.tokens).unwrap_or_default();
    let mut rows: Vec<i64> = (0..n).step_by(stride.max(1) as usize).collect();
    rows.sort_by_key(|&r| tokens.get(r as usize).copied().unwrap_or(0));
    let idx = Tensor::from_slice(&rows).to_device(x.device());
    (x.index_select(0, &idx), l.select(&idx))
}

/// Most validation rows of a transferable run (an NLL per dimension within about 0.003; the
/// same rows at every checkpoint, so differences between checkpoints are much finer).
const VALIDATION_ROWS: i64 = 2048;

/// One molecule's MD run (a `bgen md` directory or its data split) as a transferable model's
/// training molecule, named by its sequence.
fn one_molecule(
    data: &Path,
    rings: bgen_system::RingClosure,
    raised_rungs: usize,
) -> Result<Molecule> {
    let Some((_, forcefield, temperature)) = data_system(data) else {
        bail!(
            "{}: not an MD run (no run.json beside the frames)",
            data.display()
        );
    };
    let setup = bgen_system::Setup::from_name(&forcefield)?;
    let top = [data.join("topology.pdb"), data.join("../topology.pdb")]
        .into_iter()
        .find(|p| p.exists())
        .with_context(|| format!("{}: no topology.pdb", data.display()))?;
    let system = bgen_system::System::from_pdb_file(&top, setup, Some(temperature))?;
    let zmatrix = bgen_system::ZMatrix::from_topology_with(&system.topology, rings)?;
    let frames = bgen_md::dataset::load_run_temperature(data)?;
    let raised = crate::transfer::raised_frames(data, raised_rungs)?;
    let name = bgen_system::peptide::sequence(&system.topology);
    Ok(Molecule {
        name,
        system,
        zmatrix,
        frames: frames.x,
        time_ps: frames.time_ps,
        raised,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arbg::ArbgConfig;
    use crate::data::Normalizer;
    use crate::train::{OptimConfig, Transfer};

    /// The pool draws each group's rows as often as asked, in order; none when all are once.
    #[test]
    fn the_pool_repeats_each_group_as_often_as_drawn() {
        assert_eq!(pool(&[(3, 1), (2, 1)]), None);
        assert_eq!(
            pool(&[(2, 1), (2, 3), (1, 2)]),
            Some(vec![0, 1, 2, 3, 2, 3, 2, 3, 4, 4])
        );
    }

    /// The state of a tiny transferable ArBG, with or without the temperature label, trained
    /// on `raised` raised rungs.
    fn arbg_state(temperature: bool, raised: Option<usize>) -> State {
        let conditioning = Conditioning {
            atom_types: 4,
            residue_types: 3,
            max_residues: 4,
            temperature,
            sequence: false,
        };
        let config = ArbgConfig {
            atoms: 4,
            width: 16,
            layers: 1,
            head_dim: 8,
            bins: 8,
            range: 3.0,
            conditioning: Some(conditioning),
        };
        let norm = Normalizer {
            n_atoms: 6,
            std: 1.0,
        };
        let mut t = Trainer::new(config, OptimConfig::default(), norm, tch::Device::Cpu);
        t.state.transfer = Some(Transfer {
            standards: Standards::default(),
            forcefield: "amber14-obc1".into(),
            temperature_k: 310.0,
            trained_on: Vec::new(),
            ring_closure: TRANSFER_RING_CLOSURE,
            data_crc: None,
            raised_rungs: raised,
            validation: None,
            oversample: Default::default(),
        });
        t.state
    }

    /// A labelled ArBG resumes with `--temperature-label` (it was refused as unlabelled), an
    /// unlabelled one does not.
    #[test]
    fn a_resumed_arbg_keeps_its_temperature_label() {
        let a = TrainArgs {
            resume: true,
            temperature_label: true,
            ..Default::default()
        };
        assert!(refuse_new_label(&a, Some(&arbg_state(true, None))).is_ok());
        let err = refuse_new_label(&a, Some(&arbg_state(false, None))).unwrap_err();
        assert!(err.to_string().contains("was started without it"), "{err}");
        let a = TrainArgs {
            resume: true,
            sequence_label: true,
            ..Default::default()
        };
        let err = refuse_new_label(&a, Some(&arbg_state(true, None))).unwrap_err();
        assert!(err.to_string().contains("--sequence-label"), "{err}");
    }

    /// A resume trains on the run's raised rungs when not told them, refuses another count, and
    /// takes the option for a run from before they were recorded; a new run takes the option.
    #[test]
    fn a_resume_keeps_the_runs_raised_rungs() {
        let resume = |r: usize| TrainArgs {
            resume: true,
            raised_rungs: r,
            ..Default::default()
        };
        let recorded = arbg_state(true, Some(3));
        assert_eq!(raised_rungs(&resume(0), Some(&recorded)).unwrap(), 3);
        assert_eq!(raised_rungs(&resume(3), Some(&recorded)).unwrap(), 3);
        let err = raised_rungs(&resume(1), Some(&recorded)).unwrap_err();
        assert!(
            err.to_string().contains("--raised-rungs 1 (the run has 3)"),
            "{err}"
        );
        let older = arbg_state(true, None);
        assert_eq!(raised_rungs(&resume(2), Some(&older)).unwrap(), 2);
        let fresh = TrainArgs {
            raised_rungs: 2,
            ..Default::default()
        };
        assert_eq!(raised_rungs(&fresh, Some(&recorded)).unwrap(), 2);
    }

    /// Two ladders of 10 frames each (times 1..=10 ps), with a raised rung: validation is the
    /// last tenth of the time at the target temperature, of both ladders, and no raised frame
    /// over that time trains.
    #[test]
    fn validation_is_the_last_tenth_of_time_of_every_ladder() {
        let (system, zmatrix, frames, _) = crate::transfer::toy_molecule("GA", 20).unwrap();
        let d = 3 * system.n_atoms();
        // Frame k's first coordinate names it (ladder k / 10, time k % 10 + 1).
        let mut frames = frames;
        (0..20).for_each(|k| frames[k * d] = k as f64);
        let time_ps: Vec<f64> = (0..20).map(|k| (k % 10 + 1) as f64).collect();
        let raised = vec![crate::transfer::Rung {
            temperature_k: 350.0,
            x: frames.iter().map(|v| v + 100.0).collect(),
            time_ps: time_ps.clone(),
        }];
        let m = Molecule {
            name: "GA".into(),
            system,
            zmatrix,
            frames,
            time_ps,
            raised,
        };
        let names = |x: &[f64]| -> Vec<f64> { x.chunks(d).map(|f| f[0]).collect() };
        let p = split(&m, ValidationSplit::LastTime);
        assert_eq!(names(&p.val), [9.0, 19.0]);
        let train: Vec<f64> = (0..20).filter(|k| k % 10 != 9).map(f64::from).collect();
        assert_eq!(p.train[0].0, m.system.temperature);
        assert_eq!(names(&p.train[0].1), train);
        assert_eq!(p.train[1].0, 350.0);
        let raised: Vec<f64> = train.iter().map(|k| k + 100.0).collect();
        assert_eq!(names(&p.train[1].1), raised);
        // One frame validates, and trains nothing.
        assert_eq!(validation_start(&[3.0]), 3.0);
        assert_eq!(validation_start(&[]), f64::INFINITY);
        // A run begun before the split by time resumes with its own: the last frames (here the
        // second ladder's last two), its raised rung whole.
        let old = split(&m, ValidationSplit::LastFrames);
        assert_eq!(names(&old.val), [18.0, 19.0]);
        assert_eq!(names(&old.train[1].1).len(), 20);
        let labelled = arbg_state(true, Some(1));
        let resume = TrainArgs {
            resume: true,
            ..Default::default()
        };
        assert_eq!(
            validation_split(&resume, Some(&labelled)),
            ValidationSplit::LastFrames
        );
        let mut recorded = arbg_state(true, Some(1));
        recorded.transfer.as_mut().unwrap().validation = Some(ValidationSplit::LastTime);
        assert_eq!(
            validation_split(&resume, Some(&recorded)),
            ValidationSplit::LastTime
        );
        // A fine-tune (--init) or a fresh run splits by time.
        let fresh = TrainArgs::default();
        assert_eq!(
            validation_split(&fresh, Some(&labelled)),
            ValidationSplit::LastTime
        );
    }
}
