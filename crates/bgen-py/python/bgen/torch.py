"""bgen's target inside PyTorch: ``energy(system, x)`` is U(x)/kT with its gradient from bgen's
forces, as a ``torch.autograd.Function``, so that a PyTorch model can be trained on (e.g. by
reverse KL) or corrected by the exact AMBER + GBSA-OBC energy.

>>> import bgen, bgen.torch
>>> aldp = bgen.System.named("aldp")
>>> x = torch.tensor(frames, requires_grad=True)     # (n, 22, 3) nm
>>> u = bgen.torch.energy(aldp, x)                   # (n,) kT
>>> u.sum().backward()                               # x.grad: dU/dx in kT/nm

The energy is evaluated in float64 on the CPU (threads over the batch, without the GIL); the
result and the gradient come back in x's dtype and device.
"""

from __future__ import annotations

import torch

from ._bgen import System

__all__ = ["energy"]


class _ReducedEnergy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, system: System) -> torch.Tensor:
        flat = x.detach().to(device="cpu", dtype=torch.float64).reshape(x.shape[0], -1, 3)
        u, g = system.reduced_energy_and_grad(flat.numpy())
        ctx.save_for_backward(torch.from_numpy(g).to(device=x.device, dtype=x.dtype).reshape(x.shape))
        return torch.from_numpy(u).to(device=x.device, dtype=x.dtype)

    @staticmethod
    def backward(ctx, grad_u: torch.Tensor):
        (g,) = ctx.saved_tensors
        shape = (-1,) + (1,) * (g.dim() - 1)
        return grad_u.reshape(shape) * g, None


def energy(system: System, x: torch.Tensor) -> torch.Tensor:
    """Reduced energies U/kT, shape (n,), of conformations ``x``: (n, atoms, 3) or
    (n, 3 atoms) in nm. Differentiable: the gradient is dU/dx in kT/nm. Coinciding atoms give
    +inf (zero gradient); non-finite coordinates raise ValueError.
    """
    if x.dim() not in (2, 3):
        raise ValueError(f"x of shape {tuple(x.shape)}: expected (n, atoms, 3) or (n, 3 atoms)")
    return _ReducedEnergy.apply(x, system)
