//! Physical constants and unit conversions. Positions nm, energies kJ/mol, masses Da, time ps.

/// Molar gas constant R in kJ/(mol K) (CODATA 2018, as OpenMM).
pub const R_KJ_PER_MOL_K: f64 = 0.00831446261815324;

/// Coulomb constant 1/(4 pi eps0) in kJ nm/(mol e^2), as OpenMM's NonbondedForce and GBSAOBCForce.
pub const COULOMB: f64 = 138.935_457_644_382;

/// The Coulomb constant hard-coded in OpenMM's CustomGB implicit-solvent expressions (obc1.xml).
pub const COULOMB_CUSTOM_GB: f64 = 138.935485;

/// kT in kJ/mol at `temperature` K.
pub fn kt(temperature: f64) -> f64 {
    R_KJ_PER_MOL_K * temperature
}
