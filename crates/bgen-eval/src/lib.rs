//! # bgen-eval: how good are the samples?
//!
//! Exact optimal transport for Wasserstein distances on the torus of backbone dihedrals.

pub mod ot;
pub mod wasserstein;
