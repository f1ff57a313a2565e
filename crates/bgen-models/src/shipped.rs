//! The model weights shipped in the binary (`models/`): each a run directory's files, the EMA
//! weights of its last checkpoint, written once to the temporary directory when asked for, so
//! that `bgen sample --system NAME` and `bgen train --init NAME` read them like any run.

use crate::error::Result;
use bgen_system::bail;
use bgen_system::error::Context;
use bgen_system::npy::write_atomic;
use std::path::PathBuf;

type RunFiles = &'static [(&'static str, &'static [u8])];

/// The files of a shipped run directory `models/DIR`: the EMA weights of its last checkpoint
/// `CKPT`, with the checkpoint's manifest.
macro_rules! shipped {
    ($system:literal, $dir:literal, $ckpt:literal) => {
        (
            $system,
            &[
                (
                    "run.json",
                    include_bytes!(concat!("../../../models/", $dir, "/run.json")) as &[u8],
                ),
                (
                    "latest.json",
                    include_bytes!(concat!("../../../models/", $dir, "/latest.json")),
                ),
                (
                    concat!($ckpt, "/state.json"),
                    include_bytes!(concat!("../../../models/", $dir, "/", $ckpt, "/state.json")),
                ),
                (
                    concat!($ckpt, "/ema.safetensors"),
                    include_bytes!(concat!(
                        "../../../models/",
                        $dir,
                        "/",
                        $ckpt,
                        "/ema.safetensors"
                    )),
                ),
                (
                    concat!($ckpt, "/manifest.txt"),
                    include_bytes!(concat!(
                        "../../../models/",
                        $dir,
                        "/",
                        $ckpt,
                        "/manifest.txt"
                    )),
                ),
            ],
        )
    };
}

/// Weights shipped in the binary: per embedded system, and the transferable dipeptide model
/// (`dipeptides`, which samples any dipeptide given with `--pdb` or `--sequence`).
const SHIPPED: &[(&str, RunFiles)] = &[
    shipped!("aldp", "aldp-tarflow-internal", "ckpt-00003000"),
    shipped!("ala3", "ala3-tarflow-internal", "ckpt-00003000"),
    shipped!("ala4", "ala4-tarflow-internal", "ckpt-00003000"),
    shipped!("ala6", "ala6-tarflow-internal", "ckpt-00003000"),
    shipped!("dipeptides", "dipeptides-tarflow-internal", "ckpt-00030000"),
];

/// A run directory holding the shipped weights of `system` (written once to the temporary
/// directory).
pub fn run_dir(system: &str) -> Result<PathBuf> {
    let Some((_, files)) = SHIPPED.iter().find(|s| s.0 == system) else {
        bail!(
            "no shipped weights for '{system}' (there are for: {}); train a model with bgen train and give its directory instead",
            SHIPPED.iter().map(|s| s.0).collect::<Vec<_>>().join(", ")
        );
    };
    let size: usize = files.iter().map(|f| f.1.len()).sum();
    let dir = std::env::temp_dir().join(format!(
        "bgen-{}-shipped-{system}-{size}",
        env!("CARGO_PKG_VERSION")
    ));
    for (name, bytes) in files.iter() {
        let p = dir.join(name);
        if std::fs::read(&p).ok().as_deref() != Some(bytes) {
            std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
            }
            write_atomic(&p, bytes)?;
        }
    }
    Ok(dir)
}
