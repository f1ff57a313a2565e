"""The bgen Python package: energies against OpenMM's reference, forces against finite
differences, the PyTorch autograd bridge, clear exceptions, and every stage end to end."""

import json
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import bgen
import bgen.torch

ROOT = Path(__file__).resolve().parents[3]
REFERENCE = ROOT / "crates/bgen-system/tests/data/aldp/reference.json"


@pytest.fixture(scope="module")
def aldp():
    return bgen.System.named("aldp")


@pytest.fixture(scope="module")
def reference():
    return json.loads(REFERENCE.read_text())


def test_energies_and_forces_equal_openmm(aldp, reference):
    x = np.array(reference["positions"])
    ref = reference["setups"]["amber99sbildn_obc"]
    e, f = aldp.energy_and_forces(x)
    assert e.shape == (20,) and f.shape == (20, 22, 3)
    np.testing.assert_allclose(e, ref["energy_total"], rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(f, ref["forces_total"], rtol=1e-7, atol=1e-6)
    np.testing.assert_allclose(aldp.energy(x), e, rtol=0, atol=0)
    # One conformation gives a float, and the same number.
    assert isinstance(aldp.energy(x[3]), float) and aldp.energy(x[3]) == e[3]
    assert aldp.kt == pytest.approx(ref["kT_kJ_per_mol"], rel=1e-12)
    # The other setup of the same conformations.
    a14 = bgen.System.named("aldp", forcefield="amber14-obc1")
    ref14 = reference["setups"]["amber14_obc1"]
    np.testing.assert_allclose(a14.energy(x), ref14["energy_total"], rtol=1e-9, atol=1e-8)


def _bgen_binary() -> Path:
    """The command line built beside the package (cargo test or cargo build builds it)."""
    found = [ROOT / "target" / p / "bgen" for p in ("debug", "release")]
    found = [p for p in found if p.exists()]
    assert found, "build the command line first: cargo build -p bgen"
    return max(found, key=lambda p: p.stat().st_mtime)


def test_energies_equal_the_command_line_to_the_last_bit(aldp, tmp_path):
    rng = np.random.default_rng(3)
    x = aldp.positions[None] + 0.01 * rng.standard_normal((50, 22, 3))
    np.save(tmp_path / "x.npy", x)
    run = subprocess.run(
        [str(_bgen_binary()), "energy", "--system", "aldp", "--positions", str(tmp_path / "x.npy"),
         "--forces", str(tmp_path / "f.npy"), "--json"],
        capture_output=True, text=True, check=True,
    )
    cli = np.array([e["total"] for e in json.loads(run.stdout)["energies"]])
    e, f = aldp.energy_and_forces(x)
    assert np.array_equal(e, cli) and np.array_equal(aldp.energy(x), cli)
    assert np.array_equal(f, np.load(tmp_path / "f.npy"))


def test_forces_are_minus_the_gradient(aldp, reference):
    x = np.array(reference["positions"])[5]
    _, f = aldp.energy_and_forces(x)
    h = 1e-6
    for atom, axis in [(0, 0), (7, 1), (14, 2), (21, 0)]:
        p, m = x.copy(), x.copy()
        p[atom, axis] += h
        m[atom, axis] -= h
        fd = -(aldp.energy(p) - aldp.energy(m)) / (2 * h)
        assert fd == pytest.approx(f[atom, axis], rel=1e-5, abs=1e-4)


def test_from_pdb_matches_the_named_system(aldp, tmp_path):
    from_file = bgen.System.from_pdb(
        ROOT / "crates/bgen-system/data/systems/aldp.pdb", forcefield="amber99sbildn-obc2"
    )
    assert from_file.n_atoms == 22 and from_file.temperature == 300.0
    assert from_file.energy(aldp.positions) == aldp.energy(aldp.positions)
    assert from_file.atom_names == aldp.atom_names


def test_torch_energy_is_differentiable(aldp, reference):
    x = torch.tensor(np.array(reference["positions"])[:6], requires_grad=True)
    u = bgen.torch.energy(aldp, x)
    np.testing.assert_allclose(
        u.detach().numpy(), np.array(reference["setups"]["amber99sbildn_obc"]["energy_kT"])[:6],
        rtol=1e-9,
    )
    (u * torch.arange(1.0, 7.0, dtype=torch.float64)).sum().backward()
    _, f = aldp.energy_and_forces(x.detach().numpy())
    want = -f / aldp.kt * np.arange(1.0, 7.0)[:, None, None]
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-12, atol=1e-12)
    # Flat (n, 3 atoms) input, float32, and torch's own finite-difference check.
    xf = x.detach().reshape(6, 66).float()
    assert bgen.torch.energy(aldp, xf).dtype == torch.float32
    small = x.detach()[:2].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda y: bgen.torch.energy(aldp, y), (small,), eps=1e-6, atol=1e-4)


