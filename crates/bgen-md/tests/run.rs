//! Resumable runs: an interrupted and resumed run equals an uninterrupted one frame for frame;
//! damaged checkpoints give clear errors.

use bgen_md::ExchangeSummary;
use bgen_md::{dataset, MdRun, MdSettings};
use bgen_system::{Setup, System};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bgen-md-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn settings() -> MdSettings {
    let mut s = MdSettings::new("aldp", Setup::Amber99sbildnObc2);
    s.ns_per_replica = 0.01;
    s.replicas = 3;
    s.seed = 42;
    s.save_every_ps = 0.5;
    s.equilibrate_ps = 1.0;
    s
}

fn aldp() -> System {
    System::named("aldp", None, None).unwrap()
}

/// Runs `s` again, stopped after each of `stops` checkpoints and resumed, and checks that every
/// such run ends with the frames of the uninterrupted run in `full`, bit for bit, and with its
/// exchange summary `summary`. Runs on the current thread pool (the kernel depends on it).
fn resumes_exactly(
    full: &Path,
    s: &MdSettings,
    summary: Option<&ExchangeSummary>,
    name: &str,
    stops: &[usize],
) {
    let want = dataset::load(full).unwrap();
    for &stop in stops {
        let dir = tmp(&format!("{name}-cut-{stop}"));
        let mut run = MdRun::create(&dir, s.clone(), aldp()).unwrap();
        run.run(Duration::ZERO, Some(stop), |_| {}).unwrap();
        drop(run);
        let mut run = MdRun::resume(&dir).unwrap();
        run.run(Duration::ZERO, None, |_| {}).unwrap();
        assert_eq!(
            dataset::load(&dir).unwrap(),
            want,
            "{name}: bit for bit after a resume from checkpoint {stop}"
        );
        assert_eq!(run.exchange_summary().as_ref(), summary, "{name}");
        drop(run);
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn interrupted_run_resumes_exactly() {
    let (a, b) = (tmp("full"), tmp("cut"));
    let mut run = MdRun::create(&a, settings(), aldp()).unwrap();
    run.run(Duration::from_secs(3600), None, |_| {}).unwrap();
    assert!(run.is_complete());
    let full = dataset::load(&a).unwrap();
    assert_eq!(full.len(), 3 * 20);
    assert!(
        !a.join("chunks").read_dir().unwrap().any(|_| true),
        "chunks are merged"
    );

    // Checkpoint after every frame interval, stop after 7 (2 of equilibration, 5 with frames).
    let mut run = MdRun::create(&b, settings(), aldp()).unwrap();
    run.run(Duration::ZERO, Some(7), |_| {}).unwrap();
    assert!(!run.is_complete());
    drop(run);
    let partial = dataset::load(&b).unwrap();
    assert_eq!(partial.len(), 3 * 5, "frames of the checkpointed chunks");
    // A byte flipped on disk in a chunk is caught by its manifest, naming the file.
    let chunk = std::fs::read_dir(b.join("chunks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".frames.npy"))
        .unwrap();
    let good = std::fs::read(&chunk).unwrap();
    let mut bad = good.clone();
    *bad.last_mut().unwrap() ^= 0x40;
    std::fs::write(&chunk, &bad).unwrap();
    let err = dataset::load(&b).unwrap_err().to_string();
    assert!(
        err.contains(&*chunk.file_name().unwrap().to_string_lossy()) && err.contains("damaged"),
        "{err}"
    );
    std::fs::write(&chunk, &good).unwrap();
    // A chunk written after the last checkpoint (a kill between the two writes) is dropped.
    partial.write(&b.join("chunks"), "00005.").unwrap();
    // So are final files of a merge cut short (a frames.npy without its energies): the run is
    // not complete until its checkpoint says so, and until then it is not training data.
    bgen_system::npy::write_npy(&b.join("frames.npy"), &[15, 22, 3], &partial.x, true).unwrap();
    let seen = dataset::load(&b).unwrap();
    assert!(
        seen.energy.iter().all(|e| e.is_finite()),
        "read from chunks"
    );
    let err = dataset::load_run_temperature(&b).unwrap_err().to_string();
    assert!(err.contains("has not finished"), "{err}");
    let mut run = MdRun::resume(&b).unwrap();
    run.run(Duration::ZERO, None, |_| {}).unwrap();
    assert!(run.is_complete());
    let resumed = dataset::load(&b).unwrap();
    assert_eq!(resumed, full, "every frame once, bit for bit");
    // One writer per directory: a second open while this one holds it is refused.
    let err = MdRun::resume(&b).err().unwrap().to_string();
    assert!(err.contains("another bgen process"), "{err}");
    drop(run);
    // Resuming a complete run does nothing.
    let mut run = MdRun::resume(&b).unwrap();
    run.run(Duration::ZERO, None, |_| panic!("no steps expected"))
        .unwrap();
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// Sixteen replicas on one thread fill the conformation lanes and step in lockstep: the run
/// resumes bit for bit, and every saved energy is its own frame's (no lane mixed up: frames'
/// energies differ by kJ/mol, while the frames' f32 positions move an energy by about 1e-3).
#[test]
fn lockstep_replicas_resume_exactly_with_their_own_energies() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut s = settings();
    s.replicas = 16;
    s.ns_per_replica = 0.004;
    let a = tmp("lockstep-full");
    let sys = aldp();
    if sys.model().batch_lanes_filled_by(s.precision, 16).is_none() {
        return; // a CPU without AVX2: no conformation lanes, nothing in lockstep
    }
    pool.install(|| {
        let mut run = MdRun::create(&a, s.clone(), aldp()).unwrap();
        run.run(Duration::from_secs(3600), None, |_| {}).unwrap();
        resumes_exactly(&a, &s, None, "lockstep", &[4]);
    });
    let full = dataset::load(&a).unwrap();
    assert_eq!(full.len(), 16 * 8);
    let m = sys.model();
    let mut ws = m.workspace_in(s.precision);
    let d = 3 * sys.n_atoms();
    for (k, e) in full.energy.iter().enumerate() {
        let want = m.energy(&full.x[k * d..(k + 1) * d], &mut ws).total();
        assert!((e - want).abs() < 0.05, "frame {k}: {e} vs {want}");
    }
    std::fs::remove_dir_all(a).unwrap();
}

/// A ladder of 19 rungs on two threads: groups of 10 and 9 replicas in lockstep (the smaller
/// padded to the same lanes), with swaps between the groups; resumed from its very first
/// checkpoint and from a later one, it continues bit for bit.
#[test]
fn a_lockstep_ladder_with_a_smaller_group_resumes_exactly() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let mut s = ladder_settings();
    s.replicas = 19;
    s.temperatures_k = (0..19).map(|k| 300.0 + 10.0 * k as f64).collect();
    s.ns_per_replica = 0.002;
    if aldp()
        .model()
        .batch_lanes_filled_by(s.precision, 10)
        .is_none()
    {
        return; // no conformation lanes on this CPU
    }
    let a = tmp("ladder-full");
    pool.install(|| {
        let mut run = MdRun::create(&a, s.clone(), aldp()).unwrap();
        run.run(Duration::from_secs(3600), None, |_| {}).unwrap();
        let summary = run.exchange_summary();
        resumes_exactly(&a, &s, summary.as_ref(), "ladder", &[1, 3]);
    });
    assert_eq!(dataset::load(&a).unwrap().len(), 19 * 4);
    std::fs::remove_dir_all(a).unwrap();
}

#[test]
fn damaged_runs_are_reported() {
    let d = tmp("bad");
    let mut run = MdRun::create(&d, settings(), aldp()).unwrap();
    run.run(Duration::ZERO, Some(1), |_| {}).unwrap();
    drop(run);
    let err = MdRun::create(&d, settings(), aldp())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("already holds a run"), "{err}");
    let cp = d.join("checkpoint.json");
    let text = std::fs::read_to_string(&cp).unwrap();
    std::fs::write(&cp, &text[..text.len() / 2]).unwrap();
    let err = MdRun::resume(&d).err().unwrap().to_string();
    assert!(
        err.contains("checkpoint.json") && err.contains("corrupt"),
        "{err}"
    );
    // Valid JSON with one position too many (a non-finite number cannot be written in JSON:
    // 1e999 failed as a parse error, the truncation's path above).
    std::fs::write(&cp, text.replacen("\"x\": [", "\"x\": [0.1, ", 1)).unwrap();
    let err = MdRun::resume(&d).err().unwrap().to_string();
    assert!(
        err.contains("checkpoint.json") && err.contains("replica 0") && err.contains("malformed"),
        "{err}"
    );
    let mut s = settings();
    s.timestep_fs = 0.3;
    let err = MdRun::create(&tmp("bad2"), s, aldp())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("whole number"), "{err}");
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn an_unstable_run_stops_with_a_clear_error() {
    let d = tmp("unstable");
    let mut s = settings();
    s.timestep_fs = 10.0; // far too long without constraints
    s.save_every_ps = 1.0;
    s.ns_per_replica = 0.1;
    let mut run = MdRun::create(&d, s, aldp()).unwrap();
    let err = run
        .run(Duration::ZERO, None, |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("non-finite") && err.contains("replica"),
        "{err}"
    );
    std::fs::remove_dir_all(d).unwrap();
}

fn ladder_settings() -> MdSettings {
    let mut s = settings();
    s.temperatures_k = vec![300.0, 400.0, 550.0];
    s.exchange_every_ps = 0.1;
    s
}

#[test]
fn replica_exchange_resumes_exactly_and_reports_its_ladder() {
    let a = tmp("remd-full");
    let mut run = MdRun::create(&a, ladder_settings(), aldp()).unwrap();
    run.run(Duration::from_secs(3600), None, |_| {}).unwrap();
    let full = dataset::load(&a).unwrap();
    assert_eq!(full.len(), 3 * 20);
    let summary = run.exchange_summary().unwrap();
    assert_eq!(summary.acceptance.len(), 2);
    assert_eq!(summary.rounds, 110, "one round per 0.1 ps over 11 ps");
    assert!(summary.acceptance.iter().any(|&x| x > 0.0), "{summary:?}");
    let run_json = std::fs::read_to_string(a.join("run.json")).unwrap();
    assert!(run_json.contains("\"acceptance\""), "{run_json}");
    // Each replica keeps its temperature: the hot rung's mean potential energy is far higher.
    let mean = |r: i64| {
        let e: Vec<f64> = (0..full.len())
            .filter(|&i| full.replica[i] == r)
            .map(|i| full.energy[i])
            .collect();
        e.iter().sum::<f64>() / e.len() as f64
    };
    assert!(mean(2) > mean(0) + 20.0, "{} vs {}", mean(2), mean(0));
    // Where frames stand for one ensemble, a ladder run gives only its 300 K replica.
    let cold = dataset::load_run_temperature(&a).unwrap();
    assert_eq!(cold.len(), 20);
    assert!(cold.replica.iter().all(|&r| r == 0));
    assert_eq!(
        dataset::load_run_temperature(&a.join("frames.npy"))
            .unwrap()
            .len(),
        60
    );

    resumes_exactly(&a, &ladder_settings(), Some(&summary), "remd", &[5]);
    std::fs::remove_dir_all(a).unwrap();
}

/// Two ladders of the same three temperatures side by side (6 replicas): each rung holds its
/// temperature, the run's temperature is the lowest rung of both, the raised rungs are counted
/// per ladder, and the run resumes bit for bit.
#[test]
fn ladders_side_by_side_sample_their_rungs_and_resume_exactly() {
    let a = tmp("ladders-full");
    let mut s = ladder_settings();
    s.replicas = 6;
    assert_eq!(s.ladders(), 2);
    assert_eq!(
        s.replica_temperatures(),
        [300.0, 400.0, 550.0, 300.0, 400.0, 550.0]
    );
    let mut run = MdRun::create(&a, s.clone(), aldp()).unwrap();
    run.run(Duration::from_secs(3600), None, |_| {}).unwrap();
    let full = dataset::load(&a).unwrap();
    assert_eq!(full.len(), 6 * 20);
    let summary = run.exchange_summary().unwrap();
    assert_eq!(summary.acceptance.len(), 2, "per pair of one ladder");
    let mean = |r: i64| {
        let e: Vec<f64> = (0..full.len())
            .filter(|&i| full.replica[i] == r)
            .map(|i| full.energy[i])
            .collect();
        e.iter().sum::<f64>() / e.len() as f64
    };
    for hot in [2, 5] {
        for cold in [0, 3] {
            assert!(mean(hot) > mean(cold) + 20.0, "{hot} vs {cold}");
        }
    }
    let replicas = |f: &dataset::Frames| {
        let mut r = f.replica.clone();
        r.dedup();
        r
    };
    assert_eq!(
        replicas(&dataset::load_run_temperature(&a).unwrap()),
        [0, 3]
    );
    assert_eq!(
        replicas(&dataset::load_raised_rungs(&a, 1).unwrap()),
        [1, 4]
    );
    assert_eq!(
        replicas(&dataset::load_raised_temperatures(&a).unwrap()),
        [1, 2, 4, 5]
    );
    let err = dataset::load_raised_rungs(&a, 3).unwrap_err().to_string();
    assert!(err.contains("the run has 2"), "{err}");
    // Rung by rung: each raised rung's temperature with its replicas' frames.
    let apart = dataset::load_raised_rungs_apart(&a, 2).unwrap();
    let temps: Vec<f64> = apart.iter().map(|r| r.0).collect();
    assert_eq!(temps, [400.0, 550.0]);
    assert_eq!(replicas(&apart[0].1), [1, 4]);
    assert_eq!(replicas(&apart[1].1), [2, 5]);
    assert_eq!(apart[0].1.x, dataset::load_raised_rungs(&a, 1).unwrap().x);
    let err = dataset::load_raised_rungs_apart(&a, 3)
        .unwrap_err()
        .to_string();
    assert!(err.contains("the run has 2"), "{err}");

    resumes_exactly(&a, &s, Some(&summary), "ladders", &[5]);
    std::fs::remove_dir_all(a).unwrap();
}

#[test]
fn bad_ladders_are_refused() {
    type Change = fn(&mut MdSettings);
    let cases: [(Change, &str); 4] = [
        (
            |s| s.temperatures_k = vec![310.0, 400.0, 550.0],
            "starts at 310",
        ),
        (
            |s| s.temperatures_k = vec![300.0, 300.0, 550.0],
            "increasing",
        ),
        (|s| s.temperatures_k = vec![300.0, 400.0], "whole ladders"),
        (|s| s.exchange_every_ps = 0.3, "divides the save interval"),
    ];
    for (change, want) in cases {
        let mut s = ladder_settings();
        change(&mut s);
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains(want), "{want}: {err}");
    }
}

/// A finished replica-exchange run lengthened to twice its ns ends with the frames of a run
/// made that long from the start, bit for bit, and its exchange summary; so does one stopped
/// after its first checkpoint at the new length and resumed. Shortening is refused.
#[test]
fn a_finished_run_lengthens_as_if_made_that_long() {
    let mut long = ladder_settings();
    long.ns_per_replica = 0.02;
    let a = tmp("lengthen-full");
    let mut run = MdRun::create(&a, long.clone(), aldp()).unwrap();
    run.run(Duration::from_secs(3600), None, |_| {}).unwrap();
    let want = dataset::load(&a).unwrap();
    assert_eq!(want.len(), 3 * 40);
    let summary = run.exchange_summary();
    drop(run);
    for stop in [None, Some(1)] {
        let dir = tmp(&format!("lengthen-{stop:?}"));
        let mut run = MdRun::create(&dir, ladder_settings(), aldp()).unwrap();
        run.run(Duration::from_secs(3600), None, |_| {}).unwrap();
        assert_eq!(dataset::load(&dir).unwrap().len(), 3 * 20);
        drop(run);
        let mut run = MdRun::resume(&dir).unwrap();
        let err = run.lengthen(0.005).unwrap_err().to_string();
        assert!(err.contains("only be lengthened"), "{err}");
        run.lengthen(0.02).unwrap();
        assert!(!run.is_complete());
        assert!(!dir.join("frames.npy").exists(), "the old length's files");
        run.run(Duration::ZERO, stop, |_| {}).unwrap();
        if stop.is_some() {
            drop(run);
            run = MdRun::resume(&dir).unwrap();
            run.run(Duration::ZERO, None, |_| {}).unwrap();
        }
        assert!(run.is_complete());
        assert_eq!(dataset::load(&dir).unwrap(), want, "{stop:?}: bit for bit");
        assert_eq!(run.exchange_summary(), summary, "{stop:?}");
        drop(run);
        std::fs::remove_dir_all(dir).unwrap();
    }
    std::fs::remove_dir_all(a).unwrap();
}

/// A chunk removed from a stopped run: the resumed run cannot merge its frames, and says how many
/// chunk files it found of those its checkpoint counts.
#[test]
fn a_removed_chunk_is_named_when_the_run_finishes() {
    let d = tmp("removed-chunk");
    let mut run = MdRun::create(&d, settings(), aldp()).unwrap();
    run.run(Duration::ZERO, Some(7), |_| {}).unwrap();
    drop(run);
    let chunks = d.join("chunks");
    let first: Vec<_> = std::fs::read_dir(&chunks)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("00001.")
        })
        .collect();
    assert!(!first.is_empty(), "a chunk to remove");
    first.iter().for_each(|p| std::fs::remove_file(p).unwrap());
    let err = MdRun::resume(&d)
        .and_then(|mut run| run.run(Duration::ZERO, None, |_| {}).map(|_| ()))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("chunks") && err.contains("expected") && err.contains("removed or cut"),
        "{err}"
    );
    std::fs::remove_dir_all(d).unwrap();
}

/// Settings from Python or TOML pass `MdArgs::check`, which clap's `requires` stands in for on
/// the command line: a shard index without a count (or the reverse), or an index past the
/// count, is refused by name before any work.
#[test]
fn shard_settings_are_checked_without_the_command_line() {
    let mut a = bgen_md::stage::MdArgs::new(Default::default(), tmp("shards-check"));
    a.sequences = vec!["AA".into(), "GG".into()];
    a.check().unwrap();
    for (index, count, says) in [
        (Some(0), None, "shard_index and shard_count go together"),
        (None, Some(2), "shard_index and shard_count go together"),
        (
            Some(2),
            Some(2),
            "shard_index 2: must be below shard_count 2",
        ),
    ] {
        (a.shard_index, a.shard_count) = (index, count);
        let err = a.check().unwrap_err().to_string();
        assert!(err.contains(says), "{index:?} {count:?}: {err}");
    }
    (a.shard_index, a.shard_count) = (Some(1), Some(2));
    a.check().unwrap();
}
