//! # bgen-md: molecular dynamics that makes training data
//!
//! L-BFGS minimisation, the Langevin middle integrator (OpenMM's splitting), independent replicas
//! in parallel with reproducible random streams, resumable runs written in atomic chunks, and data
//! sets split by time blocks or replicas. Units: nm, ps, Da, kJ/mol, K.
//!
//! ```no_run
//! use bgen_md::{MdRun, MdSettings};
//! use bgen_system::{Setup, System};
//! let system = System::named("aldp", None, None).unwrap();
//! let mut settings = MdSettings::new("aldp", Setup::Amber99sbildnObc2);
//! settings.ns_per_replica = 0.1;
//! let mut run = MdRun::create("aldp-md".as_ref(), settings, system).unwrap();
//! run.run(std::time::Duration::from_secs(60), None, |_| {}).unwrap();
//! let frames = bgen_md::dataset::load("aldp-md".as_ref()).unwrap();
//! ```

pub mod dataset;
pub mod dcd;
pub mod error;
pub mod exchange;
pub mod hmr;
pub mod langevin;
pub mod minimize;
pub mod run;
pub mod shards;
pub mod stage;
pub mod xtc;

pub use dataset::{Frames, SplitBy};
pub use error::{Error, Result};
pub use exchange::{geometric_ladder, ExchangeSummary};
pub use langevin::{LangevinMiddle, State};
pub use minimize::{minimize, MinimizeOptions, MinimizeReport};
pub use run::{MdRun, MdSettings, Progress};
pub use stage::{MdArgs, MdResult, SplitArgs, SplitResult};
