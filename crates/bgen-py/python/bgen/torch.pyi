import torch

from ._bgen import System

def energy(system: System, x: torch.Tensor) -> torch.Tensor:
    """U/kT (n,) of x, (n, atoms, 3) or (n, 3 atoms) nm; differentiable (dU/dx in kT/nm)."""
