//! Frames of trajectories as data sets: reading runs (complete or still running), writing them,
//! and splitting them into train / validation / test sets by time blocks or by replicas.
//!
//! A data-set directory holds `frames.npy` (float32, frames x atoms x 3, nm) and, when known,
//! `energies.npy` (float64, potential energy, kJ/mol), `kinetic.npy` (kJ/mol), `replica.npy`
//! (int64) and `time_ps.npy` (float64, production time of each frame, ps), plus `topology.pdb`.

use crate::error::{file_err, io_err, Error, Result};
use bgen_system::npy::{read_npy, write_npy, write_npy_i64};
use std::path::Path;

/// Frames with their per-frame data, in the order replica-major then time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Frames {
    pub n_atoms: usize,
    /// Positions, nm (frames x atoms x 3).
    pub x: Vec<f64>,
    /// Potential energy, kJ/mol (NaN where unknown).
    pub energy: Vec<f64>,
    /// Kinetic energy, kJ/mol (NaN where unknown).
    pub kinetic: Vec<f64>,
    /// Replica (independent trajectory) of each frame.
    pub replica: Vec<i64>,
    /// Production time of each frame within its replica, ps.
    pub time_ps: Vec<f64>,
}

impl Frames {
    /// Empty set of frames of `n_atoms` atoms.
    pub fn new(n_atoms: usize) -> Frames {
        Frames {
            n_atoms,
            ..Frames::default()
        }
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.energy.len()
    }

    /// True when there are no frames.
    pub fn is_empty(&self) -> bool {
        self.energy.is_empty()
    }

    /// Positions of frame `i`, nm (atoms x 3).
    pub fn frame(&self, i: usize) -> &[f64] {
        let d = 3 * self.n_atoms;
        &self.x[i * d..(i + 1) * d]
    }

    /// Appends one frame.
    pub fn push(&mut self, x: &[f64], energy: f64, kinetic: f64, replica: i64, time_ps: f64) {
        debug_assert_eq!(x.len(), 3 * self.n_atoms);
        self.x.extend_from_slice(x);
        self.energy.push(energy);
        self.kinetic.push(kinetic);
        self.replica.push(replica);
        self.time_ps.push(time_ps);
    }

    /// Appends all frames of `other` (same number of atoms).
    pub fn extend(&mut self, other: &Frames) {
        assert_eq!(self.n_atoms, other.n_atoms);
        self.x.extend_from_slice(&other.x);
        self.energy.extend_from_slice(&other.energy);
        self.kinetic.extend_from_slice(&other.kinetic);
        self.replica.extend_from_slice(&other.replica);
        self.time_ps.extend_from_slice(&other.time_ps);
    }

