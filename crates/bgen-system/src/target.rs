//! The seam between physics and ML: a target density exp(-U(x)) known through its energy and
//! gradient in kT on a batch. Samplers and models see only this trait.

/// An unnormalised target density exp(-U(x)) on R^dim.
pub trait Target: Sync {
    /// Number of coordinates per sample (3 x atoms for a molecule).
    fn dim(&self) -> usize;

    /// Energies U (kT) of the batch `x` (n x dim, row-major) into `energy` (n), and when `grad`
    /// is given, dU/dx (kT per coordinate unit, nm for molecules) into it (n x dim).
    /// A sample with non-finite coordinates gets energy +inf and a zero gradient.
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
