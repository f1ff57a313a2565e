//! One self-contained HTML report: the metrics, the basin table and the plots (PNG inlined as
//! base64), readable offline in any browser.

use crate::evaluate::Metrics;
use bgen_system::error::Context;
use std::fmt::Write;
use std::path::PathBuf;

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for k in 0..4 {
            if k <= c.len() {
                out.push(T[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The HTML text of the report; `title` names the samples, `sampler` holds (name, value) rows
/// of the sampler's own diagnostics (from its summary.json; may be empty), `plots` are
/// (caption, PNG path).
pub fn html(
    title: &str,
    m: &Metrics,
    sampler: &[(String, String)],
    plots: &[(String, PathBuf)],
) -> crate::Result<String> {
    let mut h = String::new();
    let f = |v: f64| format!("{v:.4}");
    let _ = write!(
        h,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>bgen report: {t}</title>\
<style>body{{font-family:sans-serif;max-width:1150px;margin:2em auto;color:#222}}\
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}\
th{{background:#f3f3f3}}td:first-child,th:first-child{{text-align:left}}img{{max-width:100%;border:1px solid #eee}}\
.note{{color:#666;font-size:90%}}table.m td:last-child{{text-align:left}}</style></head><body><h1>bgen report</h1><p>{t}</p>",
        t = escape(title)
    );
    let d = &m.details;
    let _ = write!(
        h,
        "<h2>Metrics</h2><table class=\"m\"><tr><th>metric</th><th>value</th><th>meaning</th></tr>\
<tr><td>ESS</td><td>{}</td><td>normalised Kish effective sample size of the weights</td></tr>\
<tr><td>E-W1</td><td>{}</td><td>energy 1-Wasserstein to the reference, kT</td></tr>\
<tr><td>E-W2</td><td>{}</td><td>energy 2-Wasserstein, kT</td></tr>\
<tr><td>T-W2</td><td>{}</td><td>torus 2-Wasserstein over {} backbone dihedrals, rad (exact OT)</td></tr>\
<tr><td>TICA-W2</td><td>{}</td><td>2-Wasserstein in the first two TICA components (exact OT)</td></tr>\
<tr><td>NLL</td><td>{}</td><td>held-out NLL of the reference frames under the model, per dimension (normalised units; nm units: {})</td></tr>\
<tr><td>mean energy</td><td>{} / {}</td><td>samples / reference, kT</td></tr>\
<tr><td>samples</td><td>{} / {}</td><td>used samples / reference frames ({} non-finite samples left out, {} mirror images reflected)</td></tr></table>",
        f(m.ess),
        f(m.energy_w1),
        f(m.energy_w2),
        f(m.torus_w2),
        d.dihedrals.len(),
        m.tica_w2.map_or("-".into(), f),
        m.nll.map_or("-".into(), f),
        m.nll_nm.map_or("-".into(), f),
        f(d.energy_mean_samples_kt),
        f(d.energy_mean_reference_kt),
        d.n_samples,
        d.n_reference,
        d.n_nonfinite,
        d.n_mirrored
    );
    h.push_str("<h2>Basins</h2><table><tr><th>basin</th><th>samples</th><th>reference</th><th>&Delta;F samples (kT)</th><th>&Delta;F reference (kT)</th></tr>");
    for (k, s) in &d.basins_samples {
        let r = d.basins_reference.get(k);
        let fe = |map: &std::collections::BTreeMap<String, crate::metrics::Estimate>| {
            map.get(k)
                .filter(|e| e.value.is_finite())
                .map_or("-".to_string(), |e| {
                    format!("{:.2} &plusmn; {:.2}", e.value, e.se)
                })
        };
        let _ =
            write!(
            h,
            "<tr><td>{}</td><td>{:.3} &plusmn; {:.3}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(k),
            s.value,
            s.se,
            r.map_or("-".into(), |r| format!("{:.3} &plusmn; {:.3}", r.value, r.se)),
            fe(&d.free_energy_samples_kt),
            fe(&d.free_energy_reference_kt)
        );
    }
    h.push_str("</table><p class=\"note\">beta: phi &lt; 0 and (psi &ge; 50&deg; or psi &lt; -150&deg;); alphaR: phi &lt; 0 and -150&deg; &le; psi &lt; 50&deg;; alphaL: phi &ge; 0. Errors: block standard errors; &Delta;F relative to beta.</p>");
    if !sampler.is_empty() {
        h.push_str(
            "<h2>Sampler diagnostics</h2><table class=\"m\"><tr><th>item</th><th>value</th></tr>",
        );
        for (k, v) in sampler {
            let _ = write!(h, "<tr><td>{}</td><td>{}</td></tr>", escape(k), escape(v));
        }
        h.push_str("</table><p class=\"note\">proposal basins: where the raw model samples fall; weight basins: where the importance weights put their mass; lineages: distinct initial particles that the SMC population descends from after each resampling (a collapsed run descends from a few).</p>");
    }
    h.push_str("<h2>Plots</h2><p class=\"note\">Density maps show the free energy -ln p in kT: yellow at the most probable bin (0 kT), dark violet at 8 kT, white where there are no samples.</p>");
    for (caption, path) in plots {
        let png = std::fs::read(path).context(path.display())?;
        let _ = write!(
            h,
            "<h3>{}</h3><img alt=\"{}\" src=\"data:image/png;base64,{}\">",
            escape(caption),
            escape(caption),
            base64(&png)
        );
    }
    h.push_str("</body></html>\n");
    Ok(h)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_known_answers() {
        assert_eq!(super::base64(b""), "");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foo"), "Zm9v");
        assert_eq!(super::base64(b"foobar"), "Zm9vYmFy");
    }
}