    /// The frames at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Frames {
        let mut out = Frames::new(self.n_atoms);
        for &i in idx {
            out.push(
                self.frame(i),
                self.energy[i],
                self.kinetic[i],
                self.replica[i],
                self.time_ps[i],
            );
        }
        out
    }

    /// The frames of a replica-exchange run whose rung (replica % `ladder_len`) passes `keep`.
    fn of_rungs(&self, ladder_len: usize, keep: impl Fn(usize) -> bool) -> Frames {
        let idx: Vec<usize> = (0..self.len())
            .filter(|&i| keep(self.replica[i] as usize % ladder_len))
            .collect();
        self.select(&idx)
    }

    /// Reorders the frames by replica, then time.
    pub fn sort(&mut self) {
        let mut idx: Vec<usize> = (0..self.len()).collect();
        idx.sort_by(|&a, &b| {
            self.replica[a]
                .cmp(&self.replica[b])
                .then(self.time_ps[a].total_cmp(&self.time_ps[b]))
        });
        *self = self.select(&idx);
    }

    /// The arrays [`Frames::write`] writes, `{prefix}{name}.npy` each.
    pub const ARRAYS: [&'static str; 5] = ["energies", "kinetic", "replica", "time_ps", "frames"];

    /// Writes the arrays into `dir` with file names `{prefix}frames.npy` etc., each atomically.
    /// `frames.npy` goes last: where it exists, the other arrays beside it are of the same set;
    /// then `manifest.txt` with every file's size and checksum, which [`Frames::read`] checks.
    pub fn write(&self, dir: &Path, prefix: &str) -> Result<()> {
        let n = self.len();
        let p = |name: &str| dir.join(format!("{prefix}{name}.npy"));
        write_npy(&p("energies"), &[n], &self.energy, false)?;
        write_npy(&p("kinetic"), &[n], &self.kinetic, false)?;
        write_npy_i64(&p("replica"), &[n], &self.replica)?;
        write_npy(&p("time_ps"), &[n], &self.time_ps, false)?;
        write_npy(&p("frames"), &[n, self.n_atoms, 3], &self.x, true)?;
        let names: Vec<String> = Frames::ARRAYS
            .iter()
            .map(|a| format!("{prefix}{a}.npy"))
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        bgen_system::manifest::write(dir, &format!("{prefix}manifest.txt"), &names)?;
        Ok(())
    }

    /// Reads arrays written by [`Frames::write`]; only `{prefix}frames.npy` is required (others
    /// default to NaN energies, replica 0 and time = frame index).
    pub fn read(dir: &Path, prefix: &str) -> Result<Frames> {
        let p = |name: &str| dir.join(format!("{prefix}{name}.npy"));
        let manifest = format!("{prefix}manifest.txt");
        for name in ["frames", "energies", "kinetic", "replica", "time_ps"] {
            if p(name).exists() {
                bgen_system::manifest::verify(dir, &manifest, &format!("{prefix}{name}.npy"))?;
            }
        }
        let mut f = read_frames_npy(&p("frames"))?;
        let n = f.len();
        let optional = |name: &str| -> Result<Option<Vec<f64>>> {
            let path = p(name);
            if !path.exists() {
                return Ok(None);
            }
            let a = read_npy(&path)?;
            if a.shape != [n] {
                return Err(file_err(
                    &path,
                    format!("shape {:?} does not match {n} frames", a.shape),
                ));
            }
            Ok(Some(a.data))
        };
        if let Some(e) = optional("energies")? {
            f.energy = e;
        }
        if let Some(e) = optional("kinetic")? {
            f.kinetic = e;
        }
        if let Some(r) = optional("replica")? {
            f.replica = r.iter().map(|&v| v as i64).collect();
        }
        if let Some(t) = optional("time_ps")? {
            // Times split training from validation: a NaN would put its frame in neither half
            // silently.
            finite_times(&p("time_ps"), &t)?;
            f.time_ps = t;
        }
        Ok(f)
    }
}

/// Refuses frame times (ps) of `path` that are not finite, naming the first.
fn finite_times(path: &Path, t: &[f64]) -> Result<()> {
    match t.iter().position(|v| !v.is_finite()) {
        Some(k) => Err(file_err(
            path,
            format!("frame {k}: time {} ps is not finite", t[k]),
        )),
        None => Ok(()),
    }
}

/// Frames of an XTC trajectory (one replica, its times; energies unknown).
pub fn read_frames_xtc(path: &Path) -> Result<Frames> {
    let t = crate::xtc::read_xtc(path)?;
    let n = t.time_ps.len();
    if n == 0 || t.n_atoms == 0 {
        return Err(file_err(path, "no frames or no atoms"));
    }
    finite_times(path, &t.time_ps)?;
    if let Some(k) = t.x.iter().position(|v| !v.is_finite()) {
        return Err(file_err(
            path,
            format!("frame {}: non-finite coordinate", k / (3 * t.n_atoms)),
        ));
    }
    Ok(Frames {
        n_atoms: t.n_atoms,
        x: t.x,
        energy: vec![f64::NAN; n],
        kinetic: vec![f64::NAN; n],
        replica: vec![0; n],
        time_ps: t.time_ps,
    })
}

/// Reads a (frames, atoms, 3) array of positions in nm from a .npy file.
pub fn read_frames_npy(path: &Path) -> Result<Frames> {
    let a = read_npy(path)?;
    if a.shape.len() != 3 || a.shape[2] != 3 {
        return Err(file_err(
            path,
            format!(
                "expected positions of shape (frames, atoms, 3), found {:?}",
                a.shape
            ),
        ));
    }
    a.refuse_integer_positions(path)?;
    if a.shape[0] == 0 || a.shape[1] == 0 {
        return Err(file_err(
            path,
            format!("holds no frames or no atoms (shape {:?})", a.shape),
        ));
    }
    if let Some(k) = a.data.iter().position(|v| !v.is_finite()) {
        return Err(file_err(
            path,
            format!(
                "frame {}, atom {}: non-finite coordinate",
                k / (3 * a.shape[1]),
                (k / 3) % a.shape[1]
            ),
        ));
    }
    let n = a.shape[0];
    Ok(Frames {
        n_atoms: a.shape[1],
        x: a.data,
        energy: vec![f64::NAN; n],
        kinetic: vec![f64::NAN; n],
        replica: vec![0; n],
        time_ps: (0..n).map(|i| i as f64).collect(),
    })
}

