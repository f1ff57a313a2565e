//! `bgen._bgen`: the compiled half of the `bgen` Python package. A `System` (topology,
//! force field, temperature) with batched, multi-threaded energies and forces on NumPy arrays
//! that run without the GIL, and the stages (`bgen.md`, `bgen.split`, `bgen.train`,
//! `bgen.sample`, `bgen.evaluate`) on the same typed settings as the command line and `bgen run`
//! (deserialised from Python's keywords, checked, run in this process, typed results back).
//!
//! Units: positions nm, energies kJ/mol and forces kJ/mol/nm; reduced energies in kT and their
//! gradients in kT/nm.

use bgen_system::{Setup, Target};
use numpy::{PyArray1, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use std::path::PathBuf;

create_exception!(
    _bgen,
    BgenError,
    PyRuntimeError,
    "A bgen stage failed (a file that cannot be read, a run that cannot resume, ...); the message names the file and the problem."
);

fn value_error(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// Runs `f` without the GIL, turning a panic into a BgenError (never a crash of the
/// interpreter).
fn detached<T: Send>(py: Python<'_>, f: impl FnOnce() -> PyResult<T> + Send) -> PyResult<T> {
    py.detach(|| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(BgenError::new_err(format!("internal error: {msg}")))
        })
    })
}

/// A molecular system: topology, AMBER force field with GBSA-OBC implicit solvent, and
/// temperature. Energies equal OpenMM's to round-off.
#[pyclass(frozen, module = "bgen")]
struct System {
    inner: bgen_system::System,
}

/// Conformations of an array: (n, atoms, 3) or one (atoms, 3), in nm (borrowed when the array
/// is C-contiguous); whether it was one.
fn conformations<'a>(
    x: &'a PyReadonlyArrayDyn<'_, f64>,
    atoms: usize,
) -> PyResult<(std::borrow::Cow<'a, [f64]>, usize, bool)> {
    let shape = x.shape().to_vec();
    let (n, single) = match shape.as_slice() {
        [a, 3] if *a == atoms => (1, true),
        [n, a, 3] if *a == atoms => (*n, false),
        _ => {
            return Err(value_error(format!(
                "positions of shape {shape:?}: expected (n, {atoms}, 3) or ({atoms}, 3) in nm"
            )))
        }
    };
    let v: std::borrow::Cow<'a, [f64]> = match x.as_slice() {
        Ok(s) => s.into(),
        Err(_) => x.as_array().iter().copied().collect::<Vec<f64>>().into(),
    };
    if let Some(k) = v.iter().position(|c| !c.is_finite()) {
        return Err(value_error(format!(
            "conformation {} has a non-finite coordinate (atom {})",
            k / (3 * atoms),
            k % (3 * atoms) / 3
        )));
    }
    Ok((v, n, single))
}

impl System {
    /// Reduced energies (kT) and, with `grad`, dU/dx (kT/nm) of a batch, without the GIL.
    fn reduced(
        &self,
        py: Python<'_>,
        x: &[f64],
        n: usize,
        grad: bool,
    ) -> PyResult<(Vec<f64>, Option<Vec<f64>>)> {
        detached(py, || {
            let mut e = vec![0.0; n];
            let mut g = grad.then(|| vec![0.0; x.len()]);
            self.inner.energy_and_grad(x, &mut e, g.as_deref_mut());
            Ok((e, g))
        })
    }
}

/// A non-finite energy (coinciding atoms) as +inf: zero Boltzmann weight, never NaN.
fn finite_or_inf(u: f64) -> f64 {
    if u.is_finite() {
        u
    } else {
        f64::INFINITY
    }
}

/// Reduced energies (n,) and gradients (x's shape).
type EnergiesAndGrads<'py> = (Bound<'py, PyArray1<f64>>, Bound<'py, PyArrayDyn<f64>>);

fn energies_out<'py>(py: Python<'py>, e: Vec<f64>, single: bool) -> PyResult<Py<PyAny>> {
    Ok(if single {
        e[0].into_pyobject(py)?.into_any().unbind()
    } else {
        PyArray1::from_vec(py, e).into_any().unbind()
    })
}

fn positions_out<'py>(
    py: Python<'py>,
    v: Vec<f64>,
    n: usize,
    atoms: usize,
    single: bool,
) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
    let a = PyArray1::from_vec(py, v);
    let shape: Vec<usize> = if single {
        vec![atoms, 3]
    } else {
        vec![n, atoms, 3]
    };
    a.reshape(shape)
}

