//! Training a tiny TarFlow lowers held-out NLL; checkpoints resume exactly; a corrupt or
//! mismatched checkpoint is reported with its file.

use bgen_models::data::Normalizer;
use bgen_models::train::{learning_rate, OptimConfig, Trainer};
use bgen_models::TarFlowConfig;
use tch::{Device, Kind, Tensor};

const ATOMS: usize = 5;

/// Frames of a floppy 5-atom "molecule": a template plus correlated noise (nm).
fn frames(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed;
    let mut u = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let template = [
        0.0, 0.0, 0.0, 0.15, 0.0, 0.0, 0.25, 0.1, 0.0, 0.35, 0.1, 0.08, 0.45, 0.0, 0.1,
    ];
    let mut out = Vec::with_capacity(n * 3 * ATOMS);
    for _ in 0..n {
        let bend = 0.08 * (-2.0 * u().ln()).sqrt() * (std::f64::consts::TAU * u()).cos();
        for a in 0..ATOMS {
            for k in 0..3 {
                let g = (-2.0 * u().ln()).sqrt() * (std::f64::consts::TAU * u()).cos();
                let wag = if k == 2 { bend * a as f64 / 4.0 } else { 0.0 };
                out.push(template[3 * a + k] + wag + 0.01 * g);
            }
        }
    }
    out
}

fn tiny_flow() -> TarFlowConfig {
    TarFlowConfig {
        tokens: ATOMS as i64,
        token_dim: 3,
        width: 32,
        blocks: 2,
        layers: 1,
        head_dim: 16,
        mlp_ratio: 2,
        conditioning: None,
    }
}

/// Weight initialisation draws from libtorch's global generator: tests take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn setup(steps: i64) -> (Trainer, Tensor, Tensor) {
    let train = frames(2000, 1);
    let val = frames(500, 2);
    let norm = Normalizer::fit(&train, ATOMS);
    let model = tiny_flow();
    let cfg = OptimConfig {
        steps,
        batch_size: 64,
        lr: 3e-3,
        ema: 0.9,
        ..Default::default()
    };
    let t = Trainer::new(model, cfg, norm.clone(), Device::Cpu);
    (
        t,
        norm.to_model(&train, Kind::Float),
        norm.to_model(&val, Kind::Float),
    )
}

fn batch(data: &Tensor, step: i64, size: i64) -> Tensor {
    let n = data.size()[0];
    let idx: Vec<i64> = (0..size).map(|k| (step * 7919 + k * 104_729) % n).collect();
    data.index_select(0, &Tensor::from_slice(&idx))
}

#[test]
fn training_lowers_held_out_nll() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tch::set_num_threads(1);
    let (mut t, train, val) = setup(300);
    let before = t.nll(&val, false);
    for s in 0..300 {
        t.step(&batch(&train, s, 64));
    }
    let (after, after_ema) = (t.nll(&val, false), t.nll(&val, true));
    eprintln!("held-out NLL per dim: {before:.3} -> {after:.3} (EMA {after_ema:.3})");
    assert!(after < before - 0.3, "{before} -> {after}");
    assert!(after_ema < before - 0.3);
}

#[test]
fn one_cycle_schedule() {
    let c = OptimConfig {
        steps: 1000,
        lr: 1e-3,
        ..Default::default()
    };
    assert!((learning_rate(&c, 0) - 1e-3 / 500.0).abs() < 1e-15);
    assert!((learning_rate(&c, 50) - 1e-3).abs() < 1e-12);
    assert!(learning_rate(&c, 500) < 1e-3 && learning_rate(&c, 500) > 1e-4);
    assert!((learning_rate(&c, 1000) - 1e-3 / 500.0).abs() < 1e-12);
}