/// Loads the frames that sample the run's own temperature: as [`load`], but from a
/// replica-exchange run (a `run.json` with a temperature ladder) only the lowest rung of each
/// ladder (replica 0 of one ladder), since the other replicas sample raised temperatures. Use it wherever frames stand for one ensemble (training
/// data, a reference); [`load`] gives every replica.
pub fn load_run_temperature(path: &Path) -> Result<Frames> {
    if path.is_dir() && run_complete(path)? == Some(false) {
        return Err(file_err(
            path,
            format!(
                "is an MD run that has not finished: finish it with `bgen md --resume --out {}` \
                 before using its frames",
                path.display()
            ),
        ));
    }
    let frames = load(path)?;
    let Some(len) = ladder_len(path)? else {
        return Ok(frames);
    };
    Ok(frames.of_rungs(len, |k| k == 0))
}

/// Loads frames at raised temperatures for extra training data: of a replica-exchange run its
/// replicas above the lowest (the lowest comes in as the data itself, through
/// [`load_run_temperature`]); of anything else, every frame ([`load`]).
pub fn load_raised_temperatures(path: &Path) -> Result<Frames> {
    let frames = load(path)?;
    let Some(len) = ladder_len(path)? else {
        return Ok(frames);
    };
    Ok(frames.of_rungs(len, |k| k != 0))
}

/// Loads the frames of the `rungs` lowest raised rungs (1..=rungs of every ladder) of the
/// replica-exchange run `path`; an error if it is not one or has fewer raised rungs.
pub fn load_raised_rungs(path: &Path, rungs: usize) -> Result<Frames> {
    let len = raised_ladder(path, rungs)?.len();
    Ok(load(path)?.of_rungs(len, |k| (1..=rungs).contains(&k)))
}

/// As [`load_raised_rungs`], rung by rung, lowest first: each rung's temperature (K) and frames.
pub fn load_raised_rungs_apart(path: &Path, rungs: usize) -> Result<Vec<(f64, Frames)>> {
    let ladder = raised_ladder(path, rungs)?;
    let frames = load(path)?;
    Ok((1..=rungs)
        .map(|r| (ladder[r], frames.of_rungs(ladder.len(), |k| k == r)))
        .collect())
}

/// The temperatures (K) of the replica-exchange run `path`'s ladder, checked to have `rungs`
/// rungs above the lowest.
fn raised_ladder(path: &Path, rungs: usize) -> Result<Vec<f64>> {
    let ladder = ladder_temperatures(path)?.unwrap_or_default();
    if ladder.len() <= rungs {
        return Err(file_err(
            path,
            format!(
                "{rungs} raised rung(s) asked for, the run has {}",
                ladder.len().saturating_sub(1)
            ),
        ));
    }
    Ok(ladder)
}

/// Rungs per ladder of a replica-exchange run directory (its run.json has a ladder); None for
/// anything else.
fn ladder_len(path: &Path) -> Result<Option<usize>> {
    Ok(ladder_temperatures(path)?.map(|t| t.len()))
}

/// The ladder's temperatures (K, lowest first) of a replica-exchange run directory; None for
/// anything else.
fn ladder_temperatures(path: &Path) -> Result<Option<Vec<f64>>> {
    let run_json = path.join("run.json");
    if !path.is_dir() || !run_json.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&run_json).map_err(io_err(&run_json))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| file_err(&run_json, format!("corrupt or not a bgen file: {e}")))?;
    let Some(t) = v["settings"]["temperatures_k"].as_array() else {
        return Ok(None);
    };
    let t: Option<Vec<f64>> = t.iter().map(|x| x.as_f64()).collect();
    match t {
        Some(t) if !t.is_empty() => Ok(Some(t)),
        Some(_) => Ok(None),
        None => Err(file_err(
            &run_json,
            "corrupt: a temperature that is not a number",
        )),
    }
}

