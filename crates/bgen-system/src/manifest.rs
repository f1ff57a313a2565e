//! Manifests: the size and CRC-32 of every file of a multi-file output, written after the files
//! themselves. A reader that finds a manifest trusts only files that match it, so a file damaged
//! or changed after it was written (a flipped byte on disk, a half-copied directory) is an error
//! naming the file instead of silently wrong numbers. The format is text, one line per file:
//! `name size crc32-hex`.

use crate::error::{Error, Result};
use crate::npy::write_atomic;
use std::path::Path;

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |error| Error::Io {
        file: path.display().to_string(),
        error,
    }
}

fn bad(path: &Path, msg: String) -> Error {
    Error::Other(format!("{}: {msg}", path.display()))
}

/// CRC-32 of a byte string.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Writes `manifest` in `dir` listing `files` (names inside `dir`), atomically.
pub fn write(dir: &Path, manifest: &str, files: &[&str]) -> Result<()> {
    let mut text = String::new();
    for name in files {
        let p = dir.join(name);
        let bytes = std::fs::read(&p).map_err(io(&p))?;
        text.push_str(&format!("{name} {} {:08x}\n", bytes.len(), crc32(&bytes)));
    }
    write_atomic(&dir.join(manifest), text.as_bytes())
}

/// Checks `file` (inside `dir`) against `manifest` in `dir` when there is one (outputs of older
/// versions have none). Errors name the file: missing from the manifest, or of another size or
/// checksum than it records.
pub fn verify(dir: &Path, manifest: &str, file: &str) -> Result<()> {
    let mp = dir.join(manifest);
    if !mp.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&mp).map_err(io(&mp))?;
    let entry = text
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?, it.next()?, it.next()?))
        })
        .find(|(n, _, _)| *n == file);
    let p = dir.join(file);
    let Some((_, size, crc)) = entry else {
        return Err(bad(&p, format!("not listed in {}", mp.display())));
    };
    let bytes = std::fs::read(&p).map_err(io(&p))?;
    let (size, crc): (usize, u32) = match (size.parse(), u32::from_str_radix(crc, 16)) {
        (Ok(s), Ok(c)) => (s, c),
        _ => return Err(bad(&mp, "corrupt manifest".into())),
    };
    if bytes.len() != size || crc32(&bytes) != crc {
        return Err(bad(
            &p,
            format!(
                "does not match {} ({} bytes, CRC-32 {:08x}; recorded {size} bytes, {crc:08x}): \
                 the file was damaged or changed after it was written",
                mp.display(),
                bytes.len(),
                crc32(&bytes)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flipped_byte_is_caught_and_named() {
        let d = std::env::temp_dir().join(format!("bgen-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("a.bin"), b"hello world").unwrap();
        std::fs::write(d.join("b.bin"), vec![7u8; 1000]).unwrap();
        write(&d, "manifest.txt", &["a.bin", "b.bin"]).unwrap();
        verify(&d, "manifest.txt", "a.bin").unwrap();
        verify(&d, "manifest.txt", "b.bin").unwrap();
        let mut b = std::fs::read(d.join("b.bin")).unwrap();
        b[500] ^= 0x10;
        std::fs::write(d.join("b.bin"), &b).unwrap();
        let e = verify(&d, "manifest.txt", "b.bin").unwrap_err().to_string();
        assert!(e.contains("b.bin") && e.contains("damaged"), "{e}");
        let e = verify(&d, "manifest.txt", "c.bin").unwrap_err().to_string();
        assert!(e.contains("not listed"), "{e}");
        // Without a manifest there is nothing to check.
        verify(&d, "none.txt", "b.bin").unwrap();
        std::fs::remove_dir_all(d).unwrap();
    }
}