def test_bad_input_raises_clear_errors(aldp, tmp_path):
    with pytest.raises(ValueError, match=r"expected \(n, 22, 3\)"):
        aldp.energy(np.zeros((3, 21, 3)))
    x = np.repeat(aldp.positions[None], 3, axis=0)
    x[2, 4, 1] = np.nan
    with pytest.raises(ValueError, match="conformation 2 has a non-finite coordinate \\(atom 4\\)"):
        aldp.energy_and_forces(x)
    with pytest.raises(ValueError, match="unknown"):
        bgen.System.named("nope")
    with pytest.raises(ValueError):
        bgen.System.named("aldp", forcefield="charmm36")
    with pytest.raises(ValueError, match="temperature"):
        bgen.System.named("aldp", temperature=-1.0)
    bad = tmp_path / "bad.pdb"
    bad.write_text("ATOM      1  N   XYZ A   1       0.000   0.000   0.000  1.00  0.00           N\nEND\n")
    with pytest.raises(ValueError, match="bad.pdb"):
        bgen.System.from_pdb(bad)
    # Coinciding atoms have zero Boltzmann weight: +inf, never NaN.
    same = np.zeros((22, 3))
    assert aldp.energy(same) == float("inf")
    # A stage with a bad option or an unknown one: ValueError naming it, before any work.
    with pytest.raises(ValueError, match="ns = -1: must be a finite number > 0"):
        bgen.md(tmp_path / "md", ns=-1)
    with pytest.raises(ValueError, match="unknown field `nss`"):
        bgen.MdConfig(out=tmp_path / "md", nss=1)
    with pytest.raises(ValueError, match="method: unknown variant `mcmc`, expected one of `proposal`"):
        bgen.SampleConfig(out=tmp_path / "s", system="aldp", method="mcmc")
    with pytest.raises(ValueError, match="invalid type"):
        bgen.TrainConfig(data="d", out="o", steps="many")
    assert not (tmp_path / "md").exists()
    with pytest.raises(bgen.BgenError, match="missing: no such file"):
        bgen.evaluate(tmp_path / "missing", tmp_path / "missing.npy", tmp_path / "ev", system="aldp")


def test_energy_releases_the_gil(aldp):
    x = np.repeat(aldp.positions[None], 20000, axis=0)
    ticks = []
    done = threading.Event()

    def work():
        aldp.energy(x)
        done.set()

    t = threading.Thread(target=work)
    t.start()
    while not done.is_set():
        ticks.append(time.perf_counter())
        time.sleep(0.001)
    t.join()
    # The main thread kept running while the batch was evaluated.
    assert len(ticks) >= 3


def test_configs_are_the_typed_stage_settings(tmp_path):
    cfg = bgen.MdConfig(out=tmp_path / "md", system="aldp", ns=0.5)
    # Every default filled in by bgen: unset run settings stay None, the rest take the CLI's.
    assert cfg.ns == 0.5 and cfg.system == "aldp" and cfg.timestep_fs is None
    assert cfg.checkpoint_secs == 30.0 and cfg.resume is False
    assert cfg.replace(ns=1.0).ns == 1.0 and cfg.ns == 0.5
    assert cfg == bgen.MdConfig(**cfg.to_dict())
    with pytest.raises(AttributeError):
        cfg.ns = 2.0
    ladder = bgen.MdConfig(out="o", temperatures="300:600:3").temperatures
    assert len(ladder) == 3 and ladder[0] == 300.0 and abs(ladder[2] - 600.0) < 1e-9
    s = bgen.SampleConfig(out="o", system="aldp")
    assert (s.cess, s.steps, s.moves, s.tau, s.com) == (0.98, 300, 3, 1.0, "gaussian")
    # Training and sampling default to every core, as on the command line.
    assert bgen.TrainConfig(data="d", out="o").threads == s.threads >= 1
    assert bgen.EvalConfig(samples="s", reference="r", out="o").max_samples == 10000


def test_stages_end_to_end(tmp_path):
    md = bgen.md(tmp_path / "md", system="aldp", ns=0.02, save_every_ps=0.1, equilibrate_ps=1)
    assert md["frames"].shape == (200, 22, 3) and md["energies"].shape == (200,)
    assert md["complete"] and md["frame_count"] == 200 and md["mean_energy_kj_mol"] < 0
    assert np.isfinite(md["frames"]).all()
    sets = bgen.split(runs=tmp_path / "md", out=tmp_path / "data")
    assert (sets["train"], sets["val"], sets["test"]) == (160, 20, 20)
    run = bgen.train(tmp_path / "data" / "train", tmp_path / "run", preset="tiny", steps=5)
    assert run["steps"] == 5 and run["n_train"] == 160 and run["n_val"] == 20
    assert run["info"]["coords"] == "internal" and run["info"]["model"] == "tarflow"
    s = bgen.sample(bgen.SampleConfig(out=tmp_path / "snis", run=tmp_path / "run", method="snis", n=64))
    assert s["samples"].shape == (64, 22, 3)
    assert s["log_weights"].shape == (64,) and 0 < s["summary"]["ess"] <= 1
    m = bgen.evaluate(tmp_path / "snis", tmp_path / "md" / "frames.npy", tmp_path / "ev", system="aldp")
    assert "energy_w2" in json.dumps(m)
    assert abs(sum(m["details"]["proposal_basins"].values()) - 1) < 1e-9
    # The shipped weights of an embedded system.
    s = bgen.sample(tmp_path / "shipped", system="aldp", method="proposal", n=32)
    assert s["samples"].shape == (32, 22, 3) and "log_weights" not in s
    with pytest.raises(ValueError, match="give run"):
        bgen.sample(tmp_path / "x")


