/// Emits `-Wl,-rpath,<torch lib dir>` for this package's binaries, tests and examples, taking the
/// directory from BGEN_TORCH_LIB or from the `python` that torch-sys uses (LIBTORCH_USE_PYTORCH).
fn main() {
    println!("cargo:rerun-if-env-changed=BGEN_TORCH_LIB");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let dir = std::env::var("BGEN_TORCH_LIB").ok().or_else(|| {
        if let Ok(l) = std::env::var("LIBTORCH") {
            return Some(format!("{l}/lib"));
        }
        let out = std::process::Command::new("python")
            .args([
                "-c",
                "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))",
            ])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    if let Some(d) = dir {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{d}");
    }
}
