//! The seams between the stages, in one place where every stage can see them: a target density
//! exp(-U(x)) known through its energy and gradient in kT on a batch ([`Target`], and on partial
//! molecules [`PartialTarget`]); a normalised proposal density q(x) that can be sampled, with log
//! q and its gradient ([`Proposal`]); and a proposal that generates samples a block at a time
//! ([`Autoregressive`]). Physics implements the first two, models the last two, samplers use
//! them all; none of them names a force field or a network.

/// An unnormalised target density exp(-U(x)) on R^dim.
pub trait Target: Sync {
    /// Number of coordinates per sample (3 x atoms for a molecule).
    fn dim(&self) -> usize;

    /// Energies U (kT) of the batch `x` (n x dim, row-major) into `energy` (n), and when `grad`
    /// is given, dU/dx (kT per coordinate unit, nm for molecules) into it (n x dim).
    /// A sample with non-finite coordinates gets energy +inf and a zero gradient; so does one
    /// whose gradient is not finite, when the gradient is asked for.
    fn energy_and_grad(&self, x: &[f64], energy: &mut [f64], grad: Option<&mut [f64]>);
}

impl<T: Target + ?Sized> Target for &T {
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn energy_and_grad(&self, x: &[f64], energy: &mut [f64], grad: Option<&mut [f64]>) {
        (**self).energy_and_grad(x, energy, grad)
    }
}

/// A target whose energy is also defined on partial samples: the first `placed` coordinates
/// (for a molecule, the first atoms in topology order). Twisted SMC weights particles by the
/// change of partial energy as it builds them; the partial energy of a whole sample is its
/// energy and that of an empty one is zero.
pub trait PartialTarget: Target {
    /// Partial energies (kT) of a batch `x` (n x placed) into `energy` (n); non-finite
    /// coordinates give +inf.
    fn partial_energy(&self, x: &[f64], placed: usize, energy: &mut [f64]);
}

/// A normalised proposal density q on R^dim.
pub trait Proposal: Sync {
    /// Coordinates per sample.
    fn dim(&self) -> usize;
    /// Draws `n` samples (n x dim) and their log q, reproducibly from `seed`.
    fn sample(&self, n: usize, seed: u64) -> (Vec<f64>, Vec<f64>);
    /// log q of a batch (n x dim) into `log_q` (n) and, when given, d log q / dx into `grad`.
    fn log_q(&self, x: &[f64], log_q: &mut [f64], grad: Option<&mut [f64]>);
    /// Typical spread of each coordinate (its units), when they differ: samplers scale their
    /// moves by it (a diagonal preconditioner). None: one scale for all.
    fn scale(&self) -> Option<Vec<f64>> {
        None
    }
}

impl<P: Proposal + ?Sized> Proposal for &P {
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn sample(&self, n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        (**self).sample(n, seed)
    }
    fn log_q(&self, x: &[f64], log_q: &mut [f64], grad: Option<&mut [f64]>) {
        (**self).log_q(x, log_q, grad)
    }
    fn scale(&self) -> Option<Vec<f64>> {
        (**self).scale()
    }
}

/// A proposal that generates samples a block of coordinates at a time.
pub trait Autoregressive {
    /// The particles being generated (e.g. the Transformer's KV caches).
    type State;
    /// Coordinates per sample.
    fn dim(&self) -> usize;
    /// Starts `n` empty particles; `seed` makes the generation reproducible.
    fn start(&self, n: usize, seed: u64) -> Self::State;
    /// Appends coordinates [from, to) to every particle: writes them into `x` (n x (to - from))
    /// and log q of the block given the earlier coordinates into `log_q` (n).
    fn extend(&self, s: &mut Self::State, from: usize, to: usize, x: &mut [f64], log_q: &mut [f64]);
    /// Keeps particles `idx`, in that order (duplicates allowed: resampling). Particles at
    /// different positions must continue with different random numbers.
    fn select(&self, s: &mut Self::State, idx: &[usize]);
}
