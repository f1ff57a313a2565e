//! # bgen-eval: how good are the samples?
//!
//! Exact optimal transport for Wasserstein distances on the torus of backbone dihedrals.

pub mod curve;
pub mod error;
pub mod evaluate;
pub mod features;
pub mod metrics;
pub mod ot;
pub mod plots;
pub mod report;
#[cfg(feature = "stage")]
pub mod stage;
pub mod tica;
pub mod wasserstein;

pub use error::{Error, Result};
#[cfg(feature = "stage")]
pub use stage::EvalArgs;
