//! The Langevin "middle" integrator (the splitting of OpenMM's `LangevinMiddleIntegrator`):
//! kick v += dt F/m, drift x += dt/2 v, Ornstein-Uhlenbeck v = a v + sqrt((1 - a^2) kT/m) xi,
//! drift x += dt/2 v, with a = exp(-friction dt). Velocities are the leapfrog (half-step)
//! velocities, as OpenMM stores them. Positions nm, velocities nm/ps, masses Da, time ps,
//! energies kJ/mol.

use rand::RngExt;
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;

/// One random stream; its state is saved in checkpoints so that a run resumes exactly.
pub type Stream = Xoshiro256PlusPlus;

/// The `index`-th independent stream of `seed` (2^128 draws apart).
pub fn stream(seed: u64, index: u64) -> Stream {
    use rand::SeedableRng;
    let mut s = Xoshiro256PlusPlus::seed_from_u64(seed);
    for _ in 0..index {
        s.jump();
    }
    s
}

/// The dynamical state of one replica.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct State {
    /// Positions, nm (atoms x 3).
    pub x: Vec<f64>,
    /// Velocities, nm/ps (half a step behind the positions).
    pub v: Vec<f64>,
    /// Random stream of the friction noise.
    pub rng: Stream,
    /// Steps taken.
    pub step: u64,
    /// dU/dx at `x`, kJ/mol/nm (recomputed on resume, not saved).
    #[serde(skip)]
    pub grad: Vec<f64>,
    /// Potential energy at `x`, kJ/mol (recomputed on resume, not saved).
    #[serde(skip)]
    pub energy: f64,
}

/// Langevin middle integrator for fixed masses and settings.
#[derive(Clone, Debug)]
pub struct LangevinMiddle {
    /// Time step, ps.
    pub dt: f64,
    /// Friction coefficient, 1/ps.
    pub friction: f64,
    /// kT, kJ/mol.
    pub kt: f64,
    /// Remove the centre-of-mass velocity before each step (OpenMM's CMMotionRemover).
    pub remove_com: bool,
    mass: Vec<f64>,
    inv_mass: Vec<f64>,
    /// Per atom: sqrt((1 - a^2) kT / m), nm/ps.
    noise: Vec<f64>,
    a: f64,
}

impl LangevinMiddle {
    /// Integrator at temperature `kt` (kJ/mol), `friction` (1/ps), step `dt` (ps) for `mass`
    /// (Da, one per atom, all positive).
    pub fn new(mass: &[f64], kt: f64, friction: f64, dt: f64, remove_com: bool) -> LangevinMiddle {
        assert!(mass.iter().all(|&m| m > 0.0), "masses must be positive");
        let a = (-friction * dt).exp();
        LangevinMiddle {
            dt,
            friction,
            kt,
            remove_com,
            mass: mass.to_vec(),
            inv_mass: mass.iter().map(|m| 1.0 / m).collect(),
            noise: mass
                .iter()
                .map(|m| ((1.0 - a * a) * kt / m).sqrt())
                .collect(),
            a,
        }
    }

    /// Number of atoms.
    pub fn n_atoms(&self) -> usize {
        self.mass.len()
    }

    /// Degrees of freedom of the kinetic energy: 3N, minus 3 when the CoM motion is removed.
    pub fn dof(&self) -> usize {
        3 * self.n_atoms() - if self.remove_com { 3 } else { 0 }
    }

    /// A state at positions `x` (nm) with Maxwell-Boltzmann velocities drawn from `rng`
    /// (CoM velocity removed when the integrator removes it); `grad_fn` gives U (kJ/mol) and
    /// writes dU/dx (kJ/mol/nm).
    pub fn init<F>(&self, x: Vec<f64>, mut rng: Stream, mut grad_fn: F) -> State
    where
        F: FnMut(&[f64], &mut [f64]) -> f64,
    {
        let n = self.n_atoms();
        assert_eq!(x.len(), 3 * n);
        let mut v = vec![0.0; 3 * n];
        for (k, vk) in v.iter_mut().enumerate() {
            let z: f64 = rng.sample(StandardNormal);
            *vk = z * (self.kt * self.inv_mass[k / 3]).sqrt();
        }
        if self.remove_com {
            self.remove_com_velocity(&mut v);
        }
        let mut grad = vec![0.0; 3 * n];
        let energy = grad_fn(&x, &mut grad);
        State {
            x,
            v,
            rng,
            step: 0,
            grad,
            energy,
        }
    }

