//! # bgen-system: the target of a Boltzmann generator
//!
//! Molecules and their potential energy: PDB input, residue templates, AMBER force-field
//! parameters (ff99SB-ILDN, ff14SB) and GBSA-OBC implicit solvent, evaluated in f64 exactly as
//! OpenMM computes them, with analytic forces. Units: nm, kJ/mol, Da, K; kT at the [`Target`] seam.
//!
//! ```
//! use bgen_system::System;
//! let aldp = System::named("aldp", None, None).unwrap();
//! let e = aldp.energy(&aldp.positions);
//! assert!(e.total() < 0.0); // kJ/mol
//! ```

pub mod element;
pub mod energy;
pub mod error;
pub mod ess;
pub mod ffxml;
pub mod forcefield;
pub mod manifest;
pub mod npy;
pub mod options;
pub mod outdir;
pub mod pdb;
pub mod peptide;
pub mod system;
pub mod systems;
pub mod target;
pub mod templates;
pub mod topology;
pub mod units;
pub mod zmatrix;

pub use energy::{Energies, EnergyModel, Workspace};
pub use error::{Error, Result};
pub use forcefield::{Parameters, Setup};
pub use options::SystemArgs;
pub use system::System;
pub use target::{Autoregressive, PartialTarget, Proposal, Target};
pub use topology::Topology;
pub use zmatrix::{InternalTarget, RingClosure, ZMatrix};
