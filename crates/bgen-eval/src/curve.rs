//! How MD converges: the metrics of each prefix in time of an MD run against a reference, with
//! the simulated time and the wall time it cost, so that a sampler's scores can be set beside
//! the MD of the same cost (and the time MD needs to reach them read off).

use crate::evaluate::{evaluate, EvalOptions};
use bgen_md::Frames;
use bgen_system::System;
use serde::Serialize;

/// The metrics of one prefix of an MD run.
#[derive(Clone, Debug, Serialize)]
pub struct CurvePoint {
    /// Production time of each replica, ps.
    pub time_ps: f64,
    /// Simulated time of every replica (every rung of a ladder), ns.
    pub ns: f64,
    /// Wall time to simulate it, s (the run's own, in proportion to its steps).
    pub wall_seconds: f64,
    /// Frames scored.
    pub frames: usize,
    /// kT.
    pub energy_w2: f64,
    /// rad.
    pub torus_w2: f64,
    /// The largest |population - reference| over the basins.
    pub basin_error: f64,
}

/// What an MD run cost: replicas simulated (all rungs of a ladder, though only the lowest's
/// frames are scored), its equilibration, ps, and its total wall time, s.
#[derive(Clone, Copy, Debug)]
pub struct MdCost {
    pub replicas: usize,
    pub equilibrate_ps: f64,
    pub wall_seconds: f64,
}

/// The metrics of `points` prefixes of `frames` (an MD run's, in time order per replica), each
/// `ratio` (> 1) times longer than the one before up to the whole run, against `reference`
/// frames (nm).
pub fn md_curve(
    system: &System,
    frames: &Frames,
    reference: &[f64],
    cost: MdCost,
    points: usize,
    ratio: f64,
    opts: EvalOptions,
) -> crate::Result<Vec<CurvePoint>> {
    let t_max = frames.time_ps.iter().copied().fold(0.0, f64::max);
    let dt = frames
        .time_ps
        .iter()
        .copied()
        .filter(|&t| t > 0.0)
        .fold(f64::MAX, f64::min);
    let mut out = Vec::new();
    for k in (0..points).rev() {
        let t = t_max / ratio.powi(k as i32);
        let idx: Vec<usize> = (0..frames.time_ps.len())
            .filter(|&i| frames.time_ps[i] <= t + 1e-9)
            .collect();
        if idx.len() < 10 || t < 2.0 * dt {
            continue;
        }
        let part = frames.select(&idx);
        let (m, _) = evaluate(system, &part.x, None, reference, opts)?;
        let basin_error = m
            .details
            .basins_samples
            .iter()
            .map(|(b, v)| {
                let r = m.details.basins_reference.get(b).map_or(0.0, |r| r.value);
                (v.value - r).abs()
            })
            .fold(0.0, f64::max);
        let share = (t + cost.equilibrate_ps) / (t_max + cost.equilibrate_ps);
        out.push(CurvePoint {
            time_ps: t,
            ns: t * cost.replicas as f64 * 1e-3,
            wall_seconds: cost.wall_seconds * share,
            frames: idx.len(),
            energy_w2: m.energy_w2,
            torus_w2: m.torus_w2,
            basin_error,
        });
    }
    Ok(out)
}

/// The first point of `curve` at which MD is at least as good as `scores` (E-W2 kT, T-W2,
/// basin error) on all three, if any.
pub fn first_reaching(curve: &[CurvePoint], scores: [f64; 3]) -> Option<&CurvePoint> {
    curve
        .iter()
        .find(|p| p.energy_w2 <= scores[0] && p.torus_w2 <= scores[1] && p.basin_error <= scores[2])
}