    /// Recomputes the cached energy and gradient of `s` (after loading a checkpoint).
    pub fn refresh<F>(&self, s: &mut State, mut grad_fn: F)
    where
        F: FnMut(&[f64], &mut [f64]) -> f64,
    {
        s.grad.resize(s.x.len(), 0.0);
        s.energy = grad_fn(&s.x, &mut s.grad);
    }

    /// Advances `s` by `steps` steps. No allocation.
    pub fn run<F>(&self, s: &mut State, steps: u64, mut grad_fn: F)
    where
        F: FnMut(&[f64], &mut [f64]) -> f64,
    {
        for _ in 0..steps {
            self.move_to_next(s);
            s.energy = grad_fn(&s.x, &mut s.grad);
            s.step += 1;
        }
    }

    /// One step's kick, drifts and friction, from the cached gradient: `s.x` and `s.v` are the
    /// next step's, its energy and gradient still to compute.
    fn move_to_next(&self, s: &mut State) {
        let (dt, half) = (self.dt, 0.5 * self.dt);
        if self.remove_com {
            self.remove_com_velocity(&mut s.v);
        }
        for k in 0..s.x.len() {
            let a = k / 3;
            let mut v = s.v[k] - dt * s.grad[k] * self.inv_mass[a];
            let mut x = s.x[k] + half * v;
            let z: f64 = s.rng.sample(StandardNormal);
            v = self.a * v + self.noise[a] * z;
            x += half * v;
            s.v[k] = v;
            s.x[k] = x;
        }
    }

    /// Advances several replicas (`states`, each with its integrator in `integrators`) by
    /// `steps` steps in lockstep, so that each step's energies and gradients come from one call
    /// of `batch_fn(x, grad, energy)` on all of them (positions k x atoms x 3 in nm; gradients
    /// written in kJ/mol/nm, energies in kJ/mol): for evaluations in conformation lanes. Each
    /// replica follows the same trajectory as [`LangevinMiddle::run`] would give it with the same
    /// energies. Allocates its buffers once per call.
    pub fn run_lockstep<F>(
        integrators: &[LangevinMiddle],
        states: &mut [State],
        steps: u64,
        mut batch_fn: F,
    ) where
        F: FnMut(&[f64], &mut [f64], &mut [f64]),
    {
        let Some(d) = states.first().map(|s| s.x.len()) else {
            return;
        };
        let k = states.len();
        let (mut x, mut g, mut e) = (vec![0.0; k * d], vec![0.0; k * d], vec![0.0; k]);
        for _ in 0..steps {
            for (r, (s, integrator)) in states.iter_mut().zip(integrators).enumerate() {
                integrator.move_to_next(s);
                x[r * d..(r + 1) * d].copy_from_slice(&s.x);
            }
            batch_fn(&x, &mut g, &mut e);
            for (r, s) in states.iter_mut().enumerate() {
                s.grad.copy_from_slice(&g[r * d..(r + 1) * d]);
                s.energy = e[r];
                s.step += 1;
            }
        }
    }

    /// Kinetic energy 1/2 sum m v^2, kJ/mol.
    pub fn kinetic_energy(&self, v: &[f64]) -> f64 {
        v.iter()
            .enumerate()
            .map(|(k, vk)| 0.5 * self.mass[k / 3] * vk * vk)
            .sum()
    }

    /// Kinetic temperature 2 KE / (dof R), K.
    pub fn temperature(&self, v: &[f64]) -> f64 {
        2.0 * self.kinetic_energy(v) / (self.dof() as f64 * bgen_system::units::R_KJ_PER_MOL_K)
    }

