//! XTC trajectories (GROMACS' compressed format, read by mdtraj, MDAnalysis, VMD and GROMACS):
//! big-endian XDR frames, coordinates in nm rounded to 1/precision and packed with GROMACS'
//! integer compression. Without a unit cell, the box is written as zeros.
//!
//! The compression, per frame: coordinates become integers (x precision, rounded); each atom
//! is either written whole (relative to the frame's minimum, in the bits its range needs) or, in
//! a run of up to 8 atoms following a whole one, as a small difference from the previous atom.
//! The width of the small differences (`magicints[smallidx]` per axis) adapts from run to run.
//! The first atom of a run trades places with the whole one before it (water's O-H-H then packs
//! as H-O-H), and readers swap them back.

use crate::error::{file_err, io_err, Result};
use std::path::Path;

const MAGIC: i32 = 1995;

/// Ranges of small differences (part of the format): entry i is about 2^(i/3), so that three
/// values below it fit in i bits. Entries below `FIRSTIDX` are unused.
const MAGICINTS: [i32; 73] = [
    0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 10, 12, 16, 20, 25, 32, 40, 50, 64, 80, 101, 128, 161, 203, 256,
    322, 406, 512, 645, 812, 1024, 1290, 1625, 2048, 2580, 3250, 4096, 5060, 6501, 8192, 10321,
    13003, 16384, 20642, 26007, 32768, 41285, 52015, 65536, 82570, 104031, 131072, 165140, 208063,
    262144, 330280, 416127, 524287, 660561, 832255, 1048576, 1321122, 1664510, 2097152, 2642245,
    3329021, 4194304, 5284491, 6658042, 8388607, 10568983, 13316085, 16777216,
];
const FIRSTIDX: usize = 9;
const LASTIDX: usize = MAGICINTS.len();
/// Largest |coordinate| x precision the integers may hold.
const MAXABS: f32 = (i32::MAX - 2) as f32;

/// The width of the small differences: values below `MAGICINTS[idx]` per axis, offset by
/// `half`; `smaller` is the half-width one step down (used to decide when to narrow).
struct Small {
    idx: usize,
    half: i32,
    smaller: i32,
}

impl Small {
    fn new(idx: usize) -> Small {
        Small {
            idx,
            half: MAGICINTS[idx] / 2,
            smaller: MAGICINTS[(idx - 1).max(FIRSTIDX)] / 2,
        }
    }

    /// Per-axis sizes of a packed difference triple.
    fn sizes(&self) -> [u32; 3] {
        [MAGICINTS[self.idx] as u32; 3]
    }

    /// Widens (+1) or narrows (-1) by one step; 0 keeps it.
    fn step(&mut self, by: i32) {
        self.idx = (self.idx as i32 + by) as usize;
        if by < 0 {
            self.half = self.smaller;
            self.smaller = if self.idx > FIRSTIDX {
                MAGICINTS[self.idx - 1] / 2
            } else {
                0
            };
        } else if by > 0 {
            self.smaller = self.half;
            self.half = MAGICINTS[self.idx] / 2;
        }
    }
}

/// Bits needed for the values 0..=size.
fn bits_for(size: u128) -> u32 {
    128 - size.leading_zeros()
}

/// Bits of a packed triple whose values lie in 0..sizes[k] (the bit length of the product of
/// the sizes).
fn bits_for_triple(sizes: [u32; 3]) -> u32 {
    bits_for(sizes.iter().map(|&s| s as u128).product())
}

/// Bits written most significant first.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    acc: u64,
    pending: u32,
}

impl BitWriter {
    /// Appends the low `bits` bits (at most 32) of `value`.
    fn put(&mut self, bits: u32, value: u32) {
        if bits == 0 {
            return;
        }
        self.acc = (self.acc << bits) | (value as u64 & ((1u64 << bits) - 1));
        self.pending += bits;
        while self.pending >= 8 {
            self.pending -= 8;
            self.bytes.push((self.acc >> self.pending) as u8);
        }
        self.acc &= (1u64 << self.pending) - 1;
    }

