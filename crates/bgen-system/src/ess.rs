//! The effective sample size of importance weights, and the log-sum-exp it is built from: the
//! one definition that SNIS, SMC, twisted SMC, resampling, evaluation and training by energy use.

/// log(sum exp(v)), ignoring -inf entries; -inf when all are.
pub fn log_sum_exp(v: &[f64]) -> f64 {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// Normalised Kish ESS (sum w)^2 / (n sum w^2) of log-weights, in [0, 1].
pub fn ess(log_w: &[f64]) -> f64 {
    let l1 = log_sum_exp(log_w);
    let doubled: Vec<f64> = log_w.iter().map(|v| 2.0 * v).collect();
    let l2 = log_sum_exp(&doubled);
    if l1 == f64::NEG_INFINITY {
        return 0.0;
    }
    (2.0 * l1 - l2).exp() / log_w.len() as f64
}