def test_build_and_many_peptide_md(tmp_path):
    kw = bgen.build("KW", tmp_path / "kw.pdb")
    assert kw["atoms"] == 49 and kw["rms_force"] <= 1.0
    assert kw["system"].n_atoms == 49 and kw["system"].forcefield == "amber14-obc1"
    assert abs(kw["system"].energy(kw["system"].positions) - kw["energy_kj_mol"]) < 1.0
    with pytest.raises(bgen.BgenError, match="'Z' at position 2"):
        bgen.build("KZ", tmp_path / "x.pdb")
    res = bgen.md(tmp_path / "md", sequences=["AA", "GP"], ns=0.002, save_every_ps=0.5, equilibrate_ps=0)
    assert [s["status"] for s in res["shards"]] == ["done", "done"]
    d = bgen.merge(run=tmp_path / "md", out=tmp_path / "data", held_out=["GP"])
    assert [e["name"] for e in d["train"]] == ["AA"] and d["held_out"][0]["frames"] == 4
    # A transferable model trained on AA samples GP zero-shot, with exact densities.
    run = bgen.train(tmp_path / "data", tmp_path / "tr", preset="tiny", steps=2)
    assert run["info"]["system"] == "transferable"
    gp = bgen.build("GP", tmp_path / "gp.pdb")["system"]
    model = bgen.Model.load(run=tmp_path / "tr", molecule=gp)
    assert model.seen_in_training is False and model.coords == "internal"
    s = model.sample(20, seed=1)
    assert s["samples"].shape == (20, gp.n_atoms, 3)
    np.testing.assert_allclose(model.log_q(s["samples"]), s["log_q"], rtol=1e-4, atol=1e-3)
    assert bgen.Model.load(system="aldp").seen_in_training is None


def test_a_loaded_model_samples_with_exact_densities():
    model = bgen.Model.load(system="aldp", threads=2)
    assert model.coords == "internal" and model.system.n_atoms == 22
    s = model.sample(300, seed=4)
    x = s["samples"]
    assert x.shape == (300, 22, 3)
    # Energies are the system's; log q of the samples, recomputed, is what sampling reported.
    np.testing.assert_allclose(s["energies"], model.system.energy(x), rtol=1e-9)
    np.testing.assert_allclose(model.log_q(x), s["log_q"], atol=2e-3)
    # Weights toward the target: -U + log|det J| - log q, finite, and a usable ESS.
    w = np.exp(s["log_weights"] - s["log_weights"].max())
    ess = w.sum() ** 2 / (w**2).sum() / len(w)
    assert np.isfinite(s["log_weights"]).all() and 0.01 < ess <= 1
    # Reproducible from the seed, whatever the threads.
    again = bgen.Model.load(system="aldp", threads=1).sample(300, seed=4)
    np.testing.assert_array_equal(again["samples"], x)
    with pytest.raises(ValueError, match="exactly one"):
        bgen.Model.load()
    with pytest.raises(ValueError, match="no shipped weights"):
        bgen.Model.load(system="chignolin")
    with pytest.raises(bgen.BgenError, match="not a training run"):
        bgen.Model.load(run="/nonexistent")


def test_the_shipped_dipeptide_model_is_zero_shot_on_held_out_dipeptides(tmp_path):
    # Lys-Trp was held out of the shipped transferable model's training, Ala-Ala was in it.
    kw = bgen.build("KW", tmp_path / "kw.pdb")["system"]
    model = bgen.Model.load(system="dipeptides", molecule=kw)
    assert model.seen_in_training is False and model.system.n_atoms == 49
    s = model.sample(16, seed=0)
    assert s["samples"].shape == (16, 49, 3) and np.isfinite(s["log_weights"]).all()
    np.testing.assert_allclose(model.log_q(s["samples"]), s["log_q"], rtol=1e-4, atol=1e-3)
    # Without a method, a transferable TarFlow's sampler is resample-move: 2.5 draws weighted per
    # sample kept, then HMC trajectories of 10 leapfrog steps.
    rm = bgen.sample(tmp_path / "kw-rm", system="dipeptides", pdb=str(tmp_path / "kw.pdb"), n=32, final_rounds=2)
    assert rm["summary"]["method"] == "resample-move" and rm["summary"]["model_evaluations"] == 80
    assert rm["samples"].shape == (32, 49, 3) and rm["summary"]["leapfrog"] == 10
    aa = bgen.build("AA", tmp_path / "aa.pdb")["system"]
    assert bgen.Model.load(system="dipeptides", molecule=aa).seen_in_training is True
    with pytest.raises(bgen.BgenError, match="--pdb"):
        bgen.Model.load(system="dipeptides")
