//! `bgen energy`: energies by term (kJ/mol, and the total in kT) and optionally forces.

use anyhow::{bail, Context, Result};
use bgen_system::npy::{read_npy, write_npy};
use bgen_system::SystemArgs;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct EnergyArgs {
    #[command(flatten)]
    sys: SystemArgs,
    /// Conformations: .npy of shape (n, atoms, 3) or (atoms, 3), float32/float64, nm.
    /// Default: the positions of the structure.
    #[arg(long)]
    positions: Option<PathBuf>,
    /// Write forces (n, atoms, 3) float64 kJ/mol/nm to this .npy file.
    #[arg(long)]
    forces: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(a: EnergyArgs) -> Result<()> {
    let sys = a.sys.load()?;
    let n_atoms = sys.n_atoms();
    let (x, source) = positions(&a, &sys)?;
    let n = x.len() / (3 * n_atoms);
    let mut f = a.forces.as_ref().map(|_| vec![0.0; x.len()]);
    let energies = sys.energies_batch(&x, f.as_deref_mut());
    // A finite energy can still have non-finite forces: two bonded atoms on top of each other
    // (the bond's direction is 0/0), or an atom so far out that its forces overflow.
    let bad_forces = |c: usize| {
        f.as_ref().is_some_and(|f| {
            f[c * 3 * n_atoms..(c + 1) * 3 * n_atoms]
                .iter()
                .any(|v| !v.is_finite())
        })
    };
    if let Some(c) = (0..n).find(|&c| !energies[c].total().is_finite() || bad_forces(c)) {
        let what = match energies[c].total().is_finite() {
            true => "its forces are not finite",
            false => "the energy is not finite",
        };
        return Err(sys.clash(&x, c, &source, what).into());
    }
    if let (Some(path), Some(f)) = (&a.forces, &f) {
        write_npy(path, &[n, n_atoms, 3], f, false)
            .with_context(|| format!("writing forces to {}", path.display()))?;
    }
    match a.json {
        true => print_json(&sys, &energies),
        false => print_table(&sys, &energies),
    }
    Ok(())
}

/// The conformations (flat, nm) from `--positions`, or the structure's, and what to call
/// them in messages; refused unless (n, atoms, 3) or (atoms, 3) floats with n > 0 that the
/// system accepts (finite, no coinciding atoms).
fn positions(a: &EnergyArgs, sys: &bgen_system::System) -> Result<(Vec<f64>, String)> {
    let n_atoms = sys.n_atoms();
    let (x, source) = match &a.positions {
        Some(p) => {
            let arr = read_npy(p)?;
            let src = p.display().to_string();
            let ok = match arr.shape.as_slice() {
                [_, at, 3] => *at == n_atoms,
                [at, 3] => *at == n_atoms,
                _ => false,
            };
            if !ok {
                bail!("{src}: shape {:?} is not (n, {n_atoms}, 3) or ({n_atoms}, 3): system {} has {n_atoms} atoms", arr.shape, sys.name);
            }
            arr.refuse_integer_positions(p)?;
            (arr.data, src)
        }
        None => (sys.positions.clone(), sys.name.clone()),
    };
    sys.check_positions(&x, &source)?;
    if x.is_empty() {
        bail!("{source}: holds no conformations");
    }
    Ok((x, source))
}

/// One JSON object: the setup, and each conformation's terms (kJ/mol) and total in kT.
fn print_json(sys: &bgen_system::System, energies: &[bgen_system::Energies]) {
    let kt = sys.kt();
    let list: Vec<serde_json::Value> = energies
        .iter()
        .map(|e| {
            let mut m = serde_json::Map::new();
            for (k, v) in e.named().into_iter().take(12) {
                m.insert(k.to_string(), v.into());
            }
            m.insert("kT".into(), (e.total() / kt).into());
            serde_json::Value::Object(m)
        })
        .collect();
    let out = serde_json::json!({
        "unit": "kJ/mol",
        "system": sys.name,
        "forcefield": sys.params.setup.name(),
        "temperature_K": sys.temperature,
        "kT_kJ_per_mol": kt,
        "energies": list,
    });
    bgen_system::show!("{out}");
}

/// A table: a conformation a line, its terms in kJ/mol and its total in kT.
fn print_table(sys: &bgen_system::System, energies: &[bgen_system::Energies]) {
    let kt = sys.kt();
    bgen_system::show!(
        "{} ({} atoms), {} at {} K (kT = {:.6} kJ/mol); energies in kJ/mol",
        sys.name,
        sys.n_atoms(),
        sys.params.setup.name(),
        sys.temperature,
        kt
    );
    bgen_system::show!(
        "{:>6} {:>14} {:>12} {:>12} {:>12} {:>14} {:>14} {:>12}",
        "conf",
        "total",
        "bond",
        "angle",
        "torsion",
        "nonbonded",
        "gb",
        "total/kT"
    );
    for (c, e) in energies.iter().enumerate() {
        bgen_system::show!(
            "{c:>6} {:>14.6} {:>12.6} {:>12.6} {:>12.6} {:>14.6} {:>14.6} {:>12.6}",
            e.total(),
            e.bond,
            e.angle,
            e.torsion,
            e.nonbonded(),
            e.gb(),
            e.total() / kt
        );
    }
}
