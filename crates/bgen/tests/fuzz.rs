//! Mutation fuzzing of every reader of user files: PDB (and the force-field assignment behind
//! it), npy, XTC, DCD, an MD run's checkpoint, a `bgen run` TOML, a sequences file, a merged
//! `dataset.json`. Valid files are mutated at random (bit flips,
//! random bytes, cuts, repeated or inserted slices, changed digits in text) and each reader must
//! return Ok or an error, never panic. The default test runs 1,000 seeded mutations per target
//! (the same inputs on every machine, a second or two each); `scripts/fuzz.sh` runs more
//! (BGEN_FUZZ_RUNS per target) and reports the rate. An
//! input that panics is saved under the temporary directory and named in the failure, to become
//! a regression test.

use bgen_md::{dataset, MdRun, MdSettings};
use bgen_system::pdb::PdbFile;
use bgen_system::{Setup, System};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One random mutation of `b` (which stays non-empty where it can).
fn mutate(b: &mut Vec<u8>, rng: &mut Rng) {
    if b.is_empty() {
        b.push(rng.next() as u8);
        return;
    }
    let at = rng.below(b.len());
    match rng.below(8) {
        0 => b[at] ^= 1 << rng.below(8),
        1 => b[at] = rng.next() as u8,
        2 => b.truncate(at),
        3 => {
            let len = rng.below(64).min(b.len() - at);
            let piece: Vec<u8> = b[at..at + len].to_vec();
            let to = rng.below(b.len());
            b.splice(to..to, piece);
        }
        4 => {
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            b.splice(at..at, bytes);
        }
        5 => {
            // A digit in text becomes another character that numbers are made of.
            if let Some(k) = (at..b.len()).find(|&k| b[k].is_ascii_digit()) {
                b[k] = b"0123456789-.eE+ "[rng.below(16)];
            }
        }
        6 => {
            // Extreme little/big-endian integers and floats at a 4-byte boundary.
            let k = at / 4 * 4;
            if k + 4 <= b.len() {
                let v: [u8; 4] = match rng.below(6) {
                    0 => i32::MAX.to_le_bytes(),
                    1 => i32::MIN.to_be_bytes(),
                    2 => (-1i32).to_le_bytes(),
                    3 => f32::NAN.to_be_bytes(),
                    4 => f32::INFINITY.to_le_bytes(),
                    _ => 0x7fff_fff0u32.to_be_bytes(),
                };
                b[k..k + 4].copy_from_slice(&v);
            }
        }
        _ => {
            let from = rng.below(b.len());
            let to = (from + rng.below(256)).min(b.len());
            b.drain(from..to);
        }
    }
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bgen-fuzz-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

thread_local! {
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs (once) a panic hook that stays silent for panics caught inside [`fuzz`] and reports
/// every other one as usual.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                default(info);
            }
        }));
    });
}

/// Runs `read` on `n` seeded mutations of `seed`; panics name the saved input.
fn fuzz(name: &str, seed: &[u8], n: u64, read: impl Fn(&[u8])) -> u64 {
    let out = scratch(name);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ name.len() as u64);
    let t0 = Instant::now();
    let mut runs = 0u64;
    while runs < n {
        let mut b = seed.to_vec();
        for _ in 0..1 + rng.below(4) {
            mutate(&mut b, &mut rng);
        }
        quiet_panics();
        QUIET.with(|q| q.set(true));
        let r = catch_unwind(AssertUnwindSafe(|| read(&b)));
        QUIET.with(|q| q.set(false));
        if let Err(e) = r {
            let p = out.join(format!("crash-{runs}"));
            std::fs::write(&p, &b).unwrap();
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{name}: a reader panicked ({msg}) on {}", p.display());
        }
        runs += 1;
    }
    let secs = t0.elapsed().as_secs_f64();
    eprintln!("{name}: {runs} executions in {secs:.1} s, no panic");
    let _ = std::fs::remove_dir_all(out);
    runs
}

