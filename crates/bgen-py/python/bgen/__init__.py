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

Stages (each writes a directory, resumes after a kill, and returns its typed result with the
arrays it wrote): ``md``, ``split``, ``train``, ``sample``, ``evaluate``. Their settings are
the same typed configs as the command line's and ``bgen run``'s (``MdConfig``, ``SplitConfig``,
``TrainConfig``, ``SampleConfig``, ``EvalConfig``): every key is a ``bgen`` option with
underscores (``save_every_ps=0.5``), checked by bgen when the config is made (an unknown key,
a wrong type or a bad value raises ValueError), with every default filled in.

>>> cfg = bgen.MdConfig(out="aldp-md", system="aldp", ns=1.0)
>>> cfg.timestep_fs                        # None: the run's default
>>> res = bgen.md(cfg)                     # or bgen.md("aldp-md", system="aldp", ns=1.0)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

# bgen links the libtorch of the torch wheel: loading torch first makes that the one in use.
import torch as _torch  # noqa: F401

import numpy as np

from ._bgen import BgenError, Model, System, __version__, run_stage, stage_config

__all__ = [
    "BgenError",
    "System",
    "Model",
    "BuildConfig",
    "MdConfig",
    "MergeConfig",
    "SplitConfig",
    "TrainConfig",
    "SampleConfig",
    "EvalConfig",
    "build",
    "md",
    "split",
    "merge",
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


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class _Config:
    """Typed settings of one stage, checked by bgen (the Rust types behind the command line)."""

    _stage = ""

    def __init__(self, **options: Any) -> None:
        text = json.dumps({k: _plain(v) for k, v in options.items() if v is not None})
        object.__setattr__(self, "_values", json.loads(stage_config(self._stage, text)))

    def __getattr__(self, name: str) -> Any:
        values = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        raise AttributeError(f"{type(self).__name__} has no setting '{name}'")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("configs are immutable; use .replace(**changes)")

    def replace(self, **changes: Any) -> "_Config":
        """A copy with ``changes``, checked again."""
        return type(self)(**{**self._values, **changes})

    def to_dict(self) -> Dict[str, Any]:
        """Every setting, defaults filled in (what ``bgen run`` would write in config.toml)."""
        return dict(self._values)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._values == other._values  # type: ignore

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self._values.items() if v not in (None, [], False))
        return f"{type(self).__name__}({shown})"


class BuildConfig(_Config):
    """Settings of ``bgen.build`` (``bgen build``): ``sequence`` (one-letter codes, e.g. "KW";
    HIS as HID), ``out`` (a PDB file), ``caps`` ("none": a zwitterion, or "ace-nme"),
    ``forcefield``, ``no_minimize``, ``minimize_tol`` kJ/mol/nm."""

    _stage = "build"


class MergeConfig(_Config):
    """Settings of ``bgen.merge`` (``bgen dataset merge``): ``run`` (a many-peptide MD
    directory), ``out``, ``held_out`` (sequences) or ``held_out_count`` with ``seed``."""

    _stage = "merge"


class MdConfig(_Config):
    """Settings of ``bgen.md`` (``bgen md``): ``out``; the system (``system`` or ``pdb``,
    ``forcefield``, ``temperature`` K); ``ns`` per replica, ``replicas``, ``seed``,
    ``friction`` 1/ps, ``timestep_fs``, ``save_every_ps``, ``equilibrate_ps``,
    ``minimize_tol`` kJ/mol/nm, ``temperatures`` (replica exchange: a list in K or
    "LOW:HIGH:COUNT"), ``exchange_every_ps``, ``precision`` ("double", "mixed" or
    "reference"), ``resume``, ``checkpoint_secs``, ``threads``.
    Unset ones take the run's defaults."""

    _stage = "md"


class SplitConfig(_Config):
    """Settings of ``bgen.split`` (``bgen dataset split``): ``runs`` (run directories, .npy or
    .xtc), ``out``, ``by`` ("time" or "replica"), ``fractions`` [train, val, test], ``gap``
    frames."""

    _stage = "split"


