//! Times energy+gradient of one conformation in a loop: `cargo run --release --example profile_energy -- aldp 100000`.
use bgen_system::System;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map(|s| s.as_str()).unwrap_or("aldp");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let sys = System::named(name, None, None).unwrap();
    let m = sys.model();
    let mut ws = m.workspace();
    let mut g = vec![0.0; sys.positions.len()];
    let mut acc = 0.0;
    let t0 = Instant::now();
    for _ in 0..n {
        acc += m.energy_grad(&sys.positions, &mut g, &mut ws).total();
    }
    let dt = t0.elapsed().as_secs_f64() / n as f64;
    println!(
        "{name}: {:.2} us per energy+gradient ({:.0}/s), checksum {acc:.3}",
        dt * 1e6,
        1.0 / dt
    );
}
