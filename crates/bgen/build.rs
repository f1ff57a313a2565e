// Adds an rpath to libtorch's directory so that `bgen` runs without LD_LIBRARY_PATH.
include!("../../scripts/torch_rpath.rs");
