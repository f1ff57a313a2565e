//! MD of many peptides: one shard per sequence (or PDB), each an ordinary MD run in
//! `OUT/shards/NAME/`, so that a shard is resumed, skipped when finished, and run on any core or
//! node independently of the others. `OUT/shards.json` lists every shard and the settings; a
//! SLURM job array (`scripts/slurm/md_shards.sh`) runs disjoint shard sets on many nodes into
//! one shared directory, and [`merge`] (`bgen dataset merge`) checks that every shard is
//! complete and splits them by sequence into training and held-out sets.

use crate::stage::{MdArgs, MdResult};
use crate::{dataset, MdRun, MdSettings, Result};
use bgen_system::error::Context;
use bgen_system::peptide::Caps;
use bgen_system::{bail, Setup, System};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where one shard comes from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Source {
    /// Built from one-letter codes with these caps.
    Sequence { sequence: String, caps: Caps },
    /// A PDB file with hydrogens.
    Pdb(PathBuf),
}

/// One shard of a many-peptide run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Shard {
    /// Its name: the sequence, or the PDB's file stem; its directory is `shards/NAME`.
    pub name: String,
    pub source: Source,
}

/// What became of one shard in this task.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShardStatus {
    pub name: String,
    /// "done" (ran to the end now), "skipped" (finished before), "stopped" (at a checkpoint),
    /// or "failed: MESSAGE".
    pub status: String,
    pub atoms: usize,
}

/// The record of a many-peptide run (`OUT/shards.json`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ShardsFile {
    pub shards: Vec<Shard>,
    pub forcefield: String,
    pub temperature_k: f64,
}

/// The shards of `a`: its sequences (and file of them), then its PDBs; names must be unique.
pub fn shards_of(a: &MdArgs) -> Result<Vec<Shard>> {
    // (sequence, where it was given: for messages)
    let mut seqs: Vec<(String, String)> = a
        .sequences
        .iter()
        .map(|s| (s.trim().to_string(), format!("--sequences '{}'", s.trim())))
        .collect();
    if let Some(f) = &a.sequences_file {
        let text = std::fs::read_to_string(f).with_context(|| f.display().to_string())?;
        for (k, l) in bgen_system::options::list_lines(&text) {
            seqs.push((l.to_string(), format!("{}:{k}", f.display())));
        }
    }
    let caps = a.caps;
    let mut out: Vec<Shard> = Vec::new();
    for (s, origin) in seqs {
        let s = s.to_ascii_uppercase();
        // Checked now, so that a typo stops the run before any MD.
        bgen_system::peptide::residues(&s, caps).map_err(|e| format!("{origin}: {e}"))?;
        out.push(Shard {
            name: s.clone(),
            source: Source::Sequence { sequence: s, caps },
        });
    }
    for p in &a.pdbs {
        let name = p
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .with_context(|| format!("{}: not a file name", p.display()))?;
        out.push(Shard {
            name,
            source: Source::Pdb(p.clone()),
        });
    }
    let mut names: Vec<&str> = out.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        bail!("shard '{}' is given twice", w[0]);
    }
    if out.is_empty() {
        match &a.sequences_file {
            Some(f) => bail!(
                "{}: no sequences (only comments or blank lines)",
                f.display()
            ),
            None => bail!("no sequences or PDBs to run"),
        }
    }
    Ok(out)
}