#[pymethods]
impl System {
    /// A system from a PDB file with hydrogens (every residue must match a template of the
    /// force field: "amber14-obc1" or "amber99sbildn-obc2"); temperature in K (default: the
    /// force field's, 310 or 300 K).
    #[staticmethod]
    #[pyo3(signature = (path, forcefield = "amber14-obc1", temperature = None))]
    fn from_pdb(
        py: Python<'_>,
        path: PathBuf,
        forcefield: &str,
        temperature: Option<f64>,
    ) -> PyResult<System> {
        let setup = Setup::from_name(forcefield).map_err(value_error)?;
        check_temperature(temperature)?;
        let inner = detached(py, || {
            bgen_system::System::from_pdb_file(&path, setup, temperature).map_err(value_error)
        })?;
        Ok(System { inner })
    }

    /// An embedded system: "aldp", "ala3", "ala4", "ala6" or "chignolin", with its default
    /// force field and temperature unless given.
    #[staticmethod]
    #[pyo3(signature = (name, forcefield = None, temperature = None))]
    fn named(name: &str, forcefield: Option<&str>, temperature: Option<f64>) -> PyResult<System> {
        let setup = forcefield
            .map(Setup::from_name)
            .transpose()
            .map_err(value_error)?;
        check_temperature(temperature)?;
        let inner = bgen_system::System::named(name, setup, temperature).map_err(value_error)?;
        Ok(System { inner })
    }

    /// Name of the system (or of its PDB file).
    #[getter]
    fn name(&self) -> String {
        self.inner.name.clone()
    }

    /// Number of atoms.
    #[getter]
    fn n_atoms(&self) -> usize {
        self.inner.n_atoms()
    }

    /// Temperature, K.
    #[getter]
    fn temperature(&self) -> f64 {
        self.inner.temperature
    }

    /// kT at the system's temperature, kJ/mol.
    #[getter]
    fn kt(&self) -> f64 {
        self.inner.kt()
    }

    /// The force field and solvent setup, e.g. "amber14-obc1".
    #[getter]
    fn forcefield(&self) -> &'static str {
        self.inner.params.setup.name()
    }

    /// Positions of the input structure, (atoms, 3) nm.
    #[getter]
    fn positions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
        positions_out(py, self.inner.positions.clone(), 1, self.n_atoms(), true)
    }

    /// Atom names in topology order.
    #[getter]
    fn atom_names(&self) -> Vec<String> {
        self.inner
            .topology
            .atoms
            .iter()
            .map(|a| a.name.clone())
            .collect()
    }

    /// Potential energies (kJ/mol) of conformations `x`, (n, atoms, 3) nm, as an (n,) array;
    /// of one conformation (atoms, 3), a float. Batched over threads, without the GIL.
    /// Coinciding atoms give +inf; non-finite coordinates raise ValueError.
    /// The same arithmetic as `bgen energy` (equal to it bit for bit).
    fn energy(&self, py: Python<'_>, x: PyReadonlyArrayDyn<'_, f64>) -> PyResult<Py<PyAny>> {
        let (v, _, single) = conformations(&x, self.n_atoms())?;
        let e = detached(py, || {
            let e = self.inner.energies_batch(&v, None);
            Ok(e.iter().map(|e| finite_or_inf(e.total())).collect())
        })?;
        energies_out(py, e, single)
    }

    /// Energies (kJ/mol) and forces (kJ/mol/nm, the shape of `x`) of conformations `x`; the
    /// same arithmetic as `bgen energy --forces` (equal to it bit for bit).
    fn energy_and_forces<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArrayDyn<'_, f64>,
    ) -> PyResult<(Py<PyAny>, Bound<'py, PyArrayDyn<f64>>)> {
        let (v, n, single) = conformations(&x, self.n_atoms())?;
        let (e, f) = detached(py, || {
            let mut f = vec![0.0; v.len()];
            let e = self.inner.energies_batch(&v, Some(&mut f));
            let e: Vec<f64> = e.iter().map(|e| finite_or_inf(e.total())).collect();
            // Zero Boltzmann weight: +inf with zero forces, as the samplers see it.
            let d = 3 * self.n_atoms();
            for (k, _) in e.iter().enumerate().filter(|(_, u)| u.is_infinite()) {
                f[k * d..(k + 1) * d].fill(0.0);
            }
            Ok((e, f))
        })?;
        Ok((
            energies_out(py, e, single)?,
            positions_out(py, f, n, self.n_atoms(), single)?,
        ))
    }

    /// Reduced energies U / kT (n,) of conformations (n, atoms, 3) nm and their gradients
    /// dU/dx (kT/nm, the shape of `x`): what a sampler or a PyTorch loss needs.
    fn reduced_energy_and_grad<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArrayDyn<'_, f64>,
    ) -> PyResult<EnergiesAndGrads<'py>> {
        let (v, n, single) = conformations(&x, self.n_atoms())?;
        let (e, g) = self.reduced(py, &v, n, true)?;
        Ok((
            PyArray1::from_vec(py, e),
            positions_out(py, g.unwrap_or_default(), n, self.n_atoms(), single)?,
        ))
    }

    fn __repr__(&self) -> String {
        format!(
            "System('{}', {} atoms, {} at {} K)",
            self.inner.name,
            self.n_atoms(),
            self.forcefield(),
            self.inner.temperature
        )
    }
}