    /// Three values below `sizes` as one mixed-radix number (first value most significant), in
    /// `bits` bits: its bytes least significant first, the last one cut to the bits left.
    fn put_triple(&mut self, bits: u32, sizes: [u32; 3], v: [u32; 3]) {
        let n = (v[0] as u128 * sizes[1] as u128 + v[1] as u128) * sizes[2] as u128 + v[2] as u128;
        let nbytes = (bits_for(n).div_ceil(8)).max(1);
        let byte = |i: u32| ((n >> (8 * i)) & 0xff) as u32;
        if bits >= 8 * nbytes {
            for i in 0..nbytes {
                self.put(8, byte(i));
            }
            self.put(bits - 8 * nbytes, 0);
        } else {
            for i in 0..nbytes - 1 {
                self.put(8, byte(i));
            }
            self.put(bits - 8 * (nbytes - 1), byte(nbytes - 1));
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.pending > 0 {
            self.bytes.push((self.acc << (8 - self.pending)) as u8);
        }
        self.bytes
    }
}

/// Bits read most significant first; None past the end.
struct BitReader<'a> {
    bytes: &'a [u8],
    at: usize,
    acc: u64,
    pending: u32,
}

impl BitReader<'_> {
    fn get(&mut self, bits: u32) -> Option<u32> {
        while self.pending < bits {
            self.acc = (self.acc << 8) | *self.bytes.get(self.at)? as u64;
            self.at += 1;
            self.pending += 8;
        }
        self.pending -= bits;
        let v = (self.acc >> self.pending) & ((1u64 << bits) - 1);
        self.acc &= (1u64 << self.pending) - 1;
        Some(v as u32)
    }

    fn get_triple(&mut self, mut bits: u32, sizes: [u32; 3]) -> Option<[u32; 3]> {
        let mut n = 0u128;
        let mut shift = 0;
        while bits > 0 {
            let b = bits.min(8);
            n |= (self.get(b)? as u128) << shift;
            shift += 8;
            bits -= b;
        }
        let (s1, s2) = (sizes[1] as u128, sizes[2] as u128);
        let v2 = n % s2;
        n /= s2;
        let v1 = n % s1;
        n /= s1;
        Some([u32::try_from(n).ok()?, v1 as u32, v2 as u32])
    }
}

/// Coordinates to integers as GROMACS rounds them (in f32, half away from zero).
fn to_int(x: f64, precision: f32) -> Option<i32> {
    let v = x as f32 * precision;
    let v = if v >= 0.0 { v + 0.5 } else { v - 0.5 };
    (v.abs() < MAXABS).then_some(v as i32)
}

/// Coordinates (nm) as integers in units of 1/`precision` nm.
fn quantize(frame: &[f64], precision: f32) -> std::result::Result<Vec<i32>, String> {
    frame
        .iter()
        .map(|&x| {
            to_int(x, precision)
                .ok_or_else(|| format!("coordinate {x} nm is too large for precision {precision}"))
        })
        .collect()
}

/// The integer coordinates' bounding box: lowest and highest value and the number of values
/// along each axis.
struct Bounds {
    lo: [i32; 3],
    hi: [i32; 3],
    size: [u32; 3],
}

impl Bounds {
    /// Refused when a span is too large to encode.
    fn of(c: &[i32]) -> std::result::Result<Bounds, String> {
        let (mut lo, mut hi) = ([i32::MAX; 3], [i32::MIN; 3]);
        for a in c.chunks_exact(3) {
            for k in 0..3 {
                lo[k] = lo[k].min(a[k]);
                hi[k] = hi[k].max(a[k]);
            }
        }
        let mut size = [0u32; 3];
        for k in 0..3 {
            let s = hi[k] as i64 - lo[k] as i64 + 1;
            if s as f64 >= MAXABS as f64 {
                return Err("the coordinates span too large a range for the precision".into());
            }
            size[k] = s as u32;
        }
        Ok(Bounds { lo, hi, size })
    }
}

