//! PNG plots (plotters, with an embedded DejaVu Sans so that no system font is needed):
//! Ramachandran free energies, energy histograms and TICA densities, reference beside samples.

use crate::evaluate::EvalData;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

type PlotResult<T> = crate::Result<T>;

fn err<E: std::fmt::Debug>(path: &Path) -> impl Fn(E) -> String + '_ {
    move |e| format!("{}: cannot draw: {e:?}", path.display())
}

/// Viridis-like colour for t in [0, 1].
fn colour(t: f64) -> RGBColor {
    let stops = [
        (68, 1, 84),
        (59, 82, 139),
        (33, 145, 140),
        (94, 201, 98),
        (253, 231, 37),
    ];
    let t = t.clamp(0.0, 1.0) * (stops.len() - 1) as f64;
    let i = (t.floor() as usize).min(stops.len() - 2);
    let f = t - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + f * (b as f64 - a as f64)).round() as u8;
    let (a, b) = (stops[i], stops[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Weighted 2-D histogram over [x0, x1) x [y0, y1) with `bins` per axis, normalised.
fn hist2d(points: &[[f64; 2]], weights: Option<&[f64]>, range: [f64; 4], bins: usize) -> Vec<f64> {
    let mut h = vec![0.0; bins * bins];
    let [x0, x1, y0, y1] = range;
    for (k, p) in points.iter().enumerate() {
        let bx = ((p[0] - x0) / (x1 - x0) * bins as f64).floor();
        let by = ((p[1] - y0) / (y1 - y0) * bins as f64).floor();
        if bx >= 0.0 && by >= 0.0 && (bx as usize) < bins && (by as usize) < bins {
            h[bx as usize * bins + by as usize] += weights.map_or(1.0, |w| w[k]);
        }
    }
    let t: f64 = h.iter().sum();
    if t > 0.0 {
        h.iter_mut().for_each(|v| *v /= t);
    }
    h
}

/// Side-by-side free-energy maps -ln p (kT, shifted to 0 at the minimum, cut at `fmax`).
#[allow(clippy::too_many_arguments)]
fn density_pair(
    path: &Path,
    title: &str,
    labels: (&str, &str),
    left: (&str, &[[f64; 2]], Option<&[f64]>),
    right: (&str, &[[f64; 2]], Option<&[f64]>),
    range: [f64; 4],
    bins: usize,
    fmax: f64,
) -> PlotResult<()> {
    register_font();
    let root = BitMapBackend::new(path, (1100, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(err(path))?;
    let (l, r) = root.split_horizontally(550);
    let prec = if range[1] - range[0] > 20.0 { 0 } else { 1 };
    for (area, (name, pts, w)) in [(l, left), (r, right)] {
        let h = hist2d(pts, w, range, bins);
        let pmax = h.iter().fold(0.0f64, |a, &b| a.max(b));
        let mut chart = ChartBuilder::on(&area)
            .caption(
                format!("{name} ({} samples)", pts.len()),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(range[0]..range[1], range[2]..range[3])
            .map_err(err(path))?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(labels.0)
            .y_desc(labels.1)
            .x_label_formatter(&|v| format!("{v:.prec$}"))
            .y_label_formatter(&|v| format!("{v:.prec$}"))
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(err(path))?;
        let (dx, dy) = (
            (range[1] - range[0]) / bins as f64,
            (range[3] - range[2]) / bins as f64,
        );
        chart
            .draw_series((0..bins * bins).filter(|&k| h[k] > 0.0).map(|k| {
                let (i, j) = (k / bins, k % bins);
                let f = -(h[k] / pmax).ln();
                let (x, y) = (range[0] + i as f64 * dx, range[2] + j as f64 * dy);
                Rectangle::new([(x, y), (x + dx, y + dy)], colour(1.0 - f / fmax).filled())
            }))
            .map_err(err(path))?;
    }
    Ok(root.present().map_err(err(path))?)
}

/// Energy histograms (densities) of the reference, the samples and, with weights, the
/// reweighted samples.
fn energy_plot(path: &Path, data: &EvalData) -> PlotResult<()> {
    register_font();
    let mut r = data.energy_reference.clone();
    r.sort_by(f64::total_cmp);
    let q = |p: f64| r[((r.len() - 1) as f64 * p) as usize];
    let (lo, hi) = (q(0.001), q(0.999));
    let (lo, hi) = (lo - 0.3 * (hi - lo), hi + 0.3 * (hi - lo));
    let bins = 80;
    let hist = |e: &[f64], w: Option<&[f64]>| -> Vec<(f64, f64)> {
        let mut h = vec![0.0; bins];
        let mut tot = 0.0;
        for (k, &v) in e.iter().enumerate() {
            let wk = w.map_or(1.0, |w| w[k]);
            tot += wk;
            let b = ((v - lo) / (hi - lo) * bins as f64).floor();
            if b >= 0.0 && (b as usize) < bins {
                h[b as usize] += wk;
            }
        }
        let width = (hi - lo) / bins as f64;
        h.iter()
            .enumerate()
            .map(|(i, c)| (lo + (i as f64 + 0.5) * width, c / (tot * width)))
            .collect()
    };
    let mut series = vec![(
        "reference MD".to_string(),
        hist(&data.energy_reference, None),
        BLACK,
    )];
    series.push((
        "samples".to_string(),
        hist(&data.energy_samples, None),
        RGBColor(31, 119, 180),
    ));
    if data.has_weights {
        series.push((
            "samples reweighted".to_string(),
            hist(&data.energy_samples, Some(&data.weights)),
            RGBColor(214, 39, 40),
        ));
    }
    let palette = [
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(140, 86, 75),
    ];
    for (k, (label, e, w)) in data.extra_energies.iter().enumerate() {
        series.push((
            label.clone(),
            hist(e, w.as_deref()),
            palette[k % palette.len()],
        ));
    }
    let ymax = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(0.0f64, f64::max)
        * 1.1;
    let root = BitMapBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Potential energy", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(lo..hi, 0.0..ymax.max(1e-12))
        .map_err(err(path))?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc("U / kT")
        .y_desc("density")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.3}"))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err(path))?;
    for (name, pts, c) in series {
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))
            .map_err(err(path))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 14))
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(err(path))?;
    Ok(root.present().map_err(err(path))?)
}

/// Writes every plot into `dir`; returns (title, path) of each.
pub fn write_plots(dir: &Path, data: &EvalData) -> PlotResult<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let w = data.has_weights.then_some(data.weights.as_slice());
    let label = if data.has_weights {
        "samples (reweighted)"
    } else {
        "samples"
    };
    for (k, (res, s, r)) in data.ramachandran.iter().enumerate() {
        let p = dir.join(format!("ramachandran_{k}.png"));
        density_pair(
            &p,
            &format!("Ramachandran free energy, {res} (kT, 0 at the minimum)"),
            ("phi / degrees", "psi / degrees"),
            ("reference MD", r, None),
            (label, s, w),
            [-180.0, 180.0, -180.0, 180.0],
            60,
            8.0,
        )?;
        out.push((format!("Ramachandran {res}"), p));
    }
    let p = dir.join("energy.png");
    energy_plot(&p, data)?;
    out.push(("Energy histograms".into(), p));
    if !data.tica_reference.is_empty() {
        let all = data.tica_reference.iter();
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for v in all {
            (x0, x1, y0, y1) = (x0.min(v[0]), x1.max(v[0]), y0.min(v[1]), y1.max(v[1]));
        }
        let (px, py) = (0.15 * (x1 - x0), 0.15 * (y1 - y0));
        let p = dir.join("tica.png");
        density_pair(
            &p,
            "TICA free energy (first two components fitted on the reference, kT)",
            ("TIC 1", "TIC 2"),
            ("reference MD", &data.tica_reference, None),
            (label, &data.tica_samples, w),
            [x0 - px, x1 + px, y0 - py, y1 + py],
            50,
            8.0,
        )?;
        out.push(("TICA".into(), p));
    }
    Ok(out)
}

