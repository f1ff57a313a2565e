//! DCD trajectories (the CHARMM/NAMD binary format that VMD, PyMOL, mdtraj and MDAnalysis read):
//! little-endian Fortran records, float32 coordinates in Angstrom, no unit cell.

use crate::error::{file_err, io_err, Result};
use std::path::Path;

/// The AKMA time unit in ps (DCD stores the time step in it).
const AKMA_PS: f64 = 0.048_888_21;

fn record(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(&(body.len() as i32).to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&(body.len() as i32).to_le_bytes());
}

/// Writes frames (frames x atoms x 3, nm) as a DCD file, atomically; `interval_ps` is the time
/// between frames.
pub fn write_dcd(path: &Path, x: &[f64], n_atoms: usize, interval_ps: f64) -> Result<()> {
    let d = 3 * n_atoms;
    assert!(
        d > 0 && x.len().is_multiple_of(d),
        "positions must be frames x atoms x 3"
    );
    let n_frames = x.len() / d;
    let mut out = Vec::with_capacity(300 + n_frames * (12 * n_atoms + 24));
    // Header: "CORD", then NSET, ISTART, NSAVC, 6 zeros, DELTA (f32), 9 zeros, version 24.
    let mut h = b"CORD".to_vec();
    for v in [n_frames as i32, 1, 1, n_frames as i32, 0, 0, 0, 0, 0] {
        h.extend_from_slice(&v.to_le_bytes());
    }
    h.extend_from_slice(&((interval_ps / AKMA_PS) as f32).to_le_bytes());
    for v in [0i32, 0, 0, 0, 0, 0, 0, 0, 0, 24] {
        h.extend_from_slice(&v.to_le_bytes());
    }
    record(&mut out, &h);
    let mut t = 2i32.to_le_bytes().to_vec();
    for title in ["Created by bgen", "positions in Angstrom"] {
        let mut line = [b' '; 80];
        line[..title.len()].copy_from_slice(title.as_bytes());
        t.extend_from_slice(&line);
    }
    record(&mut out, &t);
    record(&mut out, &(n_atoms as i32).to_le_bytes());
    let mut axis = Vec::with_capacity(4 * n_atoms);
    for f in 0..n_frames {
        let frame = &x[f * d..(f + 1) * d];
        for k in 0..3 {
            axis.clear();
            for a in 0..n_atoms {
                axis.extend_from_slice(&((frame[3 * a + k] * 10.0) as f32).to_le_bytes());
            }
            record(&mut out, &axis);
        }
    }
    Ok(bgen_system::npy::write_atomic(path, &out)?)
}

/// Reads a DCD file written without a unit cell or fixed atoms; returns (atoms, positions in nm
/// as frames x atoms x 3).
pub fn read_dcd(path: &Path) -> Result<(usize, Vec<f64>)> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let mut pos = 0;
    let mut next = |what: &str| -> Result<&[u8]> {
        let len_at = |p: usize| -> Option<usize> {
            let v = i32::from_le_bytes(bytes.get(p..p.checked_add(4)?)?.try_into().ok()?);
            usize::try_from(v).ok()
        };
        let n =
            len_at(pos).ok_or_else(|| file_err(path, format!("truncated before the {what}")))?;
        let end = (pos + 4)
            .checked_add(n)
            .ok_or_else(|| file_err(path, format!("corrupt length of the {what}")))?;
        let body = bytes
            .get(pos + 4..end)
            .ok_or_else(|| file_err(path, format!("truncated {what}")))?;
        if len_at(end) != Some(n) {
            return Err(file_err(
                path,
                format!("corrupt record markers around the {what}"),
            ));
        }
        pos += n + 8;
        Ok(body)
    };
    let h = next("header")?;
    if h.len() != 84 || &h[..4] != b"CORD" {
        return Err(file_err(path, "not a DCD file (no CORD header)"));
    }
    let int = |b: &[u8], i: usize| i32::from_le_bytes(b[4 * i..4 * i + 4].try_into().unwrap());
    let n_frames = int(&h[4..], 0).max(0) as usize;
    if int(&h[4..], 10) != 0 || int(&h[4..], 8) != 0 {
        return Err(file_err(
            path,
            "DCD files with a unit cell or fixed atoms are not supported",
        ));
    }
    next("title")?;
    let na = next("atom count")?;
    let n_atoms = i32::from_le_bytes(
        na.try_into()
            .map_err(|_| file_err(path, "bad atom count"))?,
    );
    let n_atoms = usize::try_from(n_atoms)
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| file_err(path, format!("bad atom count {n_atoms}")))?;
    // The header's counts must fit in the file before anything is allocated for them.
    let needed = n_atoms
        .checked_mul(4)
        .and_then(|b| b.checked_add(8))
        .and_then(|b| b.checked_mul(3))
        .and_then(|b| b.checked_mul(n_frames));
    if needed.is_none_or(|b| b > bytes.len()) {
        return Err(file_err(
            path,
            format!(
                "the header claims {n_frames} frames of {n_atoms} atoms, more than the file's {} bytes hold",
                bytes.len()
            ),
        ));
    }
    let mut x = vec![0.0; n_frames * 3 * n_atoms];
    for f in 0..n_frames {
        for k in 0..3 {
            let axis = next(&format!("frame {f}"))?;
            if axis.len() != 4 * n_atoms {
                return Err(file_err(
                    path,
                    format!("frame {f}: {} bytes, expected {}", axis.len(), 4 * n_atoms),
                ));
            }
            for a in 0..n_atoms {
                let v = f32::from_le_bytes(axis[4 * a..4 * a + 4].try_into().unwrap());
                x[f * 3 * n_atoms + 3 * a + k] = v as f64 / 10.0;
            }
        }
    }
    Ok((n_atoms, x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let dir = std::env::temp_dir().join(format!("bgen-dcd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("t.dcd");
        let x: Vec<f64> = (0..2 * 5 * 3).map(|i| (i as f64 * 0.37).sin()).collect();
        write_dcd(&p, &x, 5, 1.0).unwrap();
        let (n, y) = read_dcd(&p).unwrap();
        assert_eq!(n, 5);
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() < 1e-6, "{a} {b}");
        }
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 7]).unwrap();
        let err = read_dcd(&p).unwrap_err().to_string();
        assert!(err.contains("t.dcd") && err.contains("frame 1"), "{err}");
        // Found by fuzzing: a header that claims 2^31 frames asked for 154 GB and aborted; a
        // negative record length or atom count wrapped around.
        let mut huge = bytes.clone();
        huge[8..12].copy_from_slice(&i32::MAX.to_le_bytes());
        std::fs::write(&p, &huge).unwrap();
        let err = read_dcd(&p).unwrap_err().to_string();
        assert!(err.contains("more than the file"), "{err}");
        let mut neg = bytes.clone();
        neg[0..4].copy_from_slice(&(-8i32).to_le_bytes());
        std::fs::write(&p, &neg).unwrap();
        assert!(read_dcd(&p).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