/// The first small-difference scale: the smallest magic integer at least the smallest
/// city-block step between consecutive atoms.
fn first_small_index(c: &[i32]) -> usize {
    let mindiff = c
        .chunks_exact(3)
        .zip(c.chunks_exact(3).skip(1))
        .map(|(a, b)| {
            (0..3)
                .map(|k| (a[k] as i64 - b[k] as i64).abs())
                .sum::<i64>()
        })
        .min()
        .unwrap_or(i64::MAX);
    let mut smallidx = FIRSTIDX;
    while smallidx < LASTIDX - 1 && (MAGICINTS[smallidx] as i64) < mindiff {
        smallidx += 1;
    }
    smallidx
}

/// The compressed coordinates of one frame of more than 9 atoms (after the atom count).
fn compress(frame: &[f64], precision: f32, out: &mut Vec<u8>) -> std::result::Result<(), String> {
    let n = frame.len() / 3;
    let mut c = quantize(frame, precision)?;
    let Bounds { lo, hi, size } = Bounds::of(&c)?;
    let large = (size[0] | size[1] | size[2]) > 0xff_ffff;
    let bit_sizes = size.map(|s| bits_for(s as u128));
    let bits = if large { 0 } else { bits_for_triple(size) };
    let smallidx = first_small_index(&c);
    out.extend_from_slice(&precision.to_be_bytes());
    for v in lo.iter().chain(&hi) {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&(smallidx as i32).to_be_bytes());

    let maxidx = (smallidx + 8).min(LASTIDX - 1);
    let minidx = maxidx - 8;
    let larger = MAGICINTS[maxidx] / 2;
    let mut small = Small::new(smallidx);
    let mut w = BitWriter::default();
    let mut prevrun: i32 = -1;
    let mut prev = [0i32; 3];
    let mut run_values = [0u32; 24];
    let near = |a: &[i32], b: &[i32], r: i32| (0..3).all(|k| (a[k] - b[k]).abs() < r);
    let mut i = 0;
    while i < n {
        let at = 3 * i;
        let mut is_smaller: i32 =
            if small.idx < maxidx && i >= 1 && near(&c[at..at + 3], &prev, larger) {
                1
            } else if small.idx > minidx {
                -1
            } else {
                0
            };
        let mut is_small = false;
        if i + 1 < n && near(&c[at..at + 3], &c[at + 3..at + 6], small.half) {
            // The run's first atom trades places with this one.
            for k in 0..3 {
                c.swap(at + k, at + 3 + k);
            }
            is_small = true;
        }
        let whole = [0, 1, 2].map(|k| (c[at + k] - lo[k]) as u32);
        if large {
            for k in 0..3 {
                w.put(bit_sizes[k], whole[k]);
            }
        } else {
            w.put_triple(bits, size, whole);
        }
        prev.copy_from_slice(&c[at..at + 3]);
        i += 1;
        let mut run = 0;
        if !is_small && is_smaller == -1 {
            is_smaller = 0;
        }
        while is_small && run < 24 {
            let a = &c[3 * i..3 * i + 3];
            let d2: i64 = (0..3).map(|k| ((a[k] - prev[k]) as i64).pow(2)).sum();
            if is_smaller == -1 && d2 >= (small.smaller as i64).pow(2) {
                is_smaller = 0;
            }
            for k in 0..3 {
                run_values[run + k] = (a[k] - prev[k] + small.half) as u32;
            }
            run += 3;
            prev.copy_from_slice(a);
            i += 1;
            is_small = i < n && near(&c[3 * i..3 * i + 3], &prev, small.half);
        }
        if run as i32 != prevrun || is_smaller != 0 {
            prevrun = run as i32;
            w.put(1, 1);
            w.put(5, (run as i32 + is_smaller + 1) as u32);
        } else {
            w.put(1, 0);
        }
        for t in run_values[..run].chunks_exact(3) {
            w.put_triple(small.idx as u32, small.sizes(), [t[0], t[1], t[2]]);
        }
        small.step(is_smaller);
    }
    let bytes = w.finish();
    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    out.extend_from_slice(&bytes);
    out.resize(out.len().next_multiple_of(4), 0);
    Ok(())
}

