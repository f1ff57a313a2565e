//! `bgen`: Boltzmann generators for molecules, from the command line ([`bgen::cli`]).

use bgen::cli::Cli;
use clap::Parser;

/// glibc's allocator returns large freed blocks to the OS and takes them back with fresh
/// page faults on every training step (5-8% of the time in `perf`). Keep them instead: blocks up
/// to 32 MB from the heap, the heap trimmed only past 1 GB, and grown 256 MB at a time.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    const M_TRIM_THRESHOLD: i32 = -1;
    const M_TOP_PAD: i32 = -2;
    const M_MMAP_THRESHOLD: i32 = -3;
    // SAFETY: mallopt only sets allocator parameters; called before any thread starts.
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 32 << 20);
        mallopt(M_TRIM_THRESHOLD, 1 << 30);
        mallopt(M_TOP_PAD, 256 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

fn main() {
    tune_allocator();
    let cli = Cli::parse();
    if let Err(e) = bgen::cli::dispatch(cli.command) {
        bgen_system::say!("error: {e:#}");
        std::process::exit(1);
    }
}
