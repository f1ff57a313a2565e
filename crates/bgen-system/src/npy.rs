//! Reading and writing NumPy `.npy` arrays (format 1.0-3.0; little-endian f4/f8/i4/i8 read,
//! f4/f8/i8 written, C order).

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// An array read from a .npy file, converted to f64.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
    /// Whether the file held integers (i4/i8) rather than floats.
    pub integer: bool,
}

impl NpyArray {
    /// Refuses integers where positions are expected (`file` names the file).
    pub fn refuse_integer_positions(&self, file: &Path) -> Result<()> {
        match self.integer {
            true => Err(err(
                &file.display().to_string(),
                "holds integers; positions must be float32 or float64, in nm",
            )),
            false => Ok(()),
        }
    }
}

fn err(file: &str, msg: impl Into<String>) -> Error {
    Error::Npy {
        file: file.to_string(),
        msg: msg.into(),
    }
}

/// Reads a .npy file of little-endian f32/f64/i32/i64 in C order.
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        file: file.clone(),
        error: e,
    })?;
    parse_npy(&bytes, &file)
}

/// Parses the bytes of a .npy file; `file` names it in errors.
pub fn parse_npy(bytes: &[u8], file: &str) -> Result<NpyArray> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(err(file, "not a .npy file (bad magic string)"));
    }
    let major = bytes[6];
    let (hlen, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(err(file, "truncated header"));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => return Err(err(file, format!("unsupported .npy format version {v}"))),
    };
    let header = bytes
        .get(start..start + hlen)
        .ok_or_else(|| err(file, "truncated header"))?;
    let header = std::str::from_utf8(header).map_err(|_| err(file, "header is not text"))?;
    let value = |key: &str| -> Option<&str> {
        let k = header.find(&format!("'{key}'"))?;
        let rest = header[k + key.len() + 2..]
            .trim_start()
            .strip_prefix(':')?
            .trim_start();
        Some(rest)
    };
    let descr = value("descr")
        .and_then(|s| s.get(1..))
        .and_then(|s| s.split('\'').next())
        .ok_or_else(|| err(file, "header lacks 'descr'"))?;
    let fortran = value("fortran_order")
        .ok_or_else(|| err(file, "header lacks 'fortran_order'"))?
        .starts_with("True");
    if fortran {
        return Err(err(
            file,
            "Fortran-ordered arrays are not supported (save with np.ascontiguousarray)",
        ));
    }
    let shape_s = value("shape")
        .and_then(|s| s.strip_prefix('('))
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| err(file, "header lacks 'shape'"))?;
    let shape: Vec<usize> = shape_s
        .split(',')
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| err(file, format!("bad shape entry '{s}'")))
        })
        .collect::<Result<_>>()?;
    let body = &bytes[start + hlen..];
    let (size, conv): (usize, fn(&[u8]) -> f64) = match descr {
        "<f8" | "=f8" => (8, |b| f64::from_le_bytes(b.try_into().unwrap())),
        "<f4" | "=f4" => (4, |b| f32::from_le_bytes(b.try_into().unwrap()) as f64),
        "<i8" | "=i8" => (8, |b| i64::from_le_bytes(b.try_into().unwrap()) as f64),
        "<i4" | "=i4" => (4, |b| i32::from_le_bytes(b.try_into().unwrap()) as f64),
        d => {
            return Err(err(
                file,
                format!("unsupported dtype '{d}' (need little-endian float32/float64/int32/int64)"),
            ))
        }
    };
    // The header's shape must account for the data exactly: checked before any allocation, so a
    // corrupt or hostile header cannot ask for more memory than the file holds.
    let needed = shape
        .iter()
        .try_fold(size, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| err(file, format!("shape {shape:?} is too large")))?;
    if body.len() != needed {
        return Err(err(
            file,
            format!(
                "{}: shape {shape:?} needs {needed} bytes of data, the file has {}",
                if body.len() < needed {
                    "truncated data"
                } else {
                    "more data than the header's shape"
                },
                body.len()
            ),
        ));
    }
    let data = body.chunks_exact(size).map(conv).collect();
    Ok(NpyArray {
        shape,
        data,
        integer: descr.ends_with("i8") || descr.ends_with("i4"),
    })
}

fn header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let shape_s = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_s}, }}");
    let total = 10 + h.len() + 1;
    h.push_str(&" ".repeat((64 - total % 64) % 64));
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out
}

/// Writes `data` with `shape` as a .npy file, atomically (temporary file, then rename).
/// `as_f32` stores float32, else float64.
pub fn write_npy(path: &Path, shape: &[usize], data: &[f64], as_f32: bool) -> Result<()> {
    let n: usize = shape.iter().product();
    assert_eq!(
        n,
        data.len(),
        "shape {shape:?} does not match {} values",
        data.len()
    );
    let mut buf = header(if as_f32 { "<f4" } else { "<f8" }, shape);
    buf.reserve(n * 8);
    for &v in data {
        if as_f32 {
            buf.extend_from_slice(&(v as f32).to_le_bytes());
        } else {
            buf.extend_from_slice(&v.to_le_bytes());
        }
    }
    write_atomic(path, &buf)
}

/// Writes integers `data` with `shape` as an int64 .npy file, atomically.
pub fn write_npy_i64(path: &Path, shape: &[usize], data: &[i64]) -> Result<()> {
    let n: usize = shape.iter().product();
    assert_eq!(
        n,
        data.len(),
        "shape {shape:?} does not match {} values",
        data.len()
    );
    let mut buf = header("<i8", shape);
    for &v in data {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    write_atomic(path, &buf)
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so that
/// a reader never sees a partial file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let file = path.display().to_string();
    let io = |e| Error::Io {
        file: file.clone(),
        error: e,
    };
    // A temporary name of its own per process and call, so that concurrent writers of one path
    // never write into each other's file: the last rename wins, and readers see whole files.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!(
        "{}.{}-{call}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or(""),
        std::process::id()
    ));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    });
    // A failed write or rename (a full disk, a directory at `path`) leaves no temporary behind.
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io)
}
