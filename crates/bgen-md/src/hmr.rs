//! Hydrogen mass repartitioning (OpenMM's `hydrogenMass`): each hydrogen gets `h_mass` Da and
//! the heavy atom it is bonded to gives up the difference, so the total mass is unchanged.
//! Masses do not enter the configurational Boltzmann distribution exp(-U(x)/kT), only the
//! dynamics: heavier hydrogens slow the fastest vibrations (X-H stretches), so a longer time step
//! samples the same ensemble (tested in `tests/aldp_md.rs`).

use crate::error::{Error, Result};
use bgen_system::element::Element;
use bgen_system::Topology;

/// Masses (Da) with every hydrogen at `h_mass` Da, taken from its bonded heavy atom. Errors when
/// a hydrogen has no bond or a heavy atom would be left lighter than 1 Da.
pub fn repartition(topology: &Topology, mass: &[f64], h_mass: f64) -> Result<Vec<f64>> {
    if !(h_mass.is_finite() && h_mass >= 1.0) {
        return Err(Error::Settings(format!(
            "hydrogen mass must be at least 1 Da, got {h_mass}"
        )));
    }
    let mut out = mass.to_vec();
    let is_h = |i: usize| topology.atoms[i].element == Element::H;
    let mut partner = vec![None; mass.len()];
    for &(a, b) in &topology.bonds {
        match (is_h(a), is_h(b)) {
            (true, false) => partner[a] = Some(b),
            (false, true) => partner[b] = Some(a),
            _ => {}
        }
    }
    for (h, p) in partner.iter().enumerate().filter(|&(h, _)| is_h(h)) {
        let heavy = p.ok_or_else(|| {
            Error::Settings(format!(
                "{}: hydrogen {} ({}) has no bonded heavy atom to take mass from",
                topology.source,
                h + 1,
                topology.atoms[h].name
            ))
        })?;
        let delta = h_mass - mass[h];
        out[h] = h_mass;
        out[heavy] -= delta;
    }
    if let Some(i) = out.iter().position(|&m| m < 1.0) {
        return Err(Error::Settings(format!(
            "{}: hydrogen mass {h_mass} Da leaves atom {} ({}) with {:.3} Da",
            topology.source,
            i + 1,
            topology.atoms[i].name,
            out[i]
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgen_system::System;

    #[test]
    fn keeps_total_mass_and_moves_it_to_hydrogens() {
        let s = System::named("aldp", None, None).unwrap();
        let m = repartition(&s.topology, &s.params.mass, 3.0).unwrap();
        let total = |v: &[f64]| v.iter().sum::<f64>();
        assert!((total(&m) - total(&s.params.mass)).abs() < 1e-9);
        for (i, a) in s.topology.atoms.iter().enumerate() {
            if a.element == Element::H {
                assert_eq!(m[i], 3.0);
            }
        }
        // A methyl carbon gives up what its three hydrogens gained.
        let ch3 = s
            .topology
            .atoms
            .iter()
            .position(|a| a.name == "CH3")
            .unwrap();
        let gained = 3.0 * (3.0 - s.params.mass[ch3 + 1]);
        assert!((s.params.mass[ch3] - m[ch3] - gained).abs() < 1e-9);
    }

    #[test]
    fn refuses_a_mass_that_empties_a_heavy_atom() {
        let s = System::named("aldp", None, None).unwrap();
        let e = repartition(&s.topology, &s.params.mass, 5.0).unwrap_err();
        assert!(e.to_string().contains("leaves atom"), "{e}");
        assert!(repartition(&s.topology, &s.params.mass, 0.5).is_err());
    }
}