fn check_temperature(t: Option<f64>) -> PyResult<()> {
    match t {
        Some(t) if !(t.is_finite() && t > 0.0) => Err(value_error(format!(
            "temperature {t} K: must be positive and finite"
        ))),
        _ => Ok(()),
    }
}

/// A trained proposal (TarFlow or ArBG, in Cartesian or internal coordinates) loaded from a
/// training run or the weights shipped for an embedded system: samples with their exact log q,
/// energies and importance weights, and log q of given conformations.
#[pyclass(module = "bgen")]
struct Model {
    run: bgen::sample::stage::LoadedRun,
}

impl Model {
    /// log q (in the model's coordinates, with the CoM term for a Cartesian model) and the
    /// target energy in those coordinates (kT; U - log|det J| for internal ones) of Cartesian
    /// conformations, or of the model's own samples `y`.
    fn densities(&self, y: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
        use bgen::sample::{ComForm, Proposal};
        let (mut lq, mut e) = (vec![0.0; n], vec![0.0; n]);
        match &self.run.internal {
            Some(t) => {
                let z = t.zmatrix();
                let target = bgen_system::InternalTarget {
                    target: &self.run.sys,
                    zmatrix: &z,
                };
                self.run.proposal().log_q(y, &mut lq, None);
                target.energy_and_grad(y, &mut e, None);
            }
            None => {
                self.run.adjusted(ComForm::Gaussian).log_q(y, &mut lq, None);
                self.run.sys.energy_and_grad(y, &mut e, None);
            }
        }
        (lq, e)
    }
}

#[pymethods]
impl Model {
    /// Loads a training run (`run`, a `bgen train` directory) or the weights shipped for an
    /// embedded `system`; `tau` is the sampling temperature (a TarFlow's prior, an ArBG's
    /// bins), `threads` the worker threads (each with a copy of the model). A transferable run
    /// samples the `molecule` (a `System`, e.g. `bgen.build("KW", "kw.pdb")["system"]`),
    /// zero-shot if it never saw it.
    #[staticmethod]
    #[pyo3(signature = (run = None, system = None, tau = 1.0, threads = 1, molecule = None))]
    fn load(
        py: Python<'_>,
        run: Option<PathBuf>,
        system: Option<String>,
        tau: f64,
        threads: usize,
        molecule: Option<PyRef<'_, System>>,
    ) -> PyResult<Model> {
        if !(tau.is_finite() && tau > 0.0) || threads == 0 {
            return Err(value_error(format!(
                "tau {tau} and threads {threads}: both must be positive"
            )));
        }
        let dir = match (run, system) {
            (Some(r), None) => r,
            (None, Some(s)) => bgen::models::shipped::run_dir(&s).map_err(value_error)?,
            _ => {
                return Err(value_error(
                    "pass exactly one of run= (a training run) or system= (shipped weights)",
                ))
            }
        };
        let molecule = molecule.map(|m| m.inner.clone());
        let run = detached(py, || {
            let cpu = bgen::models::DeviceChoice::Cpu
                .open()
                .map_err(value_error)?;
            match molecule {
                None => bgen::sample::stage::load_run(&dir, cpu, 256, true, tau, threads),
                Some(m) => {
                    bgen::sample::stage::load_transferable(&dir, m, cpu, 256, true, tau, threads)
                }
            }
            .map_err(|e| BgenError::new_err(format!("{e:#}")))
        })?;
        Ok(Model { run })
    }

    /// A transferable model: whether it was trained on this molecule (else None).
    #[getter]
    fn seen_in_training(&self) -> Option<bool> {
        self.run.seen_in_training
    }

    /// The model's system.
    #[getter]
    fn system(&self) -> System {
        System {
            inner: self.run.sys.clone(),
        }
    }

