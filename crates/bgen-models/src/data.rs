//! Training data for the flows: frames in nm, centred per frame and divided by one scalar
//! standard deviation; augmentation by a uniform random rotation and centre-of-mass noise
//! N(0, I/N) in normalised units (the "soft equivariance" of the SBG paper).

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// The map between nm and the model's normalised coordinates: x_model = x_nm / std.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalizer {
    pub n_atoms: i64,
    /// Scalar standard deviation of the centred training coordinates, nm.
    pub std: f64,
}

impl Normalizer {
    /// Fits the scalar std on frames (n x atoms x 3, nm), each centred on its mean position.
    pub fn fit(frames: &[f64], n_atoms: usize) -> Normalizer {
        let d = 3 * n_atoms;
        let mut s2 = 0.0;
        for f in frames.chunks(d) {
            let c = centre(f, n_atoms);
            for a in 0..n_atoms {
                for k in 0..3 {
                    s2 += (f[3 * a + k] - c[k]).powi(2);
                }
            }
        }
        Normalizer {
            n_atoms: n_atoms as i64,
            std: (s2 / frames.len() as f64).sqrt(),
        }
    }

    /// Coordinates per sample, 3N.
    pub fn dim(&self) -> usize {
        3 * self.n_atoms as usize
    }

    /// log |d x_model / d x_nm| = -3N ln std: add to log q_model to get log q in 1/nm^3N.
    pub fn log_jacobian(&self) -> f64 {
        self.log_jacobian_of(self.dim())
    }

    /// log |d x_model / d x_nm| of `coords` coordinates, -coords ln std.
    pub fn log_jacobian_of(&self, coords: usize) -> f64 {
        -(coords as f64) * self.std.ln()
    }

    /// Coordinates in nm to model units (x / std; no centring: the proposals' densities are
    /// on the coordinates as they are).
    pub fn to_units(&self, x: &[f64]) -> Vec<f64> {
        x.iter().map(|v| v / self.std).collect()
    }

    /// Model units to nm, in place (y std).
    pub fn from_units(&self, y: &mut [f64]) {
        y.iter_mut().for_each(|v| *v *= self.std);
    }

    /// A gradient with respect to model units to one with respect to nm, in place (g / std).
    pub fn grad_to_nm(&self, g: &mut [f64]) {
        g.iter_mut().for_each(|v| *v /= self.std);
    }

    /// An NLL per dimension in normalised units converted to nm units.
    pub fn nll_in_nm(&self, nll: f64) -> f64 {
        nll - self.log_jacobian() / self.dim() as f64
    }

    /// Centred, normalised frames as a (n, 3N) tensor of `kind`.
    pub fn to_model(&self, frames: &[f64], kind: Kind) -> Tensor {
        let n = self.n_atoms as usize;
        let mut out = Vec::with_capacity(frames.len());
        for f in frames.chunks(3 * n) {
            let c = centre(f, n);
            out.extend((0..3 * n).map(|q| (f[q] - c[q % 3]) / self.std));
        }
        Tensor::from_slice(&out)
            .view([-1, 3 * self.n_atoms])
            .to_kind(kind)
    }
}

/// Mean position of a frame (nm).
pub fn centre(f: &[f64], n_atoms: usize) -> [f64; 3] {
    let mut c = [0.0; 3];
    for a in 0..n_atoms {
        for k in 0..3 {
            c[k] += f[3 * a + k] / n_atoms as f64;
        }
    }
    c
}

/// A seeded stream of uniform numbers in the open interval (0, 1) (splitmix64).
fn uniform_stream(seed: u64) -> impl FnMut() -> f64 {
    let mut s = seed ^ 0x6A09_E667_F3BC_C909;
    move || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64 + 0.5 / (1u64 << 53) as f64
    }
}

/// `n` uniform numbers in (0, 1) from a seeded stream.
pub fn uniforms(n: usize, seed: u64) -> Vec<f64> {
    let mut u = uniform_stream(seed);
    (0..n).map(|_| u()).collect()
}

/// `n` standard normal numbers from a seeded stream (independent of libtorch's global generator,
/// so that training is reproducible whatever else runs).
pub fn normals(n: usize, seed: u64) -> Vec<f64> {
    let mut u = uniform_stream(seed);
    (0..n)
        .map(|_| (-2.0 * u().ln()).sqrt() * (std::f64::consts::TAU * u()).cos())
        .collect()
}

/// Uniform random rotations (batch, 3, 3) from normalised Gaussian quaternions.
pub fn random_rotations(n: i64, kind: Kind, device: Device, seed: u64) -> Tensor {
    let q = Tensor::from_slice(&normals(4 * n as usize, seed))
        .view([n, 4])
        .to_kind(kind)
        .to_device(device);
    let q = &q / q.norm_scalaropt_dim(2, [1].as_slice(), true);
    let (w, x, y, z) = (
        q.select(1, 0),
        q.select(1, 1),
        q.select(1, 2),
        q.select(1, 3),
    );
    let r = Tensor::stack(
        &[
            1 - 2 * (&y * &y + &z * &z),
            2 * (&x * &y - &z * &w),
            2 * (&x * &z + &y * &w),
            2 * (&x * &y + &z * &w),
            1 - 2 * (&x * &x + &z * &z),
            2 * (&y * &z - &x * &w),
            2 * (&x * &z - &y * &w),
            2 * (&y * &z + &x * &w),
            1 - 2 * (&x * &x + &y * &y),
        ],
        1,
    );
    r.view([n, 3, 3])
}

/// Augments a batch of centred normalised samples (batch, 3N): random rotation, then the same
/// N(0, I/N) shift added to every atom of a sample; reproducible from `seed`.
pub fn augment(x: &Tensor, n_atoms: i64, seed: u64) -> Tensor {
    let b = x.size()[0];
    let pts = x.view([b, n_atoms, 3]);
    let r = random_rotations(b, x.kind(), x.device(), seed);
    let rotated = pts.matmul(&r.transpose(1, 2));
    let shift = Tensor::from_slice(&normals(3 * b as usize, seed ^ 0xC0FF_EE00))
        .view([b, 1, 3])
        .to_kind(x.kind())
        .to_device(x.device())
        / (n_atoms as f64).sqrt();
    (rotated + shift).view([b, 3 * n_atoms])
}
