//! XTC against mdtraj (GROMACS' own xdrfile code): bgen writes the same bytes for the same
//! frames and reads mdtraj's files to the format's precision; damaged files give errors that
//! name the file and the frame. The reference files are made by tests/data/xtc/make.py.

use bgen_md::xtc::{read_xtc, write_xtc};
use bgen_system::npy::read_npy;
use std::path::{Path, PathBuf};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/xtc")
        .join(name)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bgen-xtc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Largest |a - b|.
fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn writes_the_bytes_mdtraj_writes() {
    // Whole atoms and runs (aldp), the swap of a run's first atom (water), index changes in
    // both directions (mixed), and the uncompressed form for 9 atoms or fewer (tiny).
    for name in ["aldp", "water", "mixed", "tiny"] {
        let x = read_npy(&data(&format!("{name}.npy"))).unwrap();
        let out = scratch(&format!("{name}.xtc"));
        write_xtc(&out, &x.data, x.shape[1], 1.0, 1000.0).unwrap();
        let ours = std::fs::read(&out).unwrap();
        let theirs = std::fs::read(data(&format!("{name}.mdtraj.xtc"))).unwrap();
        assert_eq!(ours.len(), theirs.len(), "{name}: file sizes");
        assert!(ours == theirs, "{name}: bytes differ from mdtraj's");
    }
}

#[test]
fn reads_mdtraj_files_to_the_precision() {
    for name in ["aldp", "water", "mixed", "tiny", "big"] {
        let x = read_npy(&data(&format!("{name}.npy"))).unwrap();
        let t = read_xtc(&data(&format!("{name}.mdtraj.xtc"))).unwrap();
        assert_eq!(t.n_atoms, x.shape[1], "{name}");
        let frames = x.shape[0];
        assert_eq!(t.step, (0..frames as i64).collect::<Vec<_>>(), "{name}");
        assert_eq!(t.time_ps, (0..frames).map(|f| f as f64).collect::<Vec<_>>());
        // Half a unit of 1/1000 nm, plus f32 round-off of the coordinate (large for `big`,
        // whose coordinates reach 6e4 nm).
        let scale = x.data.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let tol = 0.5e-3 + 2.0 * scale * f32::EPSILON as f64;
        let d = max_diff(&t.x, &x.data);
        assert!(d <= tol, "{name}: {d} nm off (tolerance {tol})");
        if name != "tiny" {
            assert!(d > 1e-5, "{name}: compressed coordinates are rounded, {d}");
        }
    }
}

#[test]
fn round_trip_at_other_precisions() {
    let x = read_npy(&data("aldp.npy")).unwrap();
    for precision in [100.0f32, 1000.0, 1e5] {
        let out = scratch(&format!("p{precision}.xtc"));
        write_xtc(&out, &x.data, 22, 2.0, precision).unwrap();
        let t = read_xtc(&out).unwrap();
        let d = max_diff(&t.x, &x.data);
        assert!(
            d <= 0.5 / precision as f64 + 1e-6,
            "precision {precision}: {d}"
        );
        assert_eq!(t.time_ps[3], 6.0);
    }
}

#[test]
fn damage_and_bad_input_are_named() {
    let x = read_npy(&data("aldp.npy")).unwrap();
    let out = scratch("damaged.xtc");
    write_xtc(&out, &x.data, 22, 1.0, 1000.0).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    // Cut inside the last frame.
    std::fs::write(&out, &bytes[..bytes.len() - 10]).unwrap();
    let e = read_xtc(&out).unwrap_err().to_string();
    assert!(e.contains("damaged.xtc") && e.contains("frame 19"), "{e}");
    // Not an XTC file.
    std::fs::write(&out, b"CORD and more bytes than a header").unwrap();
    let e = read_xtc(&out).unwrap_err().to_string();
    assert!(e.contains("frame 0") && e.contains("magic"), "{e}");
    // Garbage inside the compressed bits of a frame: an error or other numbers, never a panic.
    let mut bad = bytes.clone();
    for b in bad.iter_mut().skip(120).take(40) {
        *b ^= 0x5a;
    }
    std::fs::write(&out, &bad).unwrap();
    let _ = read_xtc(&out);
    // NaN coordinates are refused at writing, naming the frame.
    let mut y = x.data.clone();
    y[22 * 3 * 4 + 7] = f64::NAN;
    let e = write_xtc(&out, &y, 22, 1.0, 1000.0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("frame 4") && e.contains("NaN"), "{e}");
    // A NaN time (it panicked when frames were sorted) and an infinite precision (it read as
    // zeros) are refused, naming the file.
    let mut nan_time = bytes.clone();
    nan_time[12..16].copy_from_slice(&f32::NAN.to_be_bytes());
    std::fs::write(&out, &nan_time).unwrap();
    let e = bgen_md::dataset::load(&out).unwrap_err().to_string();
    assert!(
        e.contains("damaged.xtc") && e.contains("frame 0") && e.contains("time"),
        "{e}"
    );
    let mut inf_prec = bytes.clone();
    inf_prec[56..60].copy_from_slice(&f32::INFINITY.to_be_bytes());
    std::fs::write(&out, &inf_prec).unwrap();
    let e = bgen_md::dataset::load(&out).unwrap_err().to_string();
    assert!(
        e.contains("damaged.xtc") && e.contains("precision inf"),
        "{e}"
    );
}
