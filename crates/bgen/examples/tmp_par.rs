use bgen_models::data::Normalizer;
use bgen_models::train::{TrainConfig, Trainer};
use bgen_models::Model;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

fn main() {
    tch::set_num_threads(1);
    let model = bgen_models::tarflow::TarFlowConfig {
        tokens: 22,
        token_dim: 3,
        width: 64,
        blocks: 4,
        layers: 2,
        head_dim: 32,
        mlp_ratio: 4,
    };
    let tc = TrainConfig::default();
    let t = Trainer::new(
        model,
        tc,
        Normalizer {
            n_atoms: 22,
            std: 1.0,
        },
        Device::Cpu,
    );
    let (Model::TarFlow(mut a), Model::TarFlow(mut b)) = (t.model, t.ema_model) else {
        panic!()
    };
    let n: i64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(1000);
    let z = Tensor::randn([n, 66], (Kind::Float, Device::Cpu));
    let _ = a.sample_from(&z.narrow(0, 0, 8));
    if std::env::args().nth(2).is_some() {
        let mut best = 0.0f64;
        for _ in 0..7 {
            let t0 = Instant::now();
            let _ = a.sample_from(&z);
            best = best.max(n as f64 / t0.elapsed().as_secs_f64());
        }
        println!("n {n} best of 7, 1 thread: {best:.0}/s");
        return;
    }
    for _ in 0..3 {
        let t0 = Instant::now();
        let _ = a.sample_from(&z);
        let one = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let za = z.narrow(0, 0, n / 2);
        let zb = z.narrow(0, n / 2, n - n / 2);
        std::thread::scope(|s| {
            let ra = &mut a;
            let rb = &mut b;
            let h1 = s.spawn(move || {
                tch::set_num_threads(1);
                let _ = ra.sample_from(&za);
            });
            let h2 = s.spawn(move || {
                tch::set_num_threads(1);
                let _ = rb.sample_from(&zb);
            });
            h1.join().unwrap();
            h2.join().unwrap();
        });
        let two = t0.elapsed().as_secs_f64();
        tch::set_num_threads(2);
        let t0 = Instant::now();
        let _ = a.sample_from(&z);
        let intra = t0.elapsed().as_secs_f64();
        tch::set_num_threads(1);
        println!(
            "n {n}: 1 thread {:.0}/s, 2 split threads {:.0}/s, 2 intra-op {:.0}/s",
            n as f64 / one,
            n as f64 / two,
            n as f64 / intra
        );
    }
}