/// Runs this task's shards of `a` (all of them, or those of `shard_index` of `shard_count`),
/// `jobs` at a time; a failed shard does not stop the others, and the run fails at the end
/// naming it.
pub fn run(a: &MdArgs) -> Result<MdResult> {
    let shards = shards_of(a)?;
    let setup = Setup::from_name(a.sys.forcefield.as_deref().unwrap_or("amber14-obc1"))?;
    let temperature = a.sys.temperature.unwrap_or(setup.default_temperature());
    std::fs::create_dir_all(a.out.join("shards"))
        .with_context(|| a.out.join("shards").display().to_string())?;
    let record = ShardsFile {
        shards: shards.clone(),
        forcefield: setup.name().into(),
        temperature_k: temperature,
    };
    let record_path = a.out.join("shards.json");
    if record_path.exists() {
        let old: ShardsFile = serde_json::from_str(
            &std::fs::read_to_string(&record_path).context(record_path.display())?,
        )
        .with_context(|| format!("{}: corrupt", record_path.display()))?;
        // Some of its shards alone may run again (to lengthen them, say).
        let part = old.forcefield == record.forcefield
            && old.temperature_k == record.temperature_k
            && record.shards.iter().all(|s| old.shards.contains(s));
        if !part {
            bail!(
                "{}: records other shards or settings ({} shards, {} at {} K); name some of \
                 its shards, or use another --out",
                record_path.display(),
                old.shards.len(),
                old.forcefield,
                old.temperature_k
            );
        }
    } else {
        let text = serde_json::to_string_pretty(&record).context("shards.json")?;
        bgen_system::npy::write_atomic(&record_path, text.as_bytes())?;
    }
    let mine: Vec<&Shard> = shards
        .iter()
        .enumerate()
        .filter(|(k, _)| match (a.shard_index, a.shard_count) {
            (Some(i), Some(n)) => k % n == i,
            _ => true,
        })
        .map(|(_, s)| s)
        .collect();
    let threads = a.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let jobs = a.jobs.unwrap_or(threads).max(1);
    bgen_system::say!(
        "{} of {} shards in {}, {jobs} at a time; {} at {temperature} K",
        mine.len(),
        shards.len(),
        a.out.display(),
        setup.name()
    );
    let status = run_jobs(&mine, jobs, (threads / jobs).max(1), |s| {
        let (status, atoms) = match run_shard(a, s, setup, temperature) {
            Ok(x) => x,
            Err(e) => (format!("failed: {e}"), 0),
        };
        bgen_system::say!("shard {}: {status}", s.name);
        ShardStatus {
            name: s.name.clone(),
            status,
            atoms,
        }
    })?;
    let failed: Vec<String> = status
        .iter()
        .filter(|s| s.status.starts_with("failed"))
        .map(|s| format!("{} ({})", s.name, s.status))
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} of {} shards failed: {}",
            failed.len(),
            status.len(),
            failed.join("; ")
        );
    }
    Ok(MdResult {
        out: a.out.clone(),
        complete: status.iter().all(|s| s.status != "stopped"),
        frames: None,
        mean_energy_kj_mol: None,
        exchange: None,
        shards: Some(status),
    })
}

