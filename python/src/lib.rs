//! `anisostudy._native`: the library as a Python extension module.
//!
//! Each function is a thin call into the `anisostudy` crate, the same code
//! the `study` command runs; the Python package around it (`anisostudy/`)
//! only turns Python objects (ASE `Atoms`, pymatgen `Structure`s, numpy
//! arrays) into the plain values these functions take, and JSON text into
//! Python objects. Long computations release the GIL.
//!
//! Errors keep the library's split: bad input (an `InputError` anywhere in
//! the chain, exit 2 on the command line) raises `anisostudy.InputError`, a
//! `ValueError`, with its `location`, `problem` and `hint`; anything else
//! raises `anisostudy.StudyError`, a `RuntimeError`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anisostudy::crystal::Structure;
use anisostudy::screen::{self, EnsembleStats, Member, ModelChoice};
use anisostudy::storage::export;
use anisostudy::study::external::{Asked, ExternalStudy, Told};
use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

create_exception!(
    anisostudy,
    InputError,
    PyValueError,
    "Bad input: a study file, a structure, an argument; `location`, `problem` and `hint` say where, what and how to fix it."
);
create_exception!(anisostudy, StudyError, PyRuntimeError, "A fault while running (not the input's).");

/// The Python exception of a library error.
fn raise(py: Python<'_>, err: anyhow::Error) -> PyErr {
    let message = format!("{err:#}");
    let Some(input) = err.chain().find_map(|cause| cause.downcast_ref::<anisostudy::error::InputError>())
    else {
        return StudyError::new_err(message);
    };
    let exception = InputError::new_err(message);
    let value = exception.value(py);
    for (name, text) in [("location", &input.location), ("problem", &input.problem), ("hint", &input.hint)] {
        if let Err(err) = value.setattr(name, text) {
            return err;
        }
    }
    exception
}

/// Runs `work` without the GIL, mapping its error.
fn detached<T: Send>(py: Python<'_>, work: impl FnOnce() -> anyhow::Result<T> + Send) -> PyResult<T> {
    py.detach(work).map_err(|err| raise(py, err))
}

/// Runs a `study` command line (without the program name), as the binary
/// would, with progress on stderr. Python keeps its signal handlers: a
/// Ctrl-C stops a run gracefully (running trials checkpoint, a second one
/// kills them), and then raises KeyboardInterrupt here.
#[pyfunction]
fn cli(py: Python<'_>, args: Vec<String>) -> PyResult<()> {
    anisostudy::exec::leave_signals_to_host();
    let (done, mut answer) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(anisostudy::cli::run_args(args)));
    let mut interrupted: Option<PyErr> = None;
    loop {
        let received;
        (answer, received) = py.detach(move || {
            let received = answer.recv_timeout(Duration::from_millis(100));
            (answer, received)
        });
        match received {
            Ok(result) => {
                result.map_err(|err| raise(py, err))?;
                return interrupted.map_or(Ok(()), Err);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if let Err(err) = py.check_signals() {
                    anisostudy::exec::interrupt();
                    interrupted = Some(err);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(StudyError::new_err("the command ended without an answer (it panicked)"));
            }
        }
    }
}

/// The `study` command over `args` (the program name first), as the
/// binary runs it; returns its exit code (the package's `study` script).
#[pyfunction]
fn main(py: Python<'_>, args: Vec<String>) -> u8 {
    py.detach(|| anisostudy::cli::main_with(args))
}

/// The study and all its trials as JSON (`study export --format json`).
#[pyfunction]
fn study_json(py: Python<'_>, results: PathBuf, study: String) -> PyResult<String> {
    detached(py, || {
        let store = anisostudy::study::open_study(&results, Some(&study))?;
        let mut out = Vec::new();
        export::to_json(&store, &mut out)?;
        Ok(String::from_utf8(out)?)
    })
}