/// Loads frames from a data-set or run directory (a run that is still going yields the frames
/// of its checkpointed chunks), a positions `.npy` file or an `.xtc` trajectory.
pub fn load(path: &Path) -> Result<Frames> {
    if !path.is_dir() {
        if !path.exists() {
            return Err(file_err(path, "no such file or directory"));
        }
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("xtc"))
        {
            return read_frames_xtc(path);
        }
        return read_frames_npy(path);
    }
    // An MD run that is not complete (its checkpoint says so) may hold the final files of a merge
    // that was cut short: its frames are those of the chunks.
    if path.join("frames.npy").exists() && run_complete(path)? != Some(false) {
        return Frames::read(path, "");
    }
    load_chunks(path)
}

/// Whether the MD run in `dir` is complete: None when `dir` holds no run checkpoint.
pub fn run_complete(dir: &Path) -> Result<Option<bool>> {
    let cp = dir.join("checkpoint.json");
    if !cp.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&cp).map_err(io_err(&cp))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| file_err(&cp, format!("corrupt or not a bgen file: {e}")))?;
    Ok(Some(v["complete"].as_bool().unwrap_or(false)))
}

/// The frames in the chunks of a run directory, sorted by replica and time.
pub fn load_chunks(path: &Path) -> Result<Frames> {
    let chunks = path.join("chunks");
    if chunks.is_dir() {
        let mut names: Vec<String> = std::fs::read_dir(&chunks)
            .map_err(io_err(&chunks))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|n| n.strip_suffix(".frames.npy").map(|s| s.to_string()))
            .collect();
        names.sort();
        let mut all: Option<Frames> = None;
        for c in names {
            let f = Frames::read(&chunks, &format!("{c}."))?;
            match &mut all {
                Some(a) if a.n_atoms != f.n_atoms => {
                    return Err(file_err(
                        &chunks,
                        format!("chunk {c} has {} atoms, expected {}", f.n_atoms, a.n_atoms),
                    ))
                }
                Some(a) => a.extend(&f),
                None => all = Some(f),
            }
        }
        if let Some(mut a) = all {
            a.sort();
            return Ok(a);
        }
    }
    if is_many_peptide_run(path) {
        return Err(file_err(
            path,
            format!(
                "a many-peptide MD directory (a shard per peptide): merge it into a data set \
                 (bgen dataset merge --run {0} --out DATA) for a transferable model, or give one \
                 shard ({0}/shards/SEQ)",
                path.display()
            ),
        ));
    }
    if path.join("split.json").exists() {
        return Err(file_err(
            path,
            format!(
                "the sets of `bgen dataset split`: give one of them ({0}/train, {0}/val or \
                 {0}/test)",
                path.display()
            ),
        ));
    }
    Err(file_err(
        path,
        "no frames.npy and no chunks/ with frames: not a run or data-set directory",
    ))
}

/// Whether `dir` is the directory of `bgen md --sequences/--pdbs` (its shards.json).
pub fn is_many_peptide_run(dir: &Path) -> bool {
    dir.join("shards.json").is_file()
}

/// How [`split`] cuts the frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitBy {
    /// Each replica's trajectory is cut into three consecutive time blocks.
    Time,
    /// Whole replicas go to one set each.
    Replica,
}

