//! The two model families behind one face for training and loading: a TarFlow or an ArBG,
//! chosen by the configuration a checkpoint records.

use crate::arbg::{Arbg, ArbgConfig};
use crate::tarflow::{TarFlow, TarFlowConfig};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

/// The model family (`tarflow` or `arbg` on the command line and in files).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// The Transformer autoregressive normalizing flow (SBG).
    #[default]
    Tarflow,
    /// The autoregressive Transformer over binned coordinates (ArBG).
    Arbg,
}

/// The coordinates a model works in (`internal` or `cartesian`).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Coords {
    /// The Z-matrix's bonds, angles and torsions (the default).
    #[default]
    Internal,
    /// Centred Cartesian positions with rotation and CoM augmentation (the SBG paper's).
    Cartesian,
}

bgen_system::display_as_value!(Family, Coords);

/// Configuration of either family (a checkpoint's `state.json` holds one; the fields tell
/// which).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModelConfig {
    TarFlow(TarFlowConfig),
    Arbg(ArbgConfig),
}

impl From<TarFlowConfig> for ModelConfig {
    fn from(c: TarFlowConfig) -> Self {
        ModelConfig::TarFlow(c)
    }
}

impl From<ArbgConfig> for ModelConfig {
    fn from(c: ArbgConfig) -> Self {
        ModelConfig::Arbg(c)
    }
}

impl ModelConfig {
    /// A transferable model's tokens (atoms placed after the first two) and label vocabularies;
    /// None for one molecule's.
    pub fn transfer_capacity(&self) -> Option<(i64, &crate::tarflow::Conditioning)> {
        match self {
            ModelConfig::TarFlow(c) => c.conditioning.as_ref().map(|k| (c.tokens, k)),
            ModelConfig::Arbg(c) => c.conditioning.as_ref().map(|k| (c.atoms, k)),
        }
    }

    /// Coordinates per sample, 3N.
    pub fn dim(&self) -> i64 {
        match self {
            ModelConfig::TarFlow(c) => c.dim(),
            ModelConfig::Arbg(c) => c.dim(),
        }
    }
    /// Which family it configures.
    pub fn family(&self) -> Family {
        match self {
            ModelConfig::TarFlow(_) => Family::Tarflow,
            ModelConfig::Arbg(_) => Family::Arbg,
        }
    }
    /// One line on the sizes, for logs.
    pub fn describe(&self) -> String {
        match self {
            ModelConfig::TarFlow(c) => format!(
                "TarFlow {} wide, {} blocks x {} layers",
                c.width, c.blocks, c.layers
            ),
            ModelConfig::Arbg(c) => format!(
                "ArBG {} wide x {} layers, {} bins over +-{} std",
                c.width, c.layers, c.bins, c.range
            ),
        }
    }
}

/// A TarFlow or an ArBG.
#[derive(Debug)]
pub enum Model {
    TarFlow(TarFlow),
    Arbg(Arbg),
}

impl Model {
    /// A new model with variables under `p`.
    pub fn new(p: &nn::Path, c: &ModelConfig) -> Model {
        match c {
            ModelConfig::TarFlow(c) => Model::TarFlow(TarFlow::new(p, c.clone())),
            ModelConfig::Arbg(c) => Model::Arbg(Arbg::new(p, c.clone())),
        }
    }

    /// The log density that training maximises, per sample (normalised units): exact for a
    /// TarFlow; for an ArBG that of the coordinates clipped to [-R, R], at tau = 1.
    pub fn training_log_prob(&self, x: &Tensor) -> Tensor {
        match self {
            Model::TarFlow(f) => f.log_prob(x, 1.0, None),
            Model::Arbg(a) => a.log_prob_clipped(x, 1.0, None),
        }
    }

    /// The log density of a transferable model's batch, per sample over its real dimensions
    /// (an ArBG's of the coordinates clipped to [-R, R], as it trains).
    pub fn log_prob_labelled(&self, x: &Tensor, labels: &crate::tarflow::Labels) -> Tensor {
        match self {
            Model::TarFlow(f) => f.log_prob(x, 1.0, Some(labels)),
            Model::Arbg(a) => a.log_prob_clipped(x, 1.0, Some(labels)),
        }
    }

    /// The exact log density per sample (normalised units; an ArBG at tau = 1 gives -inf
    /// outside its range).
    pub fn log_prob(&self, x: &Tensor) -> Tensor {
        match self {
            Model::TarFlow(f) => f.log_prob(x, 1.0, None),
            Model::Arbg(a) => a.log_prob(x, 1.0, None),
        }
    }
}