/// `work` on every shard, `jobs` shards at a time, each on a thread pool of its own with
/// `threads` threads: the replicas per thread (and with them the SIMD lanes they fill) do not
/// depend on what the other shards do. (Not a rayon pool of `jobs` threads: a worker waiting on
/// another pool would start further shards meanwhile.) The results in the shards' order.
fn run_jobs<T: Send>(
    shards: &[&Shard],
    jobs: usize,
    threads: usize,
    work: impl Fn(&Shard) -> T + Sync,
) -> Result<Vec<T>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let pools = (0..jobs.min(shards.len()))
        .map(|_| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .context("thread pool")
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut done: Vec<(usize, T)> = std::thread::scope(|scope| {
        let workers: Vec<_> = pools
            .iter()
            .map(|pool| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(s) = shards.get(i) else { break mine };
                        mine.push((i, pool.install(|| work(s))));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a shard worker panicked"))
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    Ok(done.into_iter().map(|(_, t)| t).collect())
}

/// Runs one shard to its end (or to `stop_after_checkpoints`): (status, atoms).
fn run_shard(a: &MdArgs, s: &Shard, setup: Setup, temperature: f64) -> Result<(String, usize)> {
    let dir = a.out.join("shards").join(&s.name);
    let mut run = if dir.join("run.json").exists() {
        let mut run = MdRun::resume(&dir)?;
        // Options given now must be those the shard was made with (else its data would be
        // skipped as finished, or finished with another recipe, without a word), or a longer
        // --ns alone, which lengthens it.
        let was = run.settings.ns_per_replica;
        let changed = crate::stage::reopen(a, &mut run)?;
        // The run's first command again after some of its shards were lengthened (a pipeline
        // resumed from the top): a shorter --ns never shortens one; a finished shard is
        // skipped, one stopped while being lengthened goes on to its own length.
        let shorter = changed == ["--ns"] && a.ns.is_some_and(|ns| ns < was);
        if shorter && run.is_complete() {
            return Ok((
                format!("skipped ({was} ns, longer than asked)"),
                run.system.n_atoms(),
            ));
        }
        if !changed.is_empty() && !shorter {
            bail!(
                "{}: made with other {} than given now; drop them to resume it (a longer --ns \
                 alone lengthens it), or use another --out",
                dir.display(),
                changed.join(", ")
            );
        }
        if run.is_complete() {
            return Ok(("skipped".into(), run.system.n_atoms()));
        }
        run
    } else {
        std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
        let input = dir.join("input.pdb");
        match &s.source {
            Source::Sequence { sequence, caps } => {
                let b = crate::stage::BuildArgs {
                    sequence: sequence.clone(),
                    caps: *caps,
                    forcefield: setup.name().into(),
                    out: input.clone(),
                    no_minimize: false,
                    minimize_tol: 1.0,
                };
                crate::stage::build(b)?;
            }
            Source::Pdb(p) => {
                std::fs::copy(p, &input).with_context(|| format!("copying {}", p.display()))?;
            }
        }
        let sys = System::from_pdb_file(&input, setup, Some(temperature))?;
        let mut settings = MdSettings::new(&s.name, setup);
        settings.temperature_k = temperature;
        a.apply(&mut settings);
        MdRun::create(&dir, settings, sys)?
    };
    let atoms = run.system.n_atoms();
    run.run(
        bgen_system::options::seconds(a.checkpoint_secs),
        a.stop_after_checkpoints,
        |_| {},
    )?;
    Ok((
        if run.is_complete() { "done" } else { "stopped" }.into(),
        atoms,
    ))
}

/// The settings of `bgen dataset merge`.
#[derive(clap::Args, Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeArgs {
    /// A many-peptide MD directory (`bgen md --sequences ...`, or the SLURM array's).
    #[arg(long)]
    pub run: PathBuf,
    /// Output directory: dataset.json (the shards by split, with their frames and atoms).
    #[arg(long)]
    pub out: PathBuf,
    /// Sequences (shard names) held out of training, comma-separated.
    #[arg(long, value_delimiter = ',')]
    #[serde(default)]
    pub held_out: Vec<String>,
    /// Or: this many shards held out, drawn with `seed`.
    #[arg(long, default_value_t = 0)]
    #[serde(default)]
    pub held_out_count: usize,
    #[arg(long, default_value_t = 0)]
    #[serde(default)]
    pub seed: u64,
    /// Merge the shards that have finished and list the others as left out (a long data run
    /// can be trained on while it goes on); by default every shard must have finished.
    #[arg(long)]
    #[serde(default)]
    pub finished_only: bool,
}

/// One shard in a merged data set.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub name: String,
    /// The shard's run directory (frames.npy, topology.pdb, run.json), absolute.
    pub path: PathBuf,
    pub atoms: usize,
    /// Frames at the run's temperature.
    pub frames: usize,
}

/// A many-peptide data set (`dataset.json`): shards split by sequence.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ShardedDataset {
    pub source: PathBuf,
    pub forcefield: String,
    pub temperature_k: f64,
    pub train: Vec<Entry>,
    pub held_out: Vec<Entry>,
}

/// Checks every shard of `a.run` (complete, readable, finite, the atoms of its topology) and
/// writes the split by sequence to `a.out/dataset.json`; names every shard that is not ready.
pub fn merge(a: MergeArgs) -> Result<ShardedDataset> {
    bgen_system::outdir::refuse_same(&a.run, &a.out, "many-peptide run")?;
    let record_path = a.run.join("shards.json");
    let record: ShardsFile = serde_json::from_str(
        &std::fs::read_to_string(&record_path)
            .with_context(|| format!("{}: not a many-peptide MD run", record_path.display()))?,
    )
    .with_context(|| format!("{}: corrupt", record_path.display()))?;
    let entries = ready_shards(&a, &record)?;
    let held = held_out_names(&a, &entries)?;
    let (held_out, train): (Vec<Entry>, Vec<Entry>) =
        entries.into_iter().partition(|e| held.contains(&e.name));
    let ds = ShardedDataset {
        source: std::path::absolute(&a.run).unwrap_or(a.run.clone()),
        forcefield: record.forcefield,
        temperature_k: record.temperature_k,
        train,
        held_out,
    };
    // A data set is fixed once written: merging again with another split would change what
    // models trained on it saw (their held-out peptides leaking in).
    let path = a.out.join("dataset.json");
    if path.exists() {
        let old: Option<ShardedDataset> = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        if old.as_ref() != Some(&ds) {
            bail!(
                "{}: already holds a data set with another split or other shards; merge into \
                 another --out (models trained on it keep the split they saw)",
                path.display()
            );
        }
    }
    std::fs::create_dir_all(&a.out).with_context(|| a.out.display().to_string())?;
    let text = serde_json::to_string_pretty(&ds).context("dataset.json")?;
    bgen_system::npy::write_atomic(&a.out.join("dataset.json"), text.as_bytes())?;
    Ok(ds)
}