/// Splits `frames` into (train, validation, test) with `fractions` (summing to 1). Frames of one
/// set are never interleaved in time with those of another: by time, each replica is cut into
/// consecutive blocks, dropping `gap` frames at each cut to reduce correlation across sets; by
/// replica, whole replicas go to one set each.
pub fn split(frames: &Frames, fractions: [f64; 3], by: SplitBy, gap: usize) -> Result<[Frames; 3]> {
    let total: f64 = fractions.iter().sum();
    if fractions.iter().any(|&f| !(0.0..=1.0).contains(&f)) || (total - 1.0).abs() > 1e-9 {
        return Err(Error::Settings(format!(
            "split fractions {fractions:?} must be in [0, 1] and sum to 1"
        )));
    }
    let mut sorted = frames.clone();
    sorted.sort();
    let mut replicas: Vec<i64> = sorted.replica.clone();
    replicas.dedup();
    let mut sets: [Vec<usize>; 3] = Default::default();
    match by {
        SplitBy::Time => {
            let mut start = 0;
            for &r in &replicas {
                let n = sorted.replica[start..]
                    .iter()
                    .take_while(|&&v| v == r)
                    .count();
                let c1 = (fractions[0] * n as f64).round() as usize;
                let c2 = ((fractions[0] + fractions[1]) * n as f64).round() as usize;
                let bounds = [(0, c1), (c1, c2), (c2, n)];
                for (k, &(a, b)) in bounds.iter().enumerate() {
                    let a = if k > 0 && a > 0 { (a + gap).min(b) } else { a };
                    sets[k].extend(start + a..start + b);
                }
                start += n;
            }
        }
        SplitBy::Replica => {
            let nr = replicas.len();
            let c1 = (fractions[0] * nr as f64).round() as usize;
            let c2 = ((fractions[0] + fractions[1]) * nr as f64).round() as usize;
            for (i, r) in sorted.replica.iter().enumerate() {
                let k = replicas.iter().position(|v| v == r).unwrap();
                sets[if k < c1 {
                    0
                } else if k < c2 {
                    1
                } else {
                    2
                }]
                .push(i);
            }
            for (k, f) in fractions.iter().enumerate() {
                if *f > 0.0 && sets[k].is_empty() {
                    return Err(Error::Settings(format!(
                        "{nr} replicas cannot be split by replica with fractions {fractions:?}; split by time or run more replicas"
                    )));
                }
            }
        }
    }
    Ok(sets.map(|idx| sorted.select(&idx)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(replicas: i64, per: usize) -> Frames {
        let mut f = Frames::new(1);
        for r in 0..replicas {
            for t in 0..per {
                f.push(&[r as f64, t as f64, 0.0], 0.0, 0.0, r, (t + 1) as f64);
            }
        }
        f
    }

    #[test]
    fn time_split_keeps_blocks_contiguous_and_disjoint() {
        let f = toy(2, 100);
        let [tr, va, te] = split(&f, [0.8, 0.1, 0.1], SplitBy::Time, 2).unwrap();
        assert_eq!((tr.len(), va.len(), te.len()), (160, 16, 16));
        for r in 0..2 {
            let t = |s: &Frames| -> Vec<f64> {
                (0..s.len())
                    .filter(|&i| s.replica[i] == r)
                    .map(|i| s.time_ps[i])
                    .collect()
            };
            let (a, b, c) = (t(&tr), t(&va), t(&te));
            assert!(a.last() < b.first() && b.last() < c.first());
            assert!(a.windows(2).all(|w| w[1] == w[0] + 1.0));
        }
    }

    #[test]
    fn replica_split_assigns_whole_replicas() {
        let f = toy(10, 5);
        let [tr, va, te] = split(&f, [0.8, 0.1, 0.1], SplitBy::Replica, 0).unwrap();
        assert_eq!((tr.len(), va.len(), te.len()), (40, 5, 5));
        assert!(tr.replica.iter().all(|&r| r < 8) && va.replica == vec![8; 5]);
        assert!(split(&toy(2, 5), [0.8, 0.1, 0.1], SplitBy::Replica, 0).is_err());
        assert!(split(&f, [0.8, 0.3, 0.1], SplitBy::Time, 0).is_err());
    }

    /// Positions files that would be read as something they are not are refused by name:
    /// integers (not nm) and arrays without frames or atoms.
    #[test]
    fn integer_or_empty_positions_are_refused() {
        let dir = std::env::temp_dir().join(format!("bgen-frames-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ints = dir.join("ints.npy");
        write_npy_i64(&ints, &[2, 4, 3], &[1; 24]).unwrap();
        let msg = read_frames_npy(&ints).unwrap_err().to_string();
        assert!(
            msg.contains("ints.npy") && msg.contains("integers"),
            "{msg}"
        );
        let empty = dir.join("empty.npy");
        bgen_system::npy::write_npy(&empty, &[0, 22, 3], &[], true).unwrap();
        let msg = read_frames_npy(&empty).unwrap_err().to_string();
        assert!(
            msg.contains("empty.npy") && msg.contains("no frames"),
            "{msg}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A frame time that is not a number is refused by file and frame, not split silently.
    #[test]
    fn non_finite_frame_times_are_refused() {
        let dir = std::env::temp_dir().join(format!("bgen-times-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut f = toy(1, 4);
        f.time_ps[2] = f64::NAN;
        f.write(&dir, "train_").unwrap();
        let msg = Frames::read(&dir, "train_").unwrap_err().to_string();
        assert!(
            msg.contains("train_time_ps.npy") && msg.contains("frame 2"),
            "{msg}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