/// Writes frames (frames x atoms x 3, nm) as an XTC file, atomically: frame f at step f and
/// time f `interval_ps`, coordinates to 1/`precision` nm (GROMACS' default is 1000).
pub fn write_xtc(
    path: &Path,
    x: &[f64],
    n_atoms: usize,
    interval_ps: f64,
    precision: f32,
) -> Result<()> {
    let d = 3 * n_atoms;
    assert!(
        d > 0 && x.len().is_multiple_of(d),
        "positions must be frames x atoms x 3"
    );
    if !(precision > 0.0 && precision.is_finite()) {
        return Err(file_err(
            path,
            format!("precision {precision} must be positive"),
        ));
    }
    let mut out = Vec::with_capacity(x.len() * 2);
    for (f, frame) in x.chunks_exact(d).enumerate() {
        if let Some(v) = frame.iter().find(|v| !v.is_finite()) {
            return Err(file_err(path, format!("frame {f}: coordinate {v}")));
        }
        for v in [MAGIC, n_atoms as i32, f as i32] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&((f as f64 * interval_ps) as f32).to_be_bytes());
        out.extend_from_slice(&[0u8; 36]); // no unit cell
        out.extend_from_slice(&(n_atoms as i32).to_be_bytes());
        if n_atoms <= 9 {
            for &v in frame {
                out.extend_from_slice(&(v as f32).to_be_bytes());
            }
        } else {
            compress(frame, precision, &mut out)
                .map_err(|e| file_err(path, format!("frame {f}: {e}")))?;
        }
    }
    Ok(bgen_system::npy::write_atomic(path, &out)?)
}

/// An XTC file's frames: atoms, positions (frames x atoms x 3, nm), times (ps) and steps.
#[derive(Debug, Clone)]
pub struct Xtc {
    pub n_atoms: usize,
    pub x: Vec<f64>,
    pub time_ps: Vec<f64>,
    pub step: Vec<i64>,
}

/// Big-endian XDR reading with the frame named in errors.
struct Xdr<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Xdr<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let s = self.b.get(self.at..self.at + n).ok_or("truncated")?;
        self.at += n;
        Ok(s)
    }
    fn int(&mut self) -> std::result::Result<i32, String> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn float(&mut self) -> std::result::Result<f32, String> {
        Ok(f32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }
}

