//! Output directories: an advisory lock held by the one process that writes a directory, and a
//! check that an output directory is not also an input (writing there would overwrite the input
//! while it is read).

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// Name of the lock file inside a locked directory.
pub const LOCK_FILE: &str = ".bgen.lock";

/// An exclusive advisory lock on an output directory, released when dropped (or when the process
/// ends, however it ends: the operating system drops the lock with the file handle).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    pub path: PathBuf,
}

/// Creates `dir` if needed and locks it for this process. Another process that holds the lock
/// makes this fail at once with a message naming the directory.
pub fn lock_dir(dir: &Path) -> Result<DirLock> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Io {
        file: dir.display().to_string(),
        error: e,
    })?;
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::Io {
            file: path.display().to_string(),
            error: e,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(DirLock { _file: file, path }),
        Err(TryLockError::WouldBlock) => Err(Error::Other(format!(
            "{}: another bgen process is writing this directory (it holds {}); wait for it to \
             finish or choose another output directory",
            dir.display(),
            path.display()
        ))),
        Err(TryLockError::Error(e)) => Err(Error::Io {
            file: path.display().to_string(),
            error: e,
        }),
    }
}

/// Files that mark a directory as another stage's output: an MD run (checkpoint.json,
/// frames.npy, run.json), a data set (dataset.json, frames.npy) or a training run (latest.json,
/// run.json).
const OTHER_OUTPUTS: [&str; 5] = [
    "frames.npy",
    "checkpoint.json",
    "run.json",
    "dataset.json",
    "latest.json",
];

/// Refuses an output directory `dir` of a stage that writes `what` when it is a file, or holds
/// another stage's output (an MD run, a data set, a training run), which writing there would
/// overwrite (their manifests too).
pub fn refuse_foreign(dir: &Path, what: &str) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        return Err(Error::Other(format!(
            "{}: is a file; the output of {what} is a directory",
            dir.display()
        )));
    }
    match OTHER_OUTPUTS.iter().find(|f| dir.join(f).exists()) {
        Some(f) => Err(Error::Other(format!(
            "{}: holds {f}, the output of another stage (an MD run, a data set or a training \
             run); writing {what} there would overwrite it: choose another output directory",
            dir.display()
        ))),
        None => Ok(()),
    }
}

/// Refuses `output` when it is `input` or lies inside it, or `input` lies inside `output` (paths
/// compared after resolving links; an output that does not exist yet is compared by its nearest
/// existing ancestor).
pub fn refuse_same(input: &Path, output: &Path, what: &str) -> Result<()> {
    let resolve = |p: &Path| -> PathBuf {
        let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let mut tail = Vec::new();
        let mut cur = abs.as_path();
        loop {
            if let Ok(c) = cur.canonicalize() {
                let mut r = c;
                for t in tail.iter().rev() {
                    r.push(t);
                }
                return r;
            }
            match (cur.parent(), cur.file_name()) {
                (Some(parent), Some(name)) => {
                    tail.push(name.to_os_string());
                    cur = parent;
                }
                _ => return abs,
            }
        }
    };
    let (i, o) = (resolve(input), resolve(output));
    // An input file's directory counts as the input.
    let i_dir = if i.is_file() {
        i.parent().map(Path::to_path_buf).unwrap_or(i.clone())
    } else {
        i.clone()
    };
    if o == i_dir || o.starts_with(&i) || (i_dir.starts_with(&o) && !i.is_file()) {
        return Err(Error::Other(format!(
            "--out {} is the {what} {} (or contains it): its files would be overwritten while \
             they are read; choose another output directory",
            output.display(),
            input.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("bgen-outdir-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_locked_directory_refuses_a_second_writer_until_released() {
        let d = tmp("lock");
        let first = lock_dir(&d).unwrap();
        let err = lock_dir(&d).unwrap_err().to_string();
        assert!(err.contains("another bgen process"), "{err}");
        drop(first);
        let again = lock_dir(&d).unwrap();
        drop(again);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn output_equal_to_or_inside_the_input_is_refused() {
        let d = tmp("same");
        std::fs::create_dir_all(d.join("run/train")).unwrap();
        std::fs::write(d.join("run/frames.npy"), b"x").unwrap();
        let run = d.join("run");
        for out in [
            run.clone(),
            run.join("."),
            run.join("new"),
            d.join("run/../run"),
        ] {
            let err = refuse_same(&run, &out, "input").unwrap_err().to_string();
            assert!(
                err.contains("would be overwritten"),
                "{}: {err}",
                out.display()
            );
        }
        // A parent of the input is refused too; a sibling is fine.
        assert!(refuse_same(&run.join("train"), &run, "input").is_err());
        refuse_same(&run, &d.join("other"), "input").unwrap();
        // An input file: its directory may not be the output; a sibling directory may.
        let f = run.join("frames.npy");
        assert!(refuse_same(&f, &run, "input").is_err());
        refuse_same(&f, &run.join("export"), "input").unwrap();
        std::fs::remove_dir_all(d).unwrap();
    }
}
