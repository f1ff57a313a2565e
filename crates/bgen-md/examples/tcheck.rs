use bgen_md::langevin::stream;
use bgen_md::{minimize, LangevinMiddle, MinimizeOptions};
use bgen_system::System;
use rayon::prelude::*;
fn main() {
    let args: Vec<f64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let (dt_fs, fric, ps) = (args[0], args[1], args[2]);
    let sys = System::named("aldp", None, None).unwrap();
    let model = sys.model();
    let mut x = sys.positions.clone();
    let mut ws = model.workspace();
    minimize(&mut x, MinimizeOptions::default(), |x, g| {
        model.energy_grad(x, g, &mut ws).total()
    });
    let lm = LangevinMiddle::new(&sys.params.mass, sys.kt(), fric, dt_fs * 1e-3, true);
    let res: Vec<(f64, f64)> = (0..8u64)
        .into_par_iter()
        .map(|r| {
            let mut ws = model.workspace();
            let mut f = |x: &[f64], g: &mut [f64]| model.energy_grad(x, g, &mut ws).total();
            let mut s = lm.init(x.clone(), stream(3, r), &mut f);
            lm.run(&mut s, (5.0 / (dt_fs * 1e-3)) as u64, &mut f);
            let n = (ps / (dt_fs * 1e-3)) as u64 / 10;
            let (mut t, mut u) = (0.0, 0.0);
            for _ in 0..n {
                lm.run(&mut s, 10, &mut f);
                t += lm.temperature(&s.v);
                u += s.energy;
            }
            (t / n as f64, u / n as f64)
        })
        .collect();
    let t: Vec<f64> = res.iter().map(|r| r.0).collect();
    let m = t.iter().sum::<f64>() / 8.0;
    let se = (t.iter().map(|v| (v - m).powi(2)).sum::<f64>() / 7.0 / 8.0).sqrt();
    let u = res.iter().map(|r| r.1).sum::<f64>() / 8.0;
    println!("dt {dt_fs} fs friction {fric}: T = {m:.2} +- {se:.2}  <U> = {u:.3}");
}
#[allow(dead_code)]
fn unused() {}
