//! Local energy minimisation by L-BFGS with a backtracking (Armijo) line search. Stops when the
//! root-mean-square of the force components falls below a tolerance (kJ/mol/nm), as OpenMM's
//! `LocalEnergyMinimizer` does (its default tolerance is 10 kJ/mol/nm).

/// Settings of [`minimize`].
#[derive(Clone, Copy, Debug)]
pub struct MinimizeOptions {
    /// Stop when the RMS force component is below this, kJ/mol/nm.
    pub tolerance: f64,
    /// Stop after this many iterations (line searches).
    pub max_iterations: usize,
    /// History length of L-BFGS.
    pub memory: usize,
    /// Largest displacement of any coordinate in one step, nm.
    pub max_step: f64,
}

impl Default for MinimizeOptions {
    fn default() -> Self {
        MinimizeOptions {
            tolerance: 10.0,
            max_iterations: 10_000,
            memory: 10,
            max_step: 0.05,
        }
    }
}

/// Outcome of [`minimize`].
#[derive(Clone, Copy, Debug)]
pub struct MinimizeReport {
    /// Energy at the start and at the end, kJ/mol.
    pub initial_energy: f64,
    pub final_energy: f64,
    /// RMS force component at the end, kJ/mol/nm.
    pub rms_force: f64,
    pub iterations: usize,
    /// Energy and gradient evaluations.
    pub evaluations: usize,
    /// Whether the tolerance was reached.
    pub converged: bool,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The RMS force component of gradient `g` (kJ/mol/nm).
pub fn rms(g: &[f64]) -> f64 {
    (dot(g, g) / g.len().max(1) as f64).sqrt()
}

/// Minimises U in place from `x` (nm). `grad_fn(x, g)` returns U (kJ/mol) and writes dU/dx
/// (kJ/mol/nm). A non-finite energy on a trial step shrinks the step.
pub fn minimize<F>(x: &mut [f64], opts: MinimizeOptions, mut grad_fn: F) -> MinimizeReport
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    let d = x.len();
    let mut g = vec![0.0; d];
    let mut e = grad_fn(x, &mut g);
    let mut evaluations = 1;
    let initial_energy = e;
    let mut history = History::new(opts.memory);
    let (mut dir, mut x_new, mut g_new) = (vec![0.0; d], vec![0.0; d], vec![0.0; d]);
    let mut iterations = 0;
    while rms(&g) > opts.tolerance && iterations < opts.max_iterations {
        iterations += 1;
        history.direction(&g, &mut dir, opts.max_step);
        let mut slope = dot(&dir, &g);
        if slope >= 0.0 {
            // Not a descent direction: restart from steepest descent.
            history.clear();
            let gmax = g.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            for (q, gi) in dir.iter_mut().zip(&g) {
                *q = -gi * opts.max_step / gmax.max(1e-300);
            }
            slope = dot(&dir, &g);
        }
        let dmax = dir.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let t = if dmax > opts.max_step {
            opts.max_step / dmax
        } else {
            1.0
        };
        let trial = Trial {
            x,
            dir: &dir,
            e,
            slope,
        };
        match trial.search(t, &mut grad_fn, &mut x_new, &mut g_new, &mut evaluations) {
            Some(e_new) => {
                history.push(
                    (0..d).map(|k| x_new[k] - x[k]).collect(),
                    (0..d).map(|k| g_new[k] - g[k]).collect(),
                );
                x.copy_from_slice(&x_new);
                g.copy_from_slice(&g_new);
                e = e_new;
            }
            // No progress even along steepest descent: at round-off level.
            None if history.is_empty() => break,
            None => history.clear(),
        }
    }
    MinimizeReport {
        initial_energy,
        final_energy: e,
        rms_force: rms(&g),
        iterations,
        evaluations,
        converged: rms(&g) <= opts.tolerance,
    }
}

/// L-BFGS's memory: the last `memory` steps s, gradient changes y and 1 / (s . y).
struct History {
    s: Vec<Vec<f64>>,
    y: Vec<Vec<f64>>,
    rho: Vec<f64>,
    alpha: Vec<f64>,
    memory: usize,
}