/// All trials as CSV (`study export --format csv`).
#[pyfunction]
fn trials_csv(py: Python<'_>, results: PathBuf, study: String) -> PyResult<String> {
    detached(py, || {
        let store = anisostudy::study::open_study(&results, Some(&study))?;
        let mut out = Vec::new();
        export::to_csv(&store, &mut out)?;
        Ok(String::from_utf8(out)?)
    })
}

/// The definitions the study ran under, as JSON: revision, first trial,
/// the definition, its changes as text, whether they were accepted.
#[pyfunction]
fn definitions_json(py: Python<'_>, results: PathBuf, study: String) -> PyResult<String> {
    detached(py, || {
        let store = anisostudy::study::open_study(&results, Some(&study))?;
        let definitions: Vec<serde_json::Value> = store
            .definitions()?
            .iter()
            .map(|d| {
                serde_json::json!({
                    "revision": d.revision,
                    "created": d.created.to_string(),
                    "first_trial": d.first_trial,
                    "definition": d.definition,
                    "changes": d.change_texts(),
                    "accepted": d.accepted,
                    "version": d.version,
                })
            })
            .collect();
        Ok(serde_json::to_string(&definitions)?)
    })
}

/// Asks for up to `n` trials of an external study (`study ask`): each
/// trial's JSON, and why fewer came back (`""`, `"wait"` or `"finished"`).
#[pyfunction]
#[pyo3(signature = (target, results, n, stale_after=None, overrides=Vec::new()))]
fn ask(
    py: Python<'_>,
    target: String,
    results: PathBuf,
    n: u32,
    stale_after: Option<f64>,
    overrides: Vec<String>,
) -> PyResult<(Vec<String>, String)> {
    detached(py, || {
        let mut study = ExternalStudy::open(&target, &results, &overrides, false)?;
        if let Some(age) = stale_after {
            study.fail_stale(Duration::from_secs_f64(age))?;
        }
        let mut asked = Vec::new();
        for _ in 0..n {
            match study.ask()? {
                Asked::Trial(trial) => asked.push(serde_json::to_string(&trial)?),
                Asked::Wait => return Ok((asked, "wait".to_owned())),
                Asked::Finished => return Ok((asked, "finished".to_owned())),
            }
        }
        Ok((asked, String::new()))
    })
}

/// Ends a RUNNING trial of an external study (`study tell`): with `value`
/// (or every objective's, `values`) COMPLETE, else `state` "fail" (with
/// `reason`) or "pruned".
#[pyfunction]
#[pyo3(signature = (study, results, trial, value=None, state=None, reason=None, metrics=BTreeMap::new(), constraints=None, values=None))]
#[allow(clippy::too_many_arguments)] // a keyword-argument Python signature
fn tell(
    py: Python<'_>,
    study: String,
    results: PathBuf,
    trial: u64,
    value: Option<f64>,
    state: Option<String>,
    reason: Option<String>,
    metrics: BTreeMap<String, f64>,
    constraints: Option<Vec<f64>>,
    values: Option<Vec<f64>>,
) -> PyResult<String> {
    let told = match (value, values, state.as_deref()) {
        (Some(value), None, None) => Told::Complete(value),
        (None, Some(values), None) => Told::Values(values),
        (None, None, Some("fail")) => Told::Failed(reason),
        (None, None, Some("pruned")) => Told::Pruned,
        _ => {
            let err = anisostudy::error::InputError::new(
                format!("tell(trial {trial})"),
                "give either a value (values, with several objectives), or state=\"fail\" or state=\"pruned\"",
            );
            return Err(raise(py, err.into()));
        }
    };
    detached(py, || {
        let mut external = ExternalStudy::open(&study, &results, &[], false)?;
        external.tell(trial, told, &metrics, constraints.as_deref())?;
        let state = external.study().trial(trial).map(|t| t.state.name()).unwrap_or_default();
        Ok(state.to_owned())
    })
}

