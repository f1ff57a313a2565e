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

fn rms(g: &[f64]) -> f64 {
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
    let (mut s_hist, mut y_hist, mut rho): (Vec<Vec<f64>>, Vec<Vec<f64>>, Vec<f64>) =
        (Vec::new(), Vec::new(), Vec::new());
    let mut alpha = vec![0.0; opts.memory];
    let (mut dir, mut x_new, mut g_new) = (vec![0.0; d], vec![0.0; d], vec![0.0; d]);
    let mut iterations = 0;
    while rms(&g) > opts.tolerance && iterations < opts.max_iterations {
        iterations += 1;
        // Two-loop recursion: dir = -H g.
        dir.copy_from_slice(&g);
        let m = s_hist.len();
        for k in (0..m).rev() {
            alpha[k] = rho[k] * dot(&s_hist[k], &dir);
            for (q, y) in dir.iter_mut().zip(&y_hist[k]) {
                *q -= alpha[k] * y;
            }
        }
        if m > 0 {
            let gamma = dot(&s_hist[m - 1], &y_hist[m - 1]) / dot(&y_hist[m - 1], &y_hist[m - 1]);
            dir.iter_mut().for_each(|q| *q *= gamma);
        } else {
            // First step: steepest descent scaled to max_step.
            let gmax = g.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            dir.iter_mut()
                .for_each(|q| *q *= opts.max_step / gmax.max(1e-300));
        }
        for k in 0..m {
            let b = rho[k] * dot(&y_hist[k], &dir);
            for (q, s) in dir.iter_mut().zip(&s_hist[k]) {
                *q += (alpha[k] - b) * s;
            }
        }
        dir.iter_mut().for_each(|q| *q = -*q);
        let mut slope = dot(&dir, &g);
        if slope >= 0.0 {
            // Not a descent direction: restart from steepest descent.
            s_hist.clear();
            y_hist.clear();
            rho.clear();
            let gmax = g.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            for (q, gi) in dir.iter_mut().zip(&g) {
                *q = -gi * opts.max_step / gmax.max(1e-300);
            }
            slope = dot(&dir, &g);
        }
        let dmax = dir.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let mut t = if dmax > opts.max_step {
            opts.max_step / dmax
        } else {
            1.0
        };
        // Backtracking line search with the Armijo condition.
        let mut accepted = false;
        for _ in 0..40 {
            for k in 0..d {
                x_new[k] = x[k] + t * dir[k];
            }
            let e_new = grad_fn(&x_new, &mut g_new);
            evaluations += 1;
            if e_new.is_finite() && e_new <= e + 1e-4 * t * slope {
                let s: Vec<f64> = (0..d).map(|k| x_new[k] - x[k]).collect();
                let y: Vec<f64> = (0..d).map(|k| g_new[k] - g[k]).collect();
                let sy = dot(&s, &y);
                if sy > 1e-12 {
                    if s_hist.len() == opts.memory {
                        s_hist.remove(0);
                        y_hist.remove(0);
                        rho.remove(0);
                    }
                    s_hist.push(s);
                    y_hist.push(y);
                    rho.push(1.0 / sy);
                }
                x.copy_from_slice(&x_new);
                g.copy_from_slice(&g_new);
                e = e_new;
                accepted = true;
                break;
            }
            t *= 0.5;
        }
        if !accepted {
            if s_hist.is_empty() {
                break; // no progress even along steepest descent: at round-off level
            }
            s_hist.clear();
            y_hist.clear();
            rho.clear();
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