/// MD convergence ([`crate::curve::md_curve`]): E-W2, T-W2 and the largest basin error against
/// simulated ns (log axes), each with a dashed line at `marks` (a sampler's scores), if given.
pub fn curve_plot(
    path: &Path,
    curve: &[crate::curve::CurvePoint],
    marks: Option<[f64; 3]>,
) -> PlotResult<()> {
    register_font();
    if curve.is_empty() {
        return Err(format!("{}: no point to draw", path.display()).into());
    }
    let root = BitMapBackend::new(path, (1200, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let panels = root.split_evenly((1, 3));
    let (x0, x1) = (curve[0].ns, curve[curve.len() - 1].ns);
    type Metric = fn(&crate::curve::CurvePoint) -> f64;
    let series: [(&str, Metric); 3] = [
        ("E-W2 / kT", |p| p.energy_w2),
        ("T-W2 / rad", |p| p.torus_w2),
        ("largest basin error", |p| p.basin_error),
    ];
    for (k, (name, f)) in series.iter().enumerate() {
        let ys: Vec<f64> = curve.iter().map(f).collect();
        let mut lo = ys.iter().copied().fold(f64::MAX, f64::min);
        let mut hi = ys.iter().copied().fold(0.0, f64::max);
        if let Some(m) = marks {
            lo = lo.min(m[k]);
            hi = hi.max(m[k]);
        }
        let (lo, hi) = ((lo * 0.8).max(1e-4), (hi * 1.25).max(2e-4));
        let mut chart = ChartBuilder::on(&panels[k])
            .caption(*name, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d((x0 * 0.9..x1 * 1.1).log_scale(), (lo..hi).log_scale())
            .map_err(err(path))?;
        chart
            .configure_mesh()
            .x_desc("MD ns")
            .x_label_formatter(&|v| format!("{v:.2}"))
            .y_label_formatter(&|v| format!("{v:.3}"))
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(err(path))?;
        let pts: Vec<(f64, f64)> = curve.iter().map(|p| (p.ns, f(p))).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), BLACK.stroke_width(2)))
            .map_err(err(path))?;
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, BLACK.filled())))
            .map_err(err(path))?;
        if let Some(m) = marks {
            let red = RGBColor(214, 39, 40);
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(x0 * 0.9, m[k]), (x1 * 1.1, m[k])],
                    6,
                    4,
                    red.stroke_width(2),
                ))
                .map_err(err(path))?;
        }
    }
    Ok(root.present().map_err(err(path))?)
}