    /// "internal" or "cartesian".
    #[getter]
    fn coords(&self) -> String {
        match self.run.internal {
            Some(_) => bgen::models::Coords::Internal,
            None => bgen::models::Coords::Cartesian,
        }
        .to_string()
    }

    /// `n` samples drawn reproducibly from `seed`: a dict of `samples` (n, atoms, 3) nm
    /// (internal-coordinate models: in a canonical frame), `log_q` (the model's density in
    /// its coordinates), `energies` (kJ/mol) and `log_weights` (unnormalised log importance
    /// weights toward exp(-U/kT), in the model's coordinates).
    #[pyo3(signature = (n, seed = 0))]
    fn sample<'py>(
        &self,
        py: Python<'py>,
        n: usize,
        seed: u64,
    ) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        if n == 0 {
            return Err(value_error("n must be at least 1"));
        }
        let (x, lq, u, lw) = detached(py, || {
            let (y, lq) = self.run.proposal().sample(n, seed);
            let (_, e) = self.densities(&y, n);
            let x = match &self.run.internal {
                Some(t) => t.to_cartesian(&y),
                None => y,
            };
            let mut u = vec![0.0; n];
            self.run.sys.energy_and_grad(&x, &mut u, None);
            let kt = self.run.sys.kt();
            u.iter_mut().for_each(|v| *v *= kt);
            let lw: Vec<f64> = e.iter().zip(&lq).map(|(e, q)| -e - q).collect();
            Ok((x, lq, u, lw))
        })?;
        let d = pyo3::types::PyDict::new(py);
        d.set_item(
            "samples",
            positions_out(py, x, n, self.run.sys.n_atoms(), false)?,
        )?;
        d.set_item("log_q", PyArray1::from_vec(py, lq))?;
        d.set_item("energies", PyArray1::from_vec(py, u))?;
        d.set_item("log_weights", PyArray1::from_vec(py, lw))?;
        Ok(d)
    }

    /// log q of conformations `x` (n, atoms, 3) nm, in the model's coordinates (for an
    /// internal-coordinate model, of their internal coordinates).
    fn log_q<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArrayDyn<'_, f64>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let (v, n, _) = conformations(&x, self.run.sys.n_atoms())?;
        let lq = detached(py, || {
            let y = match &self.run.internal {
                Some(t) => t.from_cartesian(&v),
                None => v.into_owned(),
            };
            Ok(self.densities(&y, n).0)
        })?;
        Ok(PyArray1::from_vec(py, lq))
    }

    fn __repr__(&self) -> String {
        format!(
            "Model({}, {} coordinates)",
            self.run.sys.name,
            self.coords()
        )
    }
}

/// The options of the system (`bgen_system::SystemArgs`), which a stage's settings nest under
/// `sys` and Python gives as top-level keywords.
const SYSTEM_KEYS: [&str; 4] = ["system", "pdb", "forcefield", "temperature"];

/// Whether the stage's settings nest the system's options under `sys`.
fn nests_system(stage: &str) -> bool {
    matches!(stage, "md" | "evaluate")
}

/// Python's flat keywords (JSON) as the stage's typed settings: deserialised (unknown keys and
/// wrong types refused by name) and checked, as `bgen run` and the command line check them.
fn typed<T: serde::de::DeserializeOwned>(
    stage: &str,
    json: &str,
    check: impl Fn(&T) -> Result<(), String>,
) -> PyResult<T> {
    let mut v: serde_json::Value = serde_json::from_str(json).map_err(value_error)?;
    if nests_system(stage) {
        if let serde_json::Value::Object(m) = &mut v {
            let mut sys = serde_json::Map::new();
            for k in SYSTEM_KEYS {
                if let Some(x) = m.remove(k) {
                    sys.insert(k.into(), x);
                }
            }
            m.insert("sys".into(), sys.into());
        }
    }
    // The key is named: `method: unknown variant `mcmc`, expected one of ...`.
    let t: T = serde_path_to_error::deserialize(v).map_err(|e| {
        let key = e.path().to_string().replace("sys.", "");
        value_error(format!("bgen.{stage}: {key}: {}", e.into_inner()))
    })?;
    check(&t).map_err(|e| value_error(format!("bgen.{stage}: {e}")))?;
    Ok(t)
}

/// Settings back as Python's flat keywords (JSON), every default filled in.
fn flat(stage: &str, t: &impl serde::Serialize) -> PyResult<String> {
    let mut v = serde_json::to_value(t).map_err(value_error)?;
    if nests_system(stage) {
        if let serde_json::Value::Object(m) = &mut v {
            if let Some(serde_json::Value::Object(sys)) = m.remove("sys") {
                m.extend(sys);
            }
        }
    }
    Ok(v.to_string())
}