/// Records an intermediate value of a RUNNING trial (`study tell --step --intermediate`).
#[pyfunction]
fn report(
    py: Python<'_>,
    study: String,
    results: PathBuf,
    trial: u64,
    step: u64,
    value: f64,
) -> PyResult<()> {
    detached(py, || ExternalStudy::open(&study, &results, &[], false)?.report(trial, step, value))
}

/// Whether the pruner stops a RUNNING trial (`study tell --should-prune`).
#[pyfunction]
fn should_prune(py: Python<'_>, study: String, results: PathBuf, trial: u64) -> PyResult<bool> {
    detached(py, || ExternalStudy::open(&study, &results, &[], false)?.should_prune(trial))
}

/// Shows that a RUNNING trial's driver is alive (`study tell --heartbeat`).
#[pyfunction]
fn heartbeat(py: Python<'_>, study: String, results: PathBuf, trial: u64) -> PyResult<()> {
    detached(py, || ExternalStudy::open(&study, &results, &[], false)?.heartbeat(trial))
}

/// A study's models as an ensemble (or one checkpoint), predicting ε∞.
#[pyclass(module = "anisostudy._native", frozen)]
struct Ensemble {
    members: Vec<Member>,
    why: String,
}

#[pymethods]
impl Ensemble {
    /// The trials `models` picks ("auto", "best", "seeds" or a count) from
    /// the study `study` in `results` (or the study folder `study`).
    #[staticmethod]
    fn from_study(py: Python<'_>, results: PathBuf, study: String, models: String) -> PyResult<Self> {
        detached(py, || {
            let choice: ModelChoice = models.parse().map_err(|problem: String| {
                anisostudy::error::InputError::new(format!("models={models:?}"), problem)
                    .with_hint("models is \"auto\", \"best\", \"seeds\" or a number of trials")
            })?;
            let folder = anisostudy::study::study_folder(&results, Some(&study))?;
            let selection = screen::models::select_in(&folder, choice)?;
            Ok(Ensemble { members: selection.members, why: selection.why })
        })
    }

    /// One trained model: the `--out` folder of `study train`, or a trial's checkpoint folder.
    #[staticmethod]
    fn from_checkpoint(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        detached(py, || {
            anisostudy::train::load_best_model(&path)?;
            let member =
                Member { trial: 0, checkpoint: path.clone(), value: f64::NAN, params: String::new() };
            Ok(Ensemble { members: vec![member], why: format!("the checkpoint {}", path.display()) })
        })
    }

    /// (trial, objective value, parameters) of each member.
    #[getter]
    fn members(&self) -> Vec<(u64, f64, String)> {
        self.members.iter().map(|m| (m.trial, m.value, m.params.clone())).collect()
    }

    /// Why these members, in words.
    #[getter]
    fn why(&self) -> String {
        self.why.clone()
    }

    /// Predicts structures given as cells (rows are lattice vectors, Å),
    /// Cartesian positions (Å) and atomic numbers, in batches of `batch` on
    /// `threads` threads (every core by default). Returns a dict of lists,
    /// one entry per structure: `mean` and `spread` (3×3), `eigenvalues`,
    /// `eps_poly`, `eps_poly_spread`, `anisotropy`, `anisotropy_spread`,
    /// `birefringence` (None where undefined) and `unphysical`.
    #[pyo3(signature = (cells, positions, numbers, batch=32, threads=None))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        cells: Vec<[[f64; 3]; 3]>,
        positions: Vec<Vec<[f64; 3]>>,
        numbers: Vec<Vec<u8>>,
        batch: usize,
        threads: Option<usize>,
    ) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let stats = detached(py, || {
            let structures = structures(cells, positions, numbers)?;
            screen::predict(&self.members, &structures, batch, threads)
        })?;
        let dict = pyo3::types::PyDict::new(py);
        let column = |f: fn(&EnsembleStats) -> f64| stats.iter().map(f).collect::<Vec<f64>>();
        let optional = |f: fn(&EnsembleStats) -> Option<f64>| stats.iter().map(f).collect::<Vec<_>>();
        dict.set_item("mean", stats.iter().map(|s| s.mean).collect::<Vec<_>>())?;
        dict.set_item("spread", stats.iter().map(|s| s.spread).collect::<Vec<_>>())?;
        dict.set_item("eigenvalues", stats.iter().map(|s| s.eigenvalues).collect::<Vec<_>>())?;
        dict.set_item("eps_poly", column(|s| s.eps_poly))?;
        dict.set_item("eps_poly_spread", column(|s| s.eps_poly_spread))?;
        dict.set_item("anisotropy", optional(|s| s.anisotropy))?;
        dict.set_item("anisotropy_spread", optional(|s| s.anisotropy_spread))?;
        dict.set_item("birefringence", optional(|s| s.birefringence))?;
        dict.set_item("unphysical", stats.iter().map(|s| s.unphysical).collect::<Vec<_>>())?;
        Ok(dict)
    }
}

