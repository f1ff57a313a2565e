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