class TrainConfig(_Config):
    """Settings of ``bgen.train`` (``bgen train``): ``data``, ``out``, ``model`` ("tarflow" or
    "arbg"), ``preset``, ``coords`` ("internal", the default, or "cartesian"), ``steps``,
    ``batch_size``, ``lr``, ``seed``, ``extra_data``, ``bins``/``range`` (ArBG),
    ``per_coordinate``, ``device``, ``threads``, ``resume``, ``checkpoint_secs``, ``system``."""

    _stage = "train"


class SampleConfig(_Config):
    """Settings of ``bgen.sample`` (``bgen sample``): ``out``; ``run`` (a training run) or
    ``system`` (shipped weights); ``method`` ("proposal", "snis", "smc", "resample-move",
    "twisted"), ``n``,
    ``seed``, ``tau``, ``com``, ``blocks``; SNIS ``drop_top``, ``no_truncate``,
    ``energy_cutoff``; SMC ``steps``, ``moves``, ``step_size``, ``ula``, ``cess``,
    ``independence``, ``final_rounds``, ``ess_threshold``; ``threads``, ``batch``,
    ``no_ema``, ``device``."""

    _stage = "sample"


class EvalConfig(_Config):
    """Settings of ``bgen.evaluate`` (``bgen eval``): ``samples``, ``reference``, ``out``, the
    system (``system`` or ``pdb``, ``forcefield``, ``temperature``), ``log_weights``,
    ``max_samples``, ``tica_lag``, ``model`` (a run: held-out NLL), ``compare``."""

    _stage = "evaluate"


def _run(kind: type, config: Optional[_Config], options: Dict[str, Any]) -> Tuple[Any, Dict[str, Any]]:
    if config is None:
        config = kind(**options)
    elif options:
        config = config.replace(**options)
    if not isinstance(config, kind):
        raise TypeError(f"expected a {kind.__name__}, got {type(config).__name__}")
    return config, json.loads(run_stage(config._stage, json.dumps(config.to_dict())))


def _arrays(directory: Path, names: Sequence[str]) -> Dict[str, np.ndarray]:
    out = {}
    for name in names:
        path = directory / f"{name}.npy"
        if path.exists():
            out[name] = np.load(path)
    return out


def _json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def md(out: Optional[PathLike] = None, config: Optional[MdConfig] = None, **options: Any) -> Dict[str, Any]:
    """Langevin MD (or temperature replica exchange with ``temperatures``, e.g. "300:450:4"
    or [300, 350, 400]) of an embedded ``system`` (default aldp) or a ``pdb``, ``ns``
    nanoseconds per replica, into ``out``. Settings: an ``MdConfig`` or its keywords.

    Returns the stage's result (``complete``, ``frames``, ``mean_energy_kj_mol``,
    ``exchange``) with the arrays written: ``frames`` (n, atoms, 3) nm, ``energies`` kJ/mol,
    ``time_ps``, ``replica`` and ``kinetic``, and ``info`` (run.json).
    """
    if isinstance(out, _Config):
        config, out = out, None
    if out is not None:
        options["out"] = out
    many = any(k in options for k in ("sequences", "sequences_file", "pdbs"))
    if config is None and not many and "system" not in options and "pdb" not in options:
        options["system"] = "aldp"
    _, res = _run(MdConfig, config, options)
    if res.get("shards") is not None:
        return res
    d = Path(res["out"])
    arrays = _arrays(d, ["frames", "energies", "time_ps", "replica", "kinetic"])
    res["frame_count"] = res.pop("frames")
    res.update(arrays)
    res["info"] = _json(d / "run.json")
    return res


def build(sequence: Optional[str] = None, out: Optional[PathLike] = None,
          config: Optional[BuildConfig] = None, **options: Any) -> Dict[str, Any]:
    """Builds a peptide from its one-letter ``sequence`` (ideal geometry from the force field,
    L chirality, minimised) into the PDB ``out``. Returns the stage's result (``atoms``,
    ``energy_kj_mol``, ``rms_force``) and ``system``, the built ``bgen.System``."""
    if isinstance(sequence, _Config):
        config, sequence = sequence, None
    if sequence is not None:
        options["sequence"] = sequence
    if out is not None:
        options["out"] = out
    cfg, res = _run(BuildConfig, config, options)
    res["system"] = System.from_pdb(str(cfg.out), forcefield=cfg.forcefield)
    return res