/// Checked structures from their parts; a problem names the structure.
fn structures(
    cells: Vec<[[f64; 3]; 3]>,
    positions: Vec<Vec<[f64; 3]>>,
    numbers: Vec<Vec<u8>>,
) -> anyhow::Result<Vec<Structure>> {
    let bad = |k: usize, problem: String, hint: &str| -> anyhow::Error {
        anisostudy::error::InputError::new(format!("structure {k}"), problem).with_hint(hint).into()
    };
    if cells.len() != positions.len() || cells.len() != numbers.len() {
        return Err(bad(
            0,
            "cells, positions and numbers differ in length".into(),
            "give one of each per structure",
        ));
    }
    let mut out = Vec::with_capacity(cells.len());
    for (k, ((lattice, positions), numbers)) in cells.into_iter().zip(positions).zip(numbers).enumerate() {
        if positions.len() != numbers.len() {
            return Err(bad(
                k,
                format!("{} positions but {} atomic numbers", positions.len(), numbers.len()),
                "give one atomic number per atom",
            ));
        }
        let structure = Structure { lattice, numbers, positions };
        structure.validate().map_err(|p| bad(k, p.problem, &p.hint))?;
        out.push(structure);
    }
    Ok(out)
}

/// The `name:` of a study file after `overrides`, checked as `study run` checks it.
#[pyfunction]
fn study_name(py: Python<'_>, study_file: PathBuf, overrides: Vec<String>) -> PyResult<String> {
    detached(py, || Ok(anisostudy::study::load(&study_file, &overrides)?.name))
}

/// The folder of the study `study` in `results` (or the folder `study`).
#[pyfunction]
fn study_folder(py: Python<'_>, results: PathBuf, study: String) -> PyResult<PathBuf> {
    detached(py, || anisostudy::study::study_folder(&results, Some(&study)))
}

/// Whether `path` holds a trained model (for a clear error before loading).
#[pyfunction]
fn is_checkpoint(path: PathBuf) -> bool {
    anisostudy::train::checkpoint_exists(Path::new(&path))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("InputError", m.py().get_type::<InputError>())?;
    m.add("StudyError", m.py().get_type::<StudyError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(cli, m)?)?;
    m.add_function(wrap_pyfunction!(main, m)?)?;
    m.add_function(wrap_pyfunction!(study_json, m)?)?;
    m.add_function(wrap_pyfunction!(trials_csv, m)?)?;
    m.add_function(wrap_pyfunction!(definitions_json, m)?)?;
    m.add_function(wrap_pyfunction!(ask, m)?)?;
    m.add_function(wrap_pyfunction!(tell, m)?)?;
    m.add_function(wrap_pyfunction!(report, m)?)?;
    m.add_function(wrap_pyfunction!(should_prune, m)?)?;
    m.add_function(wrap_pyfunction!(heartbeat, m)?)?;
    m.add_function(wrap_pyfunction!(is_checkpoint, m)?)?;
    m.add_function(wrap_pyfunction!(study_name, m)?)?;
    m.add_function(wrap_pyfunction!(study_folder, m)?)?;
    m.add_class::<Ensemble>()?;
    Ok(())
}
