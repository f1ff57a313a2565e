//! GBSA-OBC pieces: the Born-radius integral of one atom pair and its r-derivative, and the
//! Born radius from the integral. Lengths nm.

/// Contribution of atom j (scaled offset radius `sr_j`) to the OBC integral I_i of atom i
/// (offset radius `or_i`) at distance `r`, and its derivative d/dr. Returns (I term, dI/dr).
///
/// I term = 1/2 [1/L - 1/U + 1/4 (r - sr^2/r)(1/U^2 - 1/L^2) + 1/2 ln(L/U)/r], U = r + sr,
/// L = max(or_i, |r - sr|), zero when r + sr <= or_i; with `engulf` (OpenMM's native force)
/// plus 2 (1/or_i - 1/L) when atom i lies inside j's sphere.
#[inline(always)]
pub fn born_pair(r: f64, inv_r: f64, or_i: f64, sr_j: f64, engulf: bool) -> (f64, f64) {
    let u = r + sr_j;
    if u <= or_i {
        return (0.0, 0.0);
    }
    let d = r - sr_j;
    let (l, dl) = if or_i >= d.abs() {
        (or_i, 0.0)
    } else {
        (d.abs(), d.signum())
    };
    let inv_lu = 1.0 / (l * u);
    let inv_l = u * inv_lu;
    let inv_u = l * inv_lu;
    let inv_l2 = inv_l * inv_l;
    let inv_u2 = inv_u * inv_u;
    let s2 = sr_j * sr_j;
    let a = r - s2 * inv_r; // r - s^2/r
    let log_lu = (l * inv_u).ln();
    let mut t = inv_l - inv_u + 0.25 * a * (inv_u2 - inv_l2) + 0.5 * log_lu * inv_r;
    // partial derivatives of t with respect to r (U, L fixed), U and L
    let dt_dr =
        0.25 * (1.0 + s2 * inv_r * inv_r) * (inv_u2 - inv_l2) - 0.5 * log_lu * inv_r * inv_r;
    let dt_du = inv_u2 - 0.5 * a * inv_u2 * inv_u - 0.5 * inv_u * inv_r;
    let dt_dl = -inv_l2 + 0.5 * a * inv_l2 * inv_l + 0.5 * inv_l * inv_r;
    let mut dt = dt_dr + dt_du + dt_dl * dl;
    if engulf && or_i < sr_j - r {
        t += 2.0 * (1.0 / or_i - inv_l);
        dt += 2.0 * dl * inv_l2;
    }
    (0.5 * t, 0.5 * dt)
}

/// Born radius B (nm) from the integral I (1/nm) and dB/dI:
/// B = 1 / (1/or - tanh(alpha psi - beta psi^2 + gamma psi^3) / radius), psi = I or.
#[inline(always)]
pub fn born_radius(
    i_sum: f64,
    or: f64,
    radius: f64,
    alpha: f64,
    beta: f64,
    gamma: f64,
) -> (f64, f64) {
    let psi = i_sum * or;
    let th = (psi * (alpha - psi * (beta - gamma * psi))).tanh();
    let b = 1.0 / (1.0 / or - th / radius);
    let darg = alpha - psi * (2.0 * beta - 3.0 * gamma * psi);
    let db = b * b * (1.0 - th * th) * darg * or / radius;
    (b, db)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central finite difference of the Born integral term in r, in every branch: plain,
    /// L = or_i (overlap), atom i engulfed (with and without OpenMM's native correction), and no
    /// contribution at all.
    #[test]
    fn born_pair_derivative_matches_finite_difference() {
        let cases = [
            (0.5, 0.15, 0.1),
            (0.12, 0.15, 0.1),
            (0.02, 0.05, 0.1),
            (0.3, 0.12, 0.25),
            (0.01, 0.2, 0.05),
        ];
        for &(r, or_i, sr_j) in &cases {
            for engulf in [false, true] {
                let (t, dt) = born_pair(r, 1.0 / r, or_i, sr_j, engulf);
                let h = 1e-7;
                let tp = born_pair(r + h, 1.0 / (r + h), or_i, sr_j, engulf).0;
                let tm = born_pair(r - h, 1.0 / (r - h), or_i, sr_j, engulf).0;
                let fd = (tp - tm) / (2.0 * h);
                assert!(
                    (fd - dt).abs() <= 1e-6 * dt.abs().max(1.0),
                    "r={r} or={or_i} sr={sr_j} engulf={engulf}: analytic {dt}, fd {fd}, t {t}"
                );
            }
        }
        assert_eq!(born_pair(0.01, 100.0, 0.2, 0.05, true), (0.0, 0.0));
    }

    #[test]
    fn born_radius_derivative_matches_finite_difference() {
        for &(i_sum, or, radius, a, b, g) in &[
            (2.0, 0.15, 0.159, 1.0, 0.8, 4.85),
            (5.0, 0.111, 0.12, 0.8, 0.0, 2.909125),
        ] {
            let (_, db) = born_radius(i_sum, or, radius, a, b, g);
            let h = 1e-6;
            let fd = (born_radius(i_sum + h, or, radius, a, b, g).0
                - born_radius(i_sum - h, or, radius, a, b, g).0)
                / (2.0 * h);
            assert!((fd - db).abs() < 1e-7 * db.abs().max(1e-3), "{fd} vs {db}");
        }
    }
}
