"""bgen: Boltzmann generators for molecules.

The AMBER force field with GBSA-OBC implicit solvent, exact to OpenMM and batched; MD data;
TarFlow and ArBG proposals trained by maximum likelihood; SNIS, SMC and twisted SMC toward
exp(-U/kT); metrics against reference MD. The same library as the ``bgen`` command line.

Units: positions nm, energies kJ/mol (``System.energy``, every ``energies`` array), kT for
reduced energies and log weights (``bgen.torch``, ``Model.sample``'s ``log_weights``),
forces kJ/mol/nm, temperatures K, times ps.

>>> import bgen
>>> aldp = bgen.System.named("aldp")
>>> aldp.energy(aldp.positions)            # kJ/mol
>>> e, f = aldp.energy_and_forces(x)       # x: (n, 22, 3) nm
>>> model = bgen.Model.load(system="aldp")  # shipped weights, or run="a bgen train directory"
>>> s = model.sample(1000, seed=0)         # samples (nm), log_q, energies (kJ/mol), log_weights

Stages (each writes a directory, resumes after a kill, and returns what it wrote as NumPy
arrays): ``md``, ``train``, ``sample``, ``evaluate``. Options beyond the named parameters are
passed by keyword with underscores for dashes (``save_every_ps=0.5``); ``True`` turns a flag on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

# bgen links the libtorch of the torch wheel: loading torch first makes that the one in use.
import torch as _torch  # noqa: F401

import numpy as np

from ._bgen import BgenError, Model, System, __version__, run_cli

__all__ = [
    "BgenError",
    "System",
    "Model",
    "run_cli",
    "md",
    "train",
    "sample",
    "evaluate",
    "systems",
    "__version__",
]

PathLike = Union[str, Path]


def systems() -> list:
    """Names of the embedded systems."""
    return ["aldp", "ala3", "ala4", "ala6", "chignolin"]


def _flags(options: Dict[str, Any]) -> list:
    args = []
    for key, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif isinstance(value, (list, tuple)):
            args += [flag, ",".join(str(v) for v in value)]
        else:
            args += [flag, str(value)]
    return args


def _arrays(directory: Path, names: Sequence[str]) -> Dict[str, np.ndarray]:
    out = {}
    for name in names:
        path = directory / f"{name}.npy"
        if path.exists():
            out[name] = np.load(path)
    return out


def _json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def md(
    out: PathLike,
    system: Optional[str] = "aldp",
    pdb: Optional[PathLike] = None,
    ns: Optional[float] = None,
    temperatures: Optional[Union[str, Sequence[float]]] = None,
    seed: int = 0,
    resume: bool = False,
    **options: Any,
) -> Dict[str, Any]:
    """Langevin MD (or temperature replica exchange with ``temperatures``, e.g. "300:450:4"
    or [300, 350, 400]) of an embedded ``system`` or a ``pdb``, ``ns`` nanoseconds per
    replica, into ``out``.

    Returns the arrays written: ``frames`` (n, atoms, 3) nm, ``energies`` kJ/mol,
    ``time_ps``, ``replica`` and ``kinetic``, and ``info`` (run.json).
    """
    args = ["md", "--out", str(out), "--seed", str(seed)]
    args += ["--pdb", str(pdb)] if pdb is not None else ["--system", system]
    if ns is not None:
        args += ["--ns", str(ns)]
    if temperatures is not None:
        if not isinstance(temperatures, str):
            temperatures = ",".join(str(t) for t in temperatures)
        args += ["--temperatures", temperatures]
    if resume:
        args.append("--resume")
    run_cli(args + _flags(options))
    out = Path(out)
    res: Dict[str, Any] = _arrays(out, ["frames", "energies", "time_ps", "replica", "kinetic"])
    res["info"] = _json(out / "run.json")
    return res


def train(
    data: PathLike,
    out: PathLike,
    model: str = "tarflow",
    preset: str = "small",
    coords: str = "internal",
    steps: Optional[int] = None,
    seed: int = 0,
    resume: bool = False,
    **options: Any,
) -> Dict[str, Any]:
    """Trains a proposal (``model`` "tarflow" or "arbg", ``coords`` "internal" or
    "cartesian") by maximum likelihood on MD frames ``data`` (a directory or a .npy of
    (n, atoms, 3) nm) into ``out``. Returns the run's record (run.json: model, preset,
    system, force field, temperature, coordinates, frames); ``Model.load(run=out)`` samples it.
    """
    args = ["train", "--data", str(data), "--out", str(out), "--model", model]
    args += ["--preset", preset, "--coords", coords, "--seed", str(seed)]
    if steps is not None:
        args += ["--steps", str(steps)]
    if resume:
        args.append("--resume")
    run_cli(args + _flags(options))
    return _json(Path(out) / "run.json")


def sample(
    out: PathLike,
    run: Optional[PathLike] = None,
    system: Optional[str] = None,
    method: Optional[str] = None,
    n: Optional[int] = None,
    seed: int = 0,
    **options: Any,
) -> Dict[str, Any]:
    """Samples a trained model (``run``, or the weights shipped for ``system``) with
    ``method``: "proposal", "snis", "smc" (TarFlow) or "twisted" (ArBG); the default is SMC
    for a TarFlow and twisted SMC for an ArBG.

    Returns ``samples`` (n, atoms, 3) nm, ``energies`` (kJ/mol), ``log_weights`` (SNIS) and
    ``summary`` (ESS, log Z, diagnostics).
    """
    if (run is None) == (system is None):
        raise ValueError("pass exactly one of run= (a training run) or system= (shipped weights)")
    args = ["sample", "--out", str(out), "--seed", str(seed)]
    args += ["--run", str(run)] if run is not None else ["--system", system]
    if method is not None:
        args += ["--method", method]
    if n is not None:
        args += ["--n", str(n)]
    run_cli(args + _flags(options))
    out = Path(out)
    res: Dict[str, Any] = _arrays(out, ["samples", "energies", "log_weights", "log_q"])
    res["summary"] = _json(out / "summary.json")
    return res


def evaluate(
    samples: PathLike,
    reference: PathLike,
    out: PathLike,
    system: Optional[str] = None,
    **options: Any,
) -> Dict[str, Any]:
    """Metrics of ``samples`` (a ``bgen sample`` directory or a .npy) against ``reference``
    MD (a (frames, atoms, 3) .npy in time order, or a run directory): ESS, energy W2 (kT),
    torus W2 of the backbone dihedrals, TICA W2, basin populations; plots and report.html in
    ``out``. Returns metrics.json.
    """
    args = ["eval", "--samples", str(samples), "--reference", str(reference), "--out", str(out)]
    if system is not None:
        args += ["--system", system]
    run_cli(args + _flags(options))
    return _json(Path(out) / "metrics.json")
