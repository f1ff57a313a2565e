"""Type stubs of the compiled half of the bgen package. Units: nm, kJ/mol, kJ/mol/nm, K, kT."""

from os import PathLike
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

class BgenError(RuntimeError):
    """A bgen stage failed; the message names the file and the problem."""

class System:
    """A molecule with the AMBER force field and GBSA-OBC implicit solvent at a temperature."""

    @staticmethod
    def from_pdb(
        path: Union[str, PathLike], forcefield: str = "amber14-obc1", temperature: Optional[float] = None
    ) -> "System":
        """A system from a PDB with hydrogens; forcefield "amber14-obc1" or
        "amber99sbildn-obc2"; temperature K (default: the force field's). ValueError on a
        file that cannot be read or a residue without a template."""
    @staticmethod
    def named(name: str, forcefield: Optional[str] = None, temperature: Optional[float] = None) -> "System":
        """An embedded system: aldp, ala3, ala4, ala6, chignolin."""
    @property
    def name(self) -> str: ...
    @property
    def n_atoms(self) -> int: ...
    @property
    def temperature(self) -> float:
        """K."""
    @property
    def kt(self) -> float:
        """kT, kJ/mol."""
    @property
    def forcefield(self) -> str: ...
    @property
    def positions(self) -> npt.NDArray[np.float64]:
        """The input structure, (atoms, 3) nm."""
    @property
    def atom_names(self) -> List[str]: ...
    def energy(self, x: npt.ArrayLike) -> Union[float, npt.NDArray[np.float64]]:
        """Potential energies, kJ/mol: (n,) for x of shape (n, atoms, 3) nm, a float for one
        (atoms, 3). Batched over threads without the GIL; coinciding atoms give +inf;
        non-finite coordinates or a wrong shape raise ValueError."""
    def energy_and_forces(
        self, x: npt.ArrayLike
    ) -> Tuple[Union[float, npt.NDArray[np.float64]], npt.NDArray[np.float64]]:
        """Energies (kJ/mol) and forces (kJ/mol/nm, x's shape)."""
    def reduced_energy_and_grad(
        self, x: npt.ArrayLike
    ) -> Tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """U/kT (n,) and dU/dx (kT/nm, x's shape)."""

class Model:
    """A trained proposal (TarFlow or ArBG, Cartesian or internal coordinates)."""

    @staticmethod
    def load(
        run: Optional[Union[str, PathLike]] = None,
        system: Optional[str] = None,
        tau: float = 1.0,
        threads: int = 1,
        molecule: Optional[System] = None,
    ) -> "Model":
        """A `bgen train` run directory, or the weights shipped for an embedded system; a
        transferable run samples ``molecule``, zero-shot if it never saw it."""
    @property
    def system(self) -> System: ...
    @property
    def seen_in_training(self) -> Optional[bool]:
        """A transferable model: whether it was trained on this molecule; else None."""
    @property
    def coords(self) -> str:
        """"internal" or "cartesian"."""
    def sample(self, n: int, seed: int = 0) -> Dict[str, npt.NDArray[np.float64]]:
        """samples (n, atoms, 3) nm, log_q (model coordinates), energies kJ/mol, log_weights
        (unnormalised log importance weights toward exp(-U/kT))."""
    def log_q(self, x: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """log q of conformations (n, atoms, 3) nm, in the model's coordinates."""

def stage_config(stage: str, json: str) -> str:
    """The typed settings of ``stage`` ("build", "md", "split", "merge", "train", "sample",
    "evaluate") from
    keywords as a JSON object, checked, every default filled in (JSON). ValueError names an
    unknown key, a wrong type or a bad value."""

def run_stage(stage: str, json: str) -> str:
    """Runs ``stage`` with the settings of a JSON object in this process without the GIL and
    returns its typed result as JSON. ValueError on bad settings, BgenError when it fails."""