/// The shards of `record` that can be merged: each checked (complete, readable, finite) and
/// made with one recipe. Unfinished shards are an error, or with `--finished-only` left out
/// (and named); every other problem is an error naming its shard.
fn ready_shards(a: &MergeArgs, record: &ShardsFile) -> Result<Vec<Entry>> {
    let mut problems = Vec::new();
    let mut unfinished = Vec::new();
    let mut entries = Vec::new();
    // Every shard's settings but its name and length (the slow ones run longer, see `bgen md
    // --ns`): one data set is one recipe.
    let mut recipe: Option<(String, MdSettings)> = None;
    for s in &record.shards {
        let dir = a.run.join("shards").join(&s.name);
        match check_shard(&dir) {
            Ok((atoms, frames, mut settings)) => {
                settings.system.clear();
                settings.ns_per_replica = 0.0;
                match &recipe {
                    Some((first, r)) if *r != settings => problems.push(format!(
                        "{}: made with other settings than {first} ({}); a data set mixes no \
                         recipes",
                        s.name,
                        differences(r, &settings).join(", ")
                    )),
                    Some(_) => {}
                    None => recipe = Some((s.name.clone(), settings)),
                }
                entries.push(Entry {
                    name: s.name.clone(),
                    path: std::path::absolute(&dir).unwrap_or(dir),
                    atoms,
                    frames,
                })
            }
            Err(Unready::Unfinished(e)) if a.finished_only => unfinished.push((s.name.clone(), e)),
            Err(Unready::Unfinished(e)) => problems.push(format!("{}: {e}", s.name)),
            Err(Unready::Bad(e)) => problems.push(format!("{}: {e}", s.name)),
        }
    }
    if !unfinished.is_empty() {
        bgen_system::say!(
            "{}: {} of {} shards left out: {}",
            a.run.display(),
            unfinished.len(),
            record.shards.len(),
            left_out(&unfinished)
        );
    }
    if entries.is_empty() {
        bail!("{}: no finished shard to merge", a.run.display());
    }
    if !problems.is_empty() {
        bail!(
            "{}: {} of {} shards are not ready: {}",
            a.run.display(),
            problems.len(),
            record.shards.len(),
            problems.join("; ")
        );
    }
    Ok(entries)
}

/// The held-out shards' names: those of `a.held_out`, each its shard's exactly or the one
/// shard that matches it in another case, then `a.held_out_count` more drawn reproducibly
/// from `a.seed`.
fn held_out_names(a: &MergeArgs, entries: &[Entry]) -> Result<Vec<String>> {
    // A name is its shard's exactly (a --pdbs shard keeps its file's case), else the one shard
    // that matches it in another case (sequences are upper case: kw holds out KW).
    let mut held: Vec<String> = Vec::new();
    for h in &a.held_out {
        let exact = entries.iter().find(|e| &e.name == h);
        let other: Vec<&str> = entries
            .iter()
            .filter(|e| e.name.eq_ignore_ascii_case(h))
            .map(|e| e.name.as_str())
            .collect();
        let name = match (exact, other.as_slice()) {
            (Some(e), _) => e.name.clone(),
            (None, [one]) => one.to_string(),
            (None, []) => bail!("held_out: no shard '{h}' in {}", a.run.display()),
            (None, many) => bail!(
                "held_out: '{h}' matches shards {} of {} in other cases; give one exactly",
                many.join(", "),
                a.run.display()
            ),
        };
        held.push(name);
    }
    if a.held_out_count > 0 {
        if a.held_out_count >= entries.len() {
            bail!(
                "held_out_count {}: there are {} shards",
                a.held_out_count,
                entries.len()
            );
        }
        // A reproducible draw: the shards sorted by a hash of (seed, name).
        let mut keyed: Vec<(u64, &str)> = entries
            .iter()
            .map(|e| (draw_key(a.seed, &e.name), e.name.as_str()))
            .collect();
        keyed.sort_unstable();
        let drawn: Vec<String> = keyed
            .into_iter()
            .map(|(_, n)| n.to_string())
            .filter(|n| !held.contains(n))
            .take(a.held_out_count)
            .collect();
        held.extend(drawn);
    }
    Ok(held)
}

