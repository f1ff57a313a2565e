"""Makes the XTC reference files of tests/xtc.rs with mdtraj 1.11.1 (GROMACS' xdrfile code):
NAME.npy holds the coordinates (frames, atoms, 3; nm, float32 values stored as float64) and
NAME.mdtraj.xtc mdtraj's XTC of them (precision 1000, step = frame, time = frame ps, zero box).
Cases: 20 frames of alanine dipeptide MD (whole atoms and runs), 12 water-like O-H-H molecules
(the run swap), coordinates spanning over 2^24 / 1000 nm (large-range packing), 5 atoms
(uncompressed) and a mix of far-apart and close atoms (run lengths and index changes)."""
import numpy as np
from mdtraj.formats import XTCTrajectoryFile

rng = np.random.default_rng(0)
aldp = np.load("aldp_test_frames.npy")[:20].astype(np.float32)  # bgen md test split, 22 atoms
o = rng.uniform(0, 2, (12, 3))
w = np.concatenate([o[:, None, :], o[:, None, :] + rng.normal(0, 0.06, (12, 2, 3))], 1).reshape(1, 36, 3)
water = np.concatenate([w + rng.normal(0, 0.01, w.shape) for _ in range(5)]).astype(np.float32)
big = (rng.normal(0, 1, (3, 15, 3)) * np.array([20000, 1, 1])).astype(np.float32)
tiny = rng.normal(0, 1, (4, 5, 3)).astype(np.float32)
mixed = np.concatenate([rng.normal(0, 5, (2, 40, 3)), rng.normal(0, 0.001, (2, 40, 3)).cumsum(1)]).astype(np.float32)
for name, x in [("aldp", aldp), ("water", water), ("big", big), ("tiny", tiny), ("mixed", mixed)]:
    np.save(f"{name}.npy", x.astype(np.float64))
    n = x.shape[0]
    with XTCTrajectoryFile(f"{name}.mdtraj.xtc", "w") as f:
        f.write(x, time=np.arange(n, dtype=np.float32), step=np.arange(n, dtype=np.int32),
                box=np.zeros((n, 3, 3), np.float32))