def merge(config: Optional[MergeConfig] = None, **options: Any) -> Dict[str, Any]:
    """Checks the shards of a many-peptide MD run (``bgen.md(sequences=[...])``) and splits them
    by sequence into ``train`` and ``held_out`` (written to ``out``/dataset.json)."""
    return _run(MergeConfig, config, options)[1]


def split(config: Optional[SplitConfig] = None, **options: Any) -> Dict[str, Any]:
    """Splits MD runs into train/, val/ and test/ (consecutive time blocks of each replica by
    default) under ``out``. Returns the frames in each set."""
    if isinstance(options.get("runs"), (str, Path)):
        options["runs"] = [options["runs"]]
    return _run(SplitConfig, config, options)[1]


def train(
    data: Optional[PathLike] = None,
    out: Optional[PathLike] = None,
    config: Optional[TrainConfig] = None,
    **options: Any,
) -> Dict[str, Any]:
    """Trains a proposal (``model`` "tarflow" or "arbg", ``coords`` "internal" or
    "cartesian") by maximum likelihood on MD frames ``data`` (a directory or a .npy of
    (n, atoms, 3) nm) into ``out``. Settings: a ``TrainConfig`` or its keywords.

    Returns the stage's result (``steps``, ``n_train``, ``n_val``, ``val_nll`` per dimension)
    with ``info``, the run's record (run.json); ``Model.load(run=out)`` samples it.
    """
    if isinstance(data, _Config):
        config, data = data, None
    if data is not None:
        options["data"] = data
    if out is not None:
        options["out"] = out
    _, res = _run(TrainConfig, config, options)
    res["info"] = _json(Path(res["out"]) / "run.json")
    return res


def sample(out: Optional[PathLike] = None, config: Optional[SampleConfig] = None, **options: Any) -> Dict[str, Any]:
    """Samples a trained model (``run``, or the weights shipped for ``system``) with
    ``method``: "proposal", "snis", "smc" (TarFlow), "resample-move" or "twisted" (ArBG); the
    default is SMC for a TarFlow trained on this molecule, resample-move for a transferable
    TarFlow's zero-shot, and twisted SMC for an ArBG. Settings: a ``SampleConfig`` or its
    keywords.

    Returns ``samples`` (n, atoms, 3) nm, ``energies`` (kJ/mol), ``log_weights`` (SNIS),
    ``log_q`` and ``summary`` (the stage's result: ESS, log Z, diagnostics).
    """
    if isinstance(out, _Config):
        config, out = out, None
    if out is not None:
        options["out"] = out
    cfg, summary = _run(SampleConfig, config, options)
    res: Dict[str, Any] = _arrays(Path(cfg.out), ["samples", "energies", "log_weights", "log_q"])
    res["summary"] = summary
    return res


def evaluate(
    samples: Optional[PathLike] = None,
    reference: Optional[PathLike] = None,
    out: Optional[PathLike] = None,
    config: Optional[EvalConfig] = None,
    **options: Any,
) -> Dict[str, Any]:
    """Metrics of ``samples`` (a ``bgen sample`` directory or a .npy) against ``reference``
    MD (a (frames, atoms, 3) .npy in time order, or a run directory): ESS, energy W2 (kT),
    torus W2 of the backbone dihedrals, TICA W2, basin populations; plots and report.html in
    ``out``. Settings: an ``EvalConfig`` or its keywords. Returns the metrics (metrics.json).
    """
    if isinstance(samples, _Config):
        config, samples = samples, None
    for key, value in (("samples", samples), ("reference", reference), ("out", out)):
        if value is not None:
            options[key] = value
    return _run(EvalConfig, config, options)[1]
