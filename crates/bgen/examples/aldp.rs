//! The library API end to end on alanine dipeptide, in a few minutes on one core: MD data,
//! a small TarFlow, SNIS and SMC with the CoM term, and the evaluation against held-out MD.
//!
//! Run: `eval "$(scripts/libtorch.sh)" && cargo run --release --example aldp -- [OUT_DIR]`

use bgen::md::{dataset, MdRun, MdSettings, SplitBy};
use bgen::models::data::Normalizer;
use bgen::models::proposal::{FlowProposal, Pool};
use bgen::models::train::{OptimConfig, Trainer};
use bgen::models::{Model, TarFlowConfig};
use bgen::sample::{smc, snis, ComAdjusted, ComForm, Proposal, SmcOptions, SnisOptions};
use bgen::system::{System, Target};
use std::time::Duration;
use tch::{Device, Kind, Tensor};

fn main() -> anyhow::Result<()> {
    tch::set_num_threads(1);
    let out = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or("aldp-example".into()));
    let _ = std::fs::remove_dir_all(&out);

    // 1. The target: alanine dipeptide, amber99sbildn-obc2 at 300 K.
    let sys = System::named("aldp", None, None)?;

    // 2. Data: two 0.5 ns Langevin replicas, a frame every ps, split 80/10/10 in time.
    let mut settings = MdSettings::new("aldp", sys.params.setup);
    settings.ns_per_replica = 0.5;
    settings.replicas = 2;
    let mut run = MdRun::create(&out.join("md"), settings, sys.clone())?;
    run.run(Duration::from_secs(60), None, |_| {})?;
    let frames = dataset::load(&out.join("md"))?;
    let [train, _val, test] = dataset::split(&frames, [0.8, 0.1, 0.1], SplitBy::Time, 0)?;
    println!(
        "MD: {} training frames, {} test frames",
        train.len(),
        test.len()
    );

    // 3. The proposal: a small TarFlow trained by maximum likelihood (here 600 steps).
    let norm = Normalizer::fit(&train.x, sys.n_atoms());
    let config = TarFlowConfig {
        tokens: sys.n_atoms() as i64,
        token_dim: 3,
        width: 64,
        blocks: 4,
        layers: 2,
        head_dim: 32,
        mlp_ratio: 4,
        conditioning: None,
    };
    let tc = OptimConfig {
        steps: 600,
        batch_size: 128,
        lr: 1e-3,
        ..Default::default()
    };
    let mut trainer = Trainer::new(config, tc.clone(), norm.clone(), Device::Cpu);
    let data = norm.to_model(&train.x, Kind::Float);
    for step in 0..tc.steps {
        let idx = Tensor::randint(data.size()[0], [tc.batch_size], (Kind::Int64, Device::Cpu));
        let loss = trainer.step(&data.index_select(0, &idx));
        if step % 200 == 0 {
            println!("step {step}: NLL {loss:.3} per dim");
        }
    }
    let Model::TarFlow(flow) = trainer.into_model(true) else {
        unreachable!()
    };
    let proposal = ComAdjusted {
        inner: Pool::one(FlowProposal {
            flow,
            normalizer: norm.clone(),
            internal: None,
            device: Device::Cpu,
            kind: Kind::Float,
            batch: 1000,
            tau: 1.0,
            labels: None,
        }),
        form: ComForm::Gaussian,
        sigma: norm.std / (sys.n_atoms() as f64).sqrt(),
        n_atoms: sys.n_atoms(),
    };

    // 4. The correction: SNIS on 5,000 proposals; SMC with 500 particles and 50 MALA levels.
    let (x, log_q) = proposal.sample(5000, 1);
    let mut energy = vec![0.0; 5000];
    sys.energy_and_grad(&x, &mut energy, None);
    let e_src: Vec<f64> = log_q.iter().map(|l| -l).collect();
    let is = snis(&e_src, &energy, SnisOptions::default());
    let opts = SmcOptions {
        steps: 50,
        step_size: 1e-6,
        ..Default::default()
    };
    let r = smc(&proposal, &sys, 500, opts)?;
    println!("ESS: SNIS {:.4}, SMC {:.4}", is.ess, r.ess);

    // 5. Evaluation against the held-out MD.
    let (m, _) = bgen::eval::evaluate::evaluate(&sys, &r.x, None, &test.x, Default::default())
        .map_err(anyhow::Error::msg)?;
    println!(
        "SMC vs MD: E-W2 {:.3} kT, T-W2 {:.3} rad; basins {:?}",
        m.energy_w2, m.torus_w2, m.basins
    );
    Ok(())
}