    fn remove_com_velocity(&self, v: &mut [f64]) {
        let mut p = [0.0; 3];
        let mut m = 0.0;
        for (a, &ma) in self.mass.iter().enumerate() {
            for k in 0..3 {
                p[k] += ma * v[3 * a + k];
            }
            m += ma;
        }
        for a in 0..self.n_atoms() {
            for k in 0..3 {
                v[3 * a + k] -= p[k] / m;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Independent 3-D harmonic wells U = k/2 |x|^2 with unequal masses: <k x^2> = kT per
    /// coordinate and the kinetic temperature is T, exactly in the middle scheme's configurational
    /// limit; at dt = 2 fs the configurational error is far below the statistical one.
    #[test]
    fn harmonic_wells_sample_boltzmann() {
        let n = 8;
        let mass: Vec<f64> = (0..n).map(|i| 1.0 + 3.0 * i as f64).collect();
        let kt = bgen_system::units::kt(300.0);
        let k = 500.0; // kJ/mol/nm^2
        let lm = LangevinMiddle::new(&mass, kt, 5.0, 0.002, false);
        let grad_fn = |x: &[f64], g: &mut [f64]| {
            let mut e = 0.0;
            for (gi, xi) in g.iter_mut().zip(x) {
                *gi = k * xi;
                e += 0.5 * k * xi * xi;
            }
            e
        };
        let mut s = lm.init(vec![0.0; 3 * n], stream(7, 0), grad_fn);
        lm.run(&mut s, 2000, grad_fn);
        let (mut sum_u, mut sum_t, mut count) = (0.0, 0.0, 0.0);
        for _ in 0..200_000 {
            lm.run(&mut s, 5, grad_fn);
            sum_u += s.energy;
            sum_t += lm.temperature(&s.v);
            count += 1.0;
        }
        let u_mean = sum_u / count / (1.5 * n as f64 * kt); // expect 1
        let t_mean = sum_t / count / 300.0; // expect 1
        assert!((u_mean - 1.0).abs() < 0.01, "<U>/(3N kT/2) = {u_mean}");
        assert!((t_mean - 1.0).abs() < 0.01, "T/T0 = {t_mean}");
    }

    /// Replicas in lockstep follow exactly the trajectories that each would alone.
    #[test]
    fn lockstep_replicas_follow_their_own_trajectories() {
        let mass = [1.0, 12.0, 16.0];
        let grad_fn = |x: &[f64], g: &mut [f64]| {
            let mut e = 0.0;
            for (gi, xi) in g.iter_mut().zip(x) {
                *gi = 300.0 * xi + xi * xi * xi;
                e += 150.0 * xi * xi + 0.25 * xi.powi(4);
            }
            e
        };
        let ints: Vec<LangevinMiddle> = [2.0, 2.5, 3.0]
            .iter()
            .map(|&kt| LangevinMiddle::new(&mass, kt, 1.0, 0.002, true))
            .collect();
        let start = |r: usize| ints[r].init(vec![0.1; 9], stream(5, r as u64), grad_fn);
        let mut alone: Vec<State> = (0..3).map(start).collect();
        for (s, i) in alone.iter_mut().zip(&ints) {
            i.run(s, 50, grad_fn);
        }
        let mut together: Vec<State> = (0..3).map(start).collect();
        LangevinMiddle::run_lockstep(&ints, &mut together, 50, |x, g, e| {
            for r in 0..3 {
                e[r] = grad_fn(&x[9 * r..9 * r + 9], &mut g[9 * r..9 * r + 9]);
            }
        });
        for (a, b) in alone.iter().zip(&together) {
            assert_eq!(
                (&a.x, &a.v, a.energy, a.step),
                (&b.x, &b.v, b.energy, b.step)
            );
        }
    }

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: f64 = stream(1, 0).sample(StandardNormal);
        let b: f64 = stream(1, 0).sample(StandardNormal);
        let c: f64 = stream(1, 1).sample(StandardNormal);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn com_velocity_is_removed() {
        let mass = [1.0, 12.0, 16.0];
        let lm = LangevinMiddle::new(&mass, 2.5, 1.0, 0.001, true);
        let s = lm.init(vec![0.0; 9], stream(3, 0), |_, g| {
            g.fill(0.0);
            0.0
        });
        for k in 0..3 {
            let p: f64 = (0..3).map(|a| mass[a] * s.v[3 * a + k]).sum();
            assert!(p.abs() < 1e-12);
        }
        assert_eq!(lm.dof(), 6);
    }
}
