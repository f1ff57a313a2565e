//! Helpers shared by the command-line tests (`mod common;` in each): the binary, scratch paths,
//! and a run that must succeed.

#![allow(dead_code)] // each test file uses some of them

use std::path::PathBuf;
use std::process::{Command, Output};

/// The `bgen` binary of this build.
pub fn bgen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bgen"))
}

/// A scratch path unique to this test process, `name` in the system's temporary directory;
/// whatever an earlier run left there is removed, nothing is created.
pub fn scratch(name: &str) -> PathBuf {
    let p = scratch_path(name);
    let _ = std::fs::remove_dir_all(&p);
    let _ = std::fs::remove_file(&p);
    p
}

/// [`scratch`], created as an empty directory.
pub fn scratch_dir(name: &str) -> PathBuf {
    let p = scratch(name);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// The path [`scratch`] gives `name`, left as it is (to read what an earlier step wrote).
pub fn scratch_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("bgen-test-{}-{name}", std::process::id()))
}

/// What a command printed.
pub struct Printed {
    pub stdout: String,
    pub stderr: String,
}

/// The output of a command that must have succeeded (else the test fails with its stderr).
pub fn ok(o: Output) -> Printed {
    let p = printed(&o);
    assert!(o.status.success(), "{}", p.stderr);
    p
}

/// Both streams of a command as text.
pub fn printed(o: &Output) -> Printed {
    Printed {
        stdout: String::from_utf8_lossy(&o.stdout).into(),
        stderr: String::from_utf8_lossy(&o.stderr).into(),
    }
}

/// The stderr of a command that must have failed saying `says` (else the test fails with what
/// it printed).
pub fn fails(o: Output, says: &str) -> String {
    let p = printed(&o);
    assert!(
        !o.status.success() && p.stderr.contains(says),
        "expected a failure saying {says:?}, got {}: {}",
        o.status,
        p.stderr
    );
    p.stderr
}
