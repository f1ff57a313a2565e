//! Times the exact torus W2 on n x n synthetic dihedral sets: `cargo run --release --example torus_timing -- 10000 2`.
use bgen_eval::wasserstein::{torus_w2, wrap};
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let (n, d) = (
        args.first().copied().unwrap_or(10_000),
        args.get(1).copied().unwrap_or(2),
    );
    let mut s = 1u64;
    let mut u = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    // Two basins (beta: -80, 150; alphaR: -70, -40 degrees) with different populations.
    let mut sample = |p_beta: f64| -> Vec<f64> {
        let mut x = Vec::with_capacity(n * d);
        for _ in 0..n {
            let beta = u() < p_beta;
            for k in 0..d {
                let c: f64 = if k % 2 == 0 {
                    if beta {
                        -80.0
                    } else {
                        -70.0
                    }
                } else if beta {
                    150.0
                } else {
                    -40.0
                };
                let g = (-2.0 * u().ln()).sqrt() * (std::f64::consts::TAU * u()).cos();
                x.push(wrap(c.to_radians() + 0.35 * g));
            }
        }
        x
    };
    let (x, y) = (sample(0.55), sample(0.45));
    let t0 = Instant::now();
    let w = torus_w2(&x, None, &y, None, d);
    println!(
        "{n} x {n}, {d} angles: T-W2 = {w:.6} rad in {:.2} s",
        t0.elapsed().as_secs_f64()
    );
}