/// Reads the coordinates of one compressed frame (after the atom count) into `out` (nm).
fn decompress(r: &mut Xdr, n: usize, out: &mut Vec<f64>) -> std::result::Result<(), String> {
    let precision = r.float()?;
    if !(precision.is_finite() && precision > 0.0) {
        return Err(format!(
            "precision {precision} (must be finite and positive)"
        ));
    }
    let mut lo = [0i32; 3];
    let mut hi = [0i32; 3];
    for v in lo.iter_mut().chain(hi.iter_mut()) {
        *v = r.int()?;
    }
    let mut size = [0u32; 3];
    for k in 0..3 {
        let s = hi[k] as i64 - lo[k] as i64 + 1;
        if s <= 0 || s > u32::MAX as i64 {
            return Err("corrupt coordinate range".into());
        }
        size[k] = s as u32;
    }
    let large = (size[0] | size[1] | size[2]) > 0xff_ffff;
    let bit_sizes = size.map(|s| bits_for(s as u128));
    let bits = if large { 0 } else { bits_for_triple(size) };
    let smallidx = r.int()? as usize;
    if !(FIRSTIDX..LASTIDX).contains(&smallidx) {
        return Err(format!("corrupt small-difference index {smallidx}"));
    }
    let mut small = Small::new(smallidx);
    let nbytes = r.int()?;
    let bytes = r.take(usize::try_from(nbytes).map_err(|_| "corrupt byte count")?)?;
    r.take((4 - bytes.len() % 4) % 4)?;
    let mut bits_in = BitReader {
        bytes,
        at: 0,
        acc: 0,
        pending: 0,
    };
    let inv = 1.0 / precision;
    let push = |out: &mut Vec<f64>, a: [i32; 3]| {
        out.extend(a.iter().map(|&v| (v as f32 * inv) as f64));
    };
    let mut run = 0i32;
    let mut i = 0;
    let damaged = || "compressed coordinates end early".to_string();
    while i < n {
        let whole = if large {
            let mut v = [0u32; 3];
            for k in 0..3 {
                v[k] = bits_in.get(bit_sizes[k]).ok_or_else(damaged)?;
            }
            v
        } else {
            bits_in.get_triple(bits, size).ok_or_else(damaged)?
        };
        let mut prev = [0, 1, 2].map(|k| (whole[k] as i64 + lo[k] as i64) as i32);
        i += 1;
        let mut is_smaller = 0;
        if bits_in.get(1).ok_or_else(damaged)? == 1 {
            run = bits_in.get(5).ok_or_else(damaged)? as i32;
            is_smaller = run % 3;
            run -= is_smaller;
            is_smaller -= 1;
        }
        if run > 0 {
            if i + (run as usize) / 3 > n {
                return Err("a run goes past the last atom".into());
            }
            for k in 0..(run as usize) / 3 {
                let d = bits_in
                    .get_triple(small.idx as u32, small.sizes())
                    .ok_or_else(damaged)?;
                let this =
                    [0, 1, 2].map(|j| (d[j] as i64 + prev[j] as i64 - small.half as i64) as i32);
                i += 1;
                push(out, this);
                if k == 0 {
                    // The writer put this atom after the whole one: swap them back.
                    push(out, prev);
                }
                prev = this;
            }
        } else {
            push(out, prev);
        }
        let next = small.idx as i32 + is_smaller;
        if !(FIRSTIDX as i32..LASTIDX as i32).contains(&next) {
            return Err(format!("corrupt small-difference index {next}"));
        }
        small.step(is_smaller);
    }
    Ok(())
}

/// Reads an XTC file (any unit cell is ignored).
pub fn read_xtc(path: &Path) -> Result<Xtc> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let mut r = Xdr { b: &bytes, at: 0 };
    let mut xtc = Xtc {
        n_atoms: 0,
        x: Vec::new(),
        time_ps: Vec::new(),
        step: Vec::new(),
    };
    let mut f = 0;
    while r.at < bytes.len() {
        let frame = |e: String| file_err(path, format!("frame {f}: {e}"));
        let magic = r.int().map_err(frame)?;
        if magic != MAGIC {
            return Err(frame(format!(
                "not an XTC frame (magic {magic}, expected {MAGIC})"
            )));
        }
        let n = r.int().map_err(frame)?;
        if n <= 0 || (f > 0 && n as usize != xtc.n_atoms) {
            return Err(frame(format!("{n} atoms")));
        }
        xtc.n_atoms = n as usize;
        xtc.step.push(r.int().map_err(frame)? as i64);
        xtc.time_ps.push(r.float().map_err(frame)? as f64);
        r.take(36).map_err(frame)?;
        if r.int().map_err(frame)? != n {
            return Err(frame("inconsistent atom counts".into()));
        }
        let n = n as usize;
        if n <= 9 {
            for _ in 0..3 * n {
                xtc.x.push(r.float().map_err(frame)? as f64);
            }
        } else {
            decompress(&mut r, n, &mut xtc.x).map_err(frame)?;
        }
        f += 1;
    }
    Ok(xtc)
}
