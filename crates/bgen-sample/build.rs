// Adds an rpath to libtorch's directory so that test and example binaries run without
// LD_LIBRARY_PATH (see scripts/libtorch.sh).
include!("../../scripts/torch_rpath.rs");
