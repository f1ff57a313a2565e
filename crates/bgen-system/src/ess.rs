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

/// Normalised Kish ESS (sum w)^2 / (n sum w^2) of log-weights, in [0, 1]; 0 when every weight
/// is zero. The weights are taken relative to the largest, so any finite log-weights do (the
/// squares of weights near e^709 overflowed to NaN before).
pub fn ess(log_w: &[f64]) -> f64 {
    let m = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return 0.0;
    }
    let (mut s1, mut s2) = (0.0, 0.0);
    for v in log_w {
        let w = (v - m).exp();
        s1 += w;
        s2 += w * w;
    }
    s1 * s1 / (s2 * log_w.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kish_ess_of_known_weights_at_any_offset() {
        // Weights 1, 1, 2, 4: (8)^2 / (4 * 22) = 64 / 88.
        let w = [0.0, 0.0, 2f64.ln(), 4f64.ln()];
        for shift in [0.0, -800.0, 700.0, 1e308] {
            let v: Vec<f64> = w.iter().map(|x| x + shift).collect();
            let e = ess(&v);
            // At 1e308 the offsets are lost to rounding: two equal weights and two tiny ones.
            let want = if shift == 1e308 { 1.0 } else { 64.0 / 88.0 };
            assert!((e - want).abs() < 1e-12, "shift {shift}: {e}");
        }
        assert_eq!(ess(&[0.0; 5]), 1.0);
        assert!((ess(&[0.0, f64::NEG_INFINITY, f64::NEG_INFINITY]) - 1.0 / 3.0).abs() < 1e-15);
        assert_eq!(ess(&[f64::NEG_INFINITY; 3]), 0.0);
        assert!((ess(&[1e308, 0.0]) - 0.5).abs() < 1e-15);
    }
}
