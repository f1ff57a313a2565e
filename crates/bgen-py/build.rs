//! The extension finds libtorch where the PyPI torch wheel keeps it, beside the package in
//! site-packages (`import torch` before `import bgen._bgen` loads it anyway).
fn main() {
    println!("cargo:rustc-link-arg-cdylib=-Wl,-rpath,$ORIGIN/../torch/lib");
}