/// Mutations per target: BGEN_FUZZ_RUNS, default 1,000.
fn runs() -> u64 {
    std::env::var("BGEN_FUZZ_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000)
}

fn through_file(name: &str, bytes: &[u8], read: impl Fn(&Path)) {
    let d = std::env::temp_dir().join(format!("bgen-fuzz-io-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join(name);
    std::fs::write(&p, bytes).unwrap();
    read(&p);
}

#[test]
fn fuzz_pdb() {
    let seed = include_bytes!("../../bgen-system/data/systems/aldp.pdb");
    fuzz("pdb", seed, runs(), |b| {
        let text = String::from_utf8_lossy(b);
        if let Ok(pdb) = PdbFile::parse(&text, "fuzz.pdb") {
            let _ = System::from_pdb(&pdb, Setup::Amber99sbildnObc2, None);
        }
    });
}

#[test]
fn fuzz_npy() {
    let d = scratch("npy-seed");
    let sys = System::named("aldp", None, None).unwrap();
    let p = d.join("x.npy");
    bgen_system::npy::write_npy(
        &p,
        &[2, 22, 3],
        &[sys.positions.clone(), sys.positions.clone()].concat(),
        true,
    )
    .unwrap();
    let seed = std::fs::read(&p).unwrap();
    fuzz("npy", &seed, runs(), |b| {
        let _ = bgen_system::npy::parse_npy(b, "fuzz.npy");
        through_file("fuzz.npy", b, |p| {
            let _ = dataset::load(p);
        });
    });
}

/// Three copies of aldp's structure (frames x atoms x 3, nm): the seed trajectory.
fn three_frames() -> Vec<f64> {
    let sys = System::named("aldp", None, None).unwrap();
    (0..3).flat_map(|_| sys.positions.iter().copied()).collect()
}

#[test]
fn fuzz_xtc() {
    let d = scratch("xtc-seed");
    let x = three_frames();
    let p = d.join("x.xtc");
    bgen_md::xtc::write_xtc(&p, &x, 22, 1.0, 1000.0).unwrap();
    let seed = std::fs::read(&p).unwrap();
    fuzz("xtc", &seed, runs(), |b| {
        through_file("fuzz.xtc", b, |p| {
            let _ = dataset::load(p);
        });
    });
}

#[test]
fn fuzz_dcd() {
    let d = scratch("dcd-seed");
    let x = three_frames();
    let p = d.join("x.dcd");
    bgen_md::dcd::write_dcd(&p, &x, 22, 1.0).unwrap();
    let seed = std::fs::read(&p).unwrap();
    fuzz("dcd", &seed, runs(), |b| {
        through_file("fuzz.dcd", b, |p| {
            let _ = bgen_md::dcd::read_dcd(p);
        });
    });
}

#[test]
fn fuzz_md_checkpoint() {
    let d = scratch("ckpt");
    let run_dir = d.join("run");
    let mut s = MdSettings::new("aldp", Setup::Amber99sbildnObc2);
    s.ns_per_replica = 0.002;
    s.save_every_ps = 1.0;
    s.equilibrate_ps = 0.0;
    let mut run = MdRun::create(&run_dir, s, System::named("aldp", None, None).unwrap()).unwrap();
    run.run(Duration::ZERO, Some(1), |_| {}).unwrap();
    drop(run);
    let cp = run_dir.join("checkpoint.json");
    let seed = std::fs::read(&cp).unwrap();
    // Resuming is slower (it builds the system): fewer executions in the same time.
    fuzz("checkpoint", &seed, runs(), |b| {
        std::fs::write(&cp, b).unwrap();
        let _ = MdRun::resume(&run_dir);
    });
}

#[test]
fn fuzz_run_config() {
    // Every key of the settings, as `bgen run` would save them.
    let seed = toml::to_string(&bgen::cli::pipeline::RunConfig::default()).unwrap();
    assert!(bgen::cli::pipeline::check_config(&seed).is_ok());
    fuzz("toml", seed.as_bytes(), runs(), |b| {
        let _ = bgen::cli::pipeline::check_config(&String::from_utf8_lossy(b));
    });
}

#[test]
fn fuzz_sequences_file() {
    let seed = b"\xef\xbb\xbf# training dipeptides\nKW\naa  # lower case\n\nGP\nHHHH\n";
    fuzz("sequences", seed, runs(), |b| {
        through_file("seqs.txt", b, |p| {
            let mut a = bgen_md::MdArgs::new(Default::default(), PathBuf::from("unused"));
            a.sequences_file = Some(p.to_path_buf());
            let _ = bgen_md::shards::shards_of(&a);
        })
    });
}

#[test]
fn fuzz_dataset_json() {
    let d = scratch("dataset");
    let md = d.join("md");
    let mut a = bgen_md::MdArgs::new(Default::default(), md.clone());
    a.sequences = vec!["GG".into()];
    (a.ns, a.save_every_ps, a.equilibrate_ps) = (Some(0.002), Some(0.5), Some(0.0));
    bgen_md::stage::run(a).unwrap();
    let m = bgen_md::shards::MergeArgs {
        run: md,
        out: d.join("data"),
        held_out: Vec::new(),
        held_out_count: 0,
        seed: 0,
        finished_only: false,
    };
    bgen_md::shards::merge(m).unwrap();
    let seed = std::fs::read(d.join("data/dataset.json")).unwrap();
    let rings = bgen_system::RingClosure::Both;
    assert!(bgen::models::transfer::load_dataset(&d.join("data"), false, rings, 0).is_ok());
    fuzz("dataset", &seed, runs(), |b| {
        through_file("dataset.json", b, |p| {
            let _ = bgen::models::transfer::load_dataset(p, false, rings, 0);
        })
    });
}