impl History {
    fn new(memory: usize) -> History {
        History {
            s: Vec::new(),
            y: Vec::new(),
            rho: Vec::new(),
            alpha: vec![0.0; memory],
            memory,
        }
    }

    fn is_empty(&self) -> bool {
        self.s.is_empty()
    }

    fn clear(&mut self) {
        self.s.clear();
        self.y.clear();
        self.rho.clear();
    }

    /// A step (s, y) kept when it has positive curvature (s . y > 1e-12), the oldest dropped
    /// beyond `memory`.
    fn push(&mut self, s: Vec<f64>, y: Vec<f64>) {
        let sy = dot(&s, &y);
        if sy > 1e-12 {
            if self.s.len() == self.memory {
                self.s.remove(0);
                self.y.remove(0);
                self.rho.remove(0);
            }
            self.s.push(s);
            self.y.push(y);
            self.rho.push(1.0 / sy);
        }
    }

    /// dir = -H g by the two-loop recursion; with nothing remembered, steepest descent scaled
    /// so that its largest component is `max_step`.
    fn direction(&mut self, g: &[f64], dir: &mut [f64], max_step: f64) {
        dir.copy_from_slice(g);
        let m = self.s.len();
        for k in (0..m).rev() {
            self.alpha[k] = self.rho[k] * dot(&self.s[k], dir);
            for (q, y) in dir.iter_mut().zip(&self.y[k]) {
                *q -= self.alpha[k] * y;
            }
        }
        if m > 0 {
            let gamma = dot(&self.s[m - 1], &self.y[m - 1]) / dot(&self.y[m - 1], &self.y[m - 1]);
            dir.iter_mut().for_each(|q| *q *= gamma);
        } else {
            let gmax = g.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            dir.iter_mut()
                .for_each(|q| *q *= max_step / gmax.max(1e-300));
        }
        for k in 0..m {
            let b = self.rho[k] * dot(&self.y[k], dir);
            for (q, s) in dir.iter_mut().zip(&self.s[k]) {
                *q += (self.alpha[k] - b) * s;
            }
        }
        dir.iter_mut().for_each(|q| *q = -*q);
    }
}

/// A line search's start: the point `x`, its energy `e`, the direction `dir` and the slope
/// dir . grad U there.
struct Trial<'a> {
    x: &'a [f64],
    dir: &'a [f64],
    e: f64,
    slope: f64,
}

impl Trial<'_> {
    /// Backtracking from step `t` (halved up to 40 times) to the first x + t dir that meets
    /// the Armijo condition with a finite energy: that energy, with the point and its gradient
    /// in `x_new` and `g_new`; None when no step does.
    fn search<F>(
        &self,
        mut t: f64,
        grad_fn: &mut F,
        x_new: &mut [f64],
        g_new: &mut [f64],
        evaluations: &mut usize,
    ) -> Option<f64>
    where
        F: FnMut(&[f64], &mut [f64]) -> f64,
    {
        for _ in 0..40 {
            for (k, xn) in x_new.iter_mut().enumerate() {
                *xn = self.x[k] + t * self.dir[k];
            }
            let e_new = grad_fn(x_new, g_new);
            *evaluations += 1;
            if e_new.is_finite() && e_new <= self.e + 1e-4 * t * self.slope {
                return Some(e_new);
            }
            t *= 0.5;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Rosenbrock function in 10 dimensions has its minimum 0 at (1, ..., 1).
    #[test]
    fn rosenbrock_minimum() {
        let f = |x: &[f64], g: &mut [f64]| {
            g.fill(0.0);
            let mut e = 0.0;
            for i in 0..x.len() - 1 {
                let a = x[i + 1] - x[i] * x[i];
                let b = 1.0 - x[i];
                e += 100.0 * a * a + b * b;
                g[i] += -400.0 * a * x[i] - 2.0 * b;
                g[i + 1] += 200.0 * a;
            }
            e
        };
        let mut x = vec![-1.2; 10];
        let opts = MinimizeOptions {
            tolerance: 1e-8,
            max_step: 0.5,
            ..Default::default()
        };
        let r = minimize(&mut x, opts, f);
        assert!(r.converged, "{r:?}");
        assert!(x.iter().all(|v| (v - 1.0).abs() < 1e-6), "{x:?}");
        assert!(r.final_energy < 1e-12);
    }
}