/// The typed settings of `stage` ("md", "split", "train", "sample", "evaluate") from Python's
/// keywords (JSON), checked, with every default filled in (JSON). Raises ValueError naming an
/// unknown key, a wrong type or a bad value.
#[pyfunction]
fn stage_config(stage: &str, json: &str) -> PyResult<String> {
    use bgen::md::{shards::MergeArgs, stage::BuildArgs};
    use bgen::{eval::EvalArgs, md::MdArgs, md::SplitArgs, models::TrainArgs, sample::SampleArgs};
    let e = |e: &dyn std::fmt::Display| e.to_string();
    match stage {
        "md" => flat(
            stage,
            &typed(stage, json, |t: &MdArgs| t.check().map_err(|x| e(&x)))?,
        ),
        "split" => flat(stage, &typed(stage, json, |_: &SplitArgs| Ok(()))?),
        "build" => flat(stage, &typed(stage, json, |_: &BuildArgs| Ok(()))?),
        "merge" => flat(stage, &typed(stage, json, |_: &MergeArgs| Ok(()))?),
        "train" => flat(
            stage,
            &typed(stage, json, |t: &TrainArgs| t.check().map_err(|x| e(&x)))?,
        ),
        "sample" => flat(
            stage,
            &typed(stage, json, |t: &SampleArgs| t.check().map_err(|x| e(&x)))?,
        ),
        "evaluate" => flat(
            stage,
            &typed(stage, json, |t: &EvalArgs| t.check().map_err(|x| e(&x)))?,
        ),
        other => Err(value_error(format!(
            "unknown stage '{other}' (build, md, split, merge, train, sample, evaluate)"
        ))),
    }
}

/// Runs `stage` with the typed settings of Python's keywords (JSON) in this process, without
/// the GIL, and returns its typed result (JSON). Bad settings raise ValueError; a failed stage
/// raises BgenError naming the file and the problem.
#[pyfunction]
fn run_stage(py: Python<'_>, stage: &str, json: &str) -> PyResult<String> {
    use bgen::md::{shards::MergeArgs, stage::BuildArgs};
    use bgen::{eval::EvalArgs, md::MdArgs, md::SplitArgs, models::TrainArgs, sample::SampleArgs};
    fn done<T: serde::Serialize, E: std::fmt::Display>(r: Result<T, E>) -> PyResult<String> {
        let t = r.map_err(|e| BgenError::new_err(e.to_string()))?;
        serde_json::to_string(&t).map_err(|e| BgenError::new_err(e.to_string()))
    }
    let e = |e: &dyn std::fmt::Display| e.to_string();
    match stage {
        "md" => {
            let a: MdArgs = typed(stage, json, |t: &MdArgs| t.check().map_err(|x| e(&x)))?;
            detached(py, || done(bgen::md::stage::run(a)))
        }
        "split" => {
            let a: SplitArgs = typed(stage, json, |_: &SplitArgs| Ok(()))?;
            detached(py, || done(bgen::md::stage::split(a)))
        }
        "build" => {
            let a: BuildArgs = typed(stage, json, |_: &BuildArgs| Ok(()))?;
            detached(py, || done(bgen::md::stage::build(a)))
        }
        "merge" => {
            let a: MergeArgs = typed(stage, json, |_: &MergeArgs| Ok(()))?;
            detached(py, || done(bgen::md::shards::merge(a)))
        }
        "train" => {
            let a: TrainArgs = typed(stage, json, |t: &TrainArgs| t.check().map_err(|x| e(&x)))?;
            detached(py, || done(bgen::models::stage::run(a)))
        }
        "sample" => {
            let a: SampleArgs = typed(stage, json, |t: &SampleArgs| t.check().map_err(|x| e(&x)))?;
            detached(py, || done(bgen::sample::stage::run(a)))
        }
        "evaluate" => {
            let a: EvalArgs = typed(stage, json, |t: &EvalArgs| t.check().map_err(|x| e(&x)))?;
            detached(py, || done(bgen::eval::stage::run(a)))
        }
        other => Err(value_error(format!(
            "unknown stage '{other}' (build, md, split, merge, train, sample, evaluate)"
        ))),
    }
}

/// The compiled module.
#[pymodule]
fn _bgen(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<System>()?;
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(stage_config, m)?)?;
    m.add_function(wrap_pyfunction!(run_stage, m)?)?;
    m.add("BgenError", m.py().get_type::<BgenError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
