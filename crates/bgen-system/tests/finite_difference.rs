//! Analytic forces equal central finite differences of the energy, for every embedded system in
//! both setups, at perturbed (high-energy) conformations like raw generator samples.

use bgen_system::{Setup, System};

fn noise(seed: u64, n: usize, sigma: f64) -> Vec<f64> {
    let mut s = seed;
    let mut u = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| sigma * (-2.0 * u().ln()).sqrt() * (std::f64::consts::TAU * u()).cos())
        .collect()
}

fn check(name: &str, setup: Setup) {
    let sys = System::named(name, Some(setup), None).unwrap();
    let m = sys.model();
    let mut ws = m.workspace();
    let x: Vec<f64> = sys
        .positions
        .iter()
        .zip(noise(7, sys.positions.len(), 0.01))
        .map(|(p, z)| p + z)
        .collect();
    let mut g = vec![0.0; x.len()];
    m.energy_grad(&x, &mut g, &mut ws);
    let h = 1e-5;
    let mut worst: f64 = 0.0;
    let mut xp = x.clone();
    for k in 0..x.len() {
        xp[k] = x[k] + h;
        let ep = m.energy(&xp, &mut ws).total();
        xp[k] = x[k] - h;
        let em = m.energy(&xp, &mut ws).total();
        xp[k] = x[k];
        let fd = (ep - em) / (2.0 * h);
        let err = (fd - g[k]).abs() / g[k].abs().max(10.0);
        worst = worst.max(err);
        assert!(
            err < 1e-5,
            "{name} {}: coordinate {k} (atom {}): analytic {} finite difference {fd}",
            setup.name(),
            k / 3,
            g[k]
        );
    }
    eprintln!(
        "{name} {}: worst relative force error {worst:.1e}",
        setup.name()
    );
}

#[test]
fn forces_match_finite_differences_on_every_embedded_system() {
    for name in bgen_system::systems::names() {
        for setup in Setup::ALL {
            check(name, setup);
        }
    }
}