#[test]
fn checkpoints_resume_exactly_and_bad_ones_are_reported() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tch::set_num_threads(1);
    let dir = std::env::temp_dir().join(format!("bgen-train-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (mut a, train, val) = setup(40);
    for s in 0..20 {
        a.step(&batch(&train, s, 64));
    }
    let (mut b, _, _) = setup(40);
    for s in 0..10 {
        b.step(&batch(&train, s, 64));
    }
    b.save(&dir).unwrap();
    drop(b);
    let mut b = Trainer::load(&dir, Device::Cpu).unwrap();
    assert_eq!(b.state.step, 10);
    for s in 10..20 {
        b.step(&batch(&train, s, 64));
    }
    let (na, nb) = (a.nll(&val, true), b.nll(&val, true));
    assert!((na - nb).abs() < 1e-6, "{na} vs {nb}");
    let saved = b.save(&dir).unwrap();
    assert!(saved.ends_with("ckpt-00000020") && !dir.join("ckpt-00000010").exists());

    // A truncated weights file.
    let w = saved.join("weights.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    let err = Trainer::load(&dir, Device::Cpu).err().unwrap().to_string();
    // The checkpoint's manifest catches it first; without a manifest (older checkpoints), so
    // does the safetensors reader.
    assert!(
        err.contains("weights.safetensors") && err.contains("damaged"),
        "{err}"
    );
    let manifest = std::fs::read(saved.join("manifest.txt")).unwrap();
    std::fs::remove_file(saved.join("manifest.txt")).unwrap();
    let err = Trainer::load(&dir, Device::Cpu).err().unwrap().to_string();
    assert!(
        err.contains("weights.safetensors") && err.contains("corrupt"),
        "{err}"
    );
    std::fs::write(&w, &bytes).unwrap();
    // An edited state.json: the manifest names it.
    let sp = saved.join("state.json");
    let text = std::fs::read_to_string(&sp).unwrap();
    std::fs::write(saved.join("manifest.txt"), &manifest).unwrap();
    std::fs::write(&sp, text.replace("\"width\": 32", "\"width\": 64")).unwrap();
    let err = Trainer::load(&dir, Device::Cpu).err().unwrap().to_string();
    assert!(
        err.contains("state.json") && err.contains("damaged"),
        "{err}"
    );
    std::fs::remove_file(saved.join("manifest.txt")).unwrap();
    // A configuration that does not match the tensors (no manifest to catch the edit).
    let text = std::fs::read_to_string(&sp).unwrap();
    std::fs::write(&sp, text.replace("\"width\": 32", "\"width\": 64")).unwrap();
    let err = Trainer::load(&dir, Device::Cpu).err().unwrap().to_string();
    assert!(
        err.contains("safetensors") && err.contains("match") && err.lines().count() <= 2,
        "{err}"
    );
    std::fs::write(&sp, text.replace("\"width\": 64", "\"width\": 32")).unwrap();
    // NaN weights, saved as such (checksums and all): refused by name, not sampled into NaNs.
    let c = Trainer::load(&dir, Device::Cpu).unwrap();
    tch::no_grad(|| {
        let vars = bgen_models::train::variables_by_name(&c.ema_vs);
        let _ = vars[0].1.get(0).fill_(f64::NAN);
    });
    c.save(&dir).unwrap();
    let err = Trainer::load_model(&dir, Device::Cpu, true)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("ema.safetensors") && err.contains("NaN or infinite"),
        "{err}"
    );
    assert!(Trainer::load_model(&dir, Device::Cpu, false).is_ok());
    // No checkpoint at all.
    let err = Trainer::load(&dir.join("nothing"), Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("latest.json"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Data-parallel steps (2 and 3 workers, the batch split unevenly for 3) give the same losses
/// and weights as one worker, up to float round-off, for both model families.
#[test]
fn data_parallel_steps_match_one_worker() {
    let configs: [bgen_models::ModelConfig; 2] = [
        tiny_flow().into(),
        bgen_models::ArbgConfig {
            atoms: ATOMS as i64,
            width: 32,
            layers: 1,
            head_dim: 16,
            bins: 32,
            range: 3.0,
            conditioning: None,
        }
        .into(),
    ];
    let data = frames(64, 5);
    let norm = Normalizer::fit(&data, ATOMS);
    let x = norm.to_model(&data, Kind::Float);
    // A short schedule, so that the three steps run near the peak learning rate.
    let cfg = OptimConfig {
        steps: 20,
        batch_size: 64,
        lr: 3e-3,
        ..Default::default()
    };
    for config in configs {
        let fresh = || {
            let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
            tch::manual_seed(0);
            Trainer::new(config.clone(), cfg.clone(), norm.clone(), Device::Cpu)
        };
        let mut one = fresh();
        let losses: Vec<f64> = (0..3).map(|_| one.step(&x)).collect();
        for workers in [2, 3] {
            let mut many = fresh();
            many.set_workers(workers);
            assert_eq!(many.workers(), workers);
            for (k, &l) in losses.iter().enumerate() {
                let m = many.step(&x);
                assert!(
                    (m - l).abs() < 1e-5 * l.abs().max(1.0),
                    "step {k}: {m} vs {l}"
                );
            }
            let (a, b) = (one.vs.variables(), many.vs.variables());
            for (name, v) in &a {
                let d = f64::try_from((v - &b[name]).abs().max()).unwrap();
                let s = f64::try_from(v.abs().max()).unwrap().max(1e-3);
                assert!(
                    d < 1e-4 * s,
                    "{} {workers} workers, {name}: {d}",
                    config.family()
                );
            }
            // And they moved: the steps did something.
            let fresh_vars = fresh().vs.variables();
            let moved = a
                .iter()
                .any(|(n, v)| f64::try_from((v - &fresh_vars[n]).abs().max()).unwrap() > 3e-3);
            assert!(moved, "{}: the steps changed nothing", config.family());
        }
    }
}

/// `--grow-blocks`: a fine-tune that adds flow blocks starts as the same map (the NLL of the
/// EMA and raw weights equal to round-off), its new blocks then train (their output layer
/// leaves zero), and growing to as few blocks as the model has is refused.
#[test]
fn grown_blocks_start_as_the_identity_and_then_train() {
    use bgen_models::train::Additions;
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tch::set_num_threads(1);
    let dir = std::env::temp_dir().join(format!("bgen-grow-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (mut a, train, val) = setup(40);
    for s in 0..30 {
        a.step(&batch(&train, s, 64));
    }
    a.save(&dir).unwrap();
    let grow = |blocks| Additions {
        blocks,
        ..Default::default()
    };
    let mut g = Trainer::load_weights(&dir, Device::Cpu, grow(Some(4))).unwrap();
    let bgen_models::ModelConfig::TarFlow(c) = &g.state.model else {
        panic!("a TarFlow")
    };
    assert_eq!(c.blocks, 4);
    for ema in [true, false] {
        let (before, after) = (a.nll(&val, ema), g.nll(&val, ema));
        assert!(
            (before - after).abs() < 1e-5 * before.abs().max(1.0),
            "{before} vs {after}"
        );
    }
    let out_norm = |t: &Trainer| -> f64 {
        let v = t.vs.variables();
        let w = &v["block3.proj_out.weight"];
        f64::try_from(w.abs().sum(Kind::Float)).unwrap()
    };
    assert_eq!(out_norm(&g), 0.0, "a new block starts as the identity");
    for s in 0..5 {
        g.step(&batch(&train, s, 64));
    }
    assert!(out_norm(&g) > 0.0, "the new block trains");
    for (blocks, says) in [(2, "has 2 blocks already"), (1, "has 2 blocks already")] {
        let err = Trainer::load_weights(&dir, Device::Cpu, grow(Some(blocks)))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(says), "{err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
