//! # bgen-models: the proposal, on libtorch
//!
//! TarFlow (the Sequential Boltzmann Generators' normalizing flow) and ArBG (the
//! Autoregressive Boltzmann Generators' discretised Transformer).

pub mod arbg;
pub mod attention;
pub mod data;
pub mod device;
pub mod error;
pub mod internal;
pub mod kl;
pub mod matmul;
pub mod model;
pub mod proposal;
pub mod shipped;
pub mod stage;
pub mod tarflow;
pub mod train;
pub mod transfer;

pub use arbg::{Arbg, ArbgConfig};
pub use device::DeviceChoice;
pub use error::{Error, Result};
pub use model::{Coords, Family, Model, ModelConfig};
pub use stage::{RunInfo, TrainArgs};
pub use tarflow::{TarFlow, TarFlowConfig};