/// A shard's place in the held-out draw of `seed`: FNV-1a of its name, then a full avalanche
/// (splitmix64's finaliser), so that names sharing a first letter are not drawn together.
fn draw_key(seed: u64, name: &str) -> u64 {
    let mut h = seed ^ 0xCBF2_9CE4_8422_2325;
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01B3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

/// Why a shard cannot be merged: it has not finished, or something is wrong with it.
enum Unready {
    Unfinished(String),
    Bad(crate::Error),
}

impl<E: Into<crate::Error>> From<E> for Unready {
    fn from(e: E) -> Unready {
        Unready::Bad(e.into())
    }
}

/// The settings (as JSON keys) in which `a` and `b` differ.
fn differences(a: &MdSettings, b: &MdSettings) -> Vec<String> {
    let (a, b) = (serde_json::to_value(a), serde_json::to_value(b));
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) = (a, b) else {
        return vec!["?".into()];
    };
    a.iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, v)| {
            format!(
                "{k} {v} vs {}",
                b.get(k).unwrap_or(&serde_json::Value::Null)
            )
        })
        .collect()
}

/// (atoms, frames at the run's temperature, settings) of a finished shard.
/// The shards left out, by reason, each with its first few names.
fn left_out(shards: &[(String, String)]) -> String {
    let mut reasons: Vec<&str> = shards.iter().map(|(_, r)| r.as_str()).collect();
    reasons.sort();
    reasons.dedup();
    let parts: Vec<String> = reasons
        .iter()
        .map(|&r| {
            let names: Vec<&str> = shards
                .iter()
                .filter(|(_, why)| why == r)
                .map(|(n, _)| n.as_str())
                .collect();
            let more = match names.len() {
                n if n > 8 => format!(" and {} more", n - 8),
                _ => String::new(),
            };
            format!(
                "{} {r} ({}{more})",
                names.len(),
                names[..names.len().min(8)].join(", ")
            )
        })
        .collect();
    parts.join("; ")
}

fn check_shard(dir: &Path) -> std::result::Result<(usize, usize, MdSettings), Unready> {
    if !dir.join("run.json").exists() {
        return Err(Unready::Unfinished("not started".into()));
    }
    // From its checkpoint first: a shard that another process is running holds its lock.
    if dataset::run_complete(dir)? != Some(true) {
        return Err(Unready::Unfinished(
            "not finished (running, or run it again to resume)".into(),
        ));
    }
    let run = MdRun::resume(dir)?;
    if !run.is_complete() {
        return Err(Unready::Unfinished(
            "not finished (run it again to resume)".into(),
        ));
    }
    let settings = run.settings.clone();
    drop(run);
    let frames = dataset::load_run_temperature(dir)?;
    let top = bgen_system::pdb::PdbFile::read(&dir.join("topology.pdb"))?;
    if top.atoms.len() != frames.n_atoms {
        return Err(Unready::Bad(crate::Error::Other(format!(
            "{} atoms in its frames, {} in topology.pdb",
            frames.n_atoms,
            top.atoms.len()
        ))));
    }
    if let Some(k) = frames.x.iter().position(|v| !v.is_finite()) {
        return Err(Unready::Bad(crate::Error::Other(format!(
            "frame {} has a non-finite coordinate",
            k / (3 * frames.n_atoms)
        ))));
    }
    Ok((frames.n_atoms, frames.len(), settings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// `jobs` shards at a time and no more, each on its own pool of `threads` (work that waits
    /// on a nested parallel loop, as a shard's replicas do, must not start further shards), and
    /// the results in the shards' order.
    #[test]
    fn jobs_run_that_many_shards_at_a_time_each_on_its_own_threads() {
        let shards: Vec<Shard> = (0..9)
            .map(|i| Shard {
                name: format!("S{i}"),
                source: Source::Pdb(PathBuf::from("none.pdb")),
            })
            .collect();
        let refs: Vec<&Shard> = shards.iter().collect();
        let (active, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let out = run_jobs(&refs, 2, 3, |s| {
            let now = active.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            let threads = rayon::current_num_threads();
            let sum: u64 = (0..20_000u64)
                .into_par_iter()
                .map(|k| {
                    std::thread::sleep(std::time::Duration::from_nanos(k % 2));
                    k
                })
                .sum();
            active.fetch_sub(1, Ordering::SeqCst);
            (s.name.clone(), threads, sum)
        })
        .unwrap();
        assert_eq!(most.load(Ordering::SeqCst), 2, "shards at once");
        for (i, (name, threads, sum)) in out.iter().enumerate() {
            assert_eq!((name.as_str(), *threads), (format!("S{i}").as_str(), 3));
            assert_eq!(*sum, 19_999 * 20_000 / 2);
        }
    }
}
