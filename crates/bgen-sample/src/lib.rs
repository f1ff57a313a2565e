//! # bgen-sample: from a proposal to equilibrium samples
//!
//! Self-normalised importance sampling and sequential Monte Carlo with annealed Langevin moves,
//! for any [`Proposal`] (a model with log q and its gradient) and any [`bgen_system::Target`]
//! (energy and gradient in kT).

pub mod com;
pub mod error;
/// The effective sample size (defined once, in bgen-system, for training by energy too).
pub use bgen_system::ess;
pub mod pareto;
pub mod proposal;
pub mod resample;
pub mod smc;
pub mod snis;
#[cfg(feature = "stage")]
pub mod stage;
pub mod twisted;

pub use com::{ComAdjusted, ComForm};
pub use error::{Error, Result};
pub use proposal::{Gaussian, Proposal};
pub use smc::{smc, Degenerate, SmcOptions, SmcResult};
pub use snis::{snis, SnisOptions, SnisResult};
#[cfg(feature = "stage")]
pub use stage::{Blocks, Method, SampleArgs};
pub use twisted::{twisted_smc, Autoregressive, TwistedOptions, TwistedResult};
