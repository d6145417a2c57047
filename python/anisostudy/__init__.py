"""AnisoStudy from Python.

Studies of equivariant graph neural networks that predict the dielectric
tensor of crystals: load a study's trials, predict tensors of ASE ``Atoms``
or pymatgen ``Structure`` objects with a study's best models, run a study or
a screen, and drive a study from a workflow engine with ``ask`` and ``tell``.

Everything is computed by the same Rust library as the ``study`` command
(the extension module ``anisostudy._native``); this package only turns
Python objects into its inputs and its outputs into Python objects.

    >>> import anisostudy
    >>> study = anisostudy.load_study("smoke")
    >>> study.best_trial.params
    >>> predictor = anisostudy.Predictor.from_study(study)
    >>> prediction = predictor.predict(atoms_list)   # ASE Atoms or pymatgen Structures
    >>> prediction.mean.shape                        # (n, 3, 3)
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from . import _native
from ._native import InputError, StudyError

__version__ = _native.__version__


def _trial_program() -> str | None:
    """The `study` script installed with this package: the program a study's
    built-in trials run as (`study trial FILE`), since this process is Python."""
    script = Path(sys.executable).with_name("study")
    return str(script) if script.is_file() else shutil.which("study")


if "ANISOSTUDY_TRIAL_EXE" not in os.environ and _trial_program():
    os.environ["ANISOSTUDY_TRIAL_EXE"] = _trial_program()

__all__ = [
    "InputError",
    "StudyError",
    "Study",
    "TrialRecord",
    "Trial",
    "Prediction",
    "Predictor",
    "load_study",
    "create_study",
    "read_trials_csv",
    "run",
    "screen",
]


@dataclass(frozen=True)
class TrialRecord:
    """One stored trial, as ``study export --format json`` writes it."""

    number: int
    phase: int
    state: str
    value: float | None
    params: dict[str, Any]
    metrics: dict[str, float]
    intermediate: dict[int, float]
    duration_s: float | None
    started: str | None
    finished: str | None
    seed: int | None
    device: str | None
    attempt: int
    fail_reason: str | None
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    user_attrs: dict[str, Any] = field(default_factory=dict)
    #: Constraint values (each feasible when ≤ 0), where the study has constraints.
    constraints: list[float] | None = None
    #: Every objective's value, in a COMPLETE trial of a study with several.
    values: list[float] | None = None

    @classmethod
    def _from_json(cls, record: Mapping[str, Any]) -> "TrialRecord":
        fields = dict(record)
        fields["intermediate"] = {int(step): value for step, value in record["intermediate"].items()}
        return cls(**{name: fields[name] for name in cls.__dataclass_fields__ if name in fields})


class Study:
    """A study in a results folder: its trials, its best trial, its
    definitions, and (for ``resources.executor: external``) ask and tell.

    Each property reads the study's database afresh, so a study that is
    running elsewhere shows its latest state.
    """

    def __init__(self, name: str, results: str | os.PathLike = "results"):
        self.name = name
        self.results = Path(results)
        document = json.loads(_native.study_json(self.results, name))
        # The study's own name (``name`` may be its folder's path).
        self._study = document["study"]["name"]
        self.direction: str = document["study"]["direction"]
        objectives = document["study"].get("objectives") or []
        #: Every objective's direction and name, in a study with several (else empty).
        self.directions: list[str] = [o["direction"] for o in objectives]
        self.metric_names: list[str] = [o["name"] for o in objectives]
        self.seed: int = document["study"]["seed"]

    def __repr__(self) -> str:
        return f"Study({self._study!r}, results={str(self.results)!r})"

    @property
    def trials(self) -> list[TrialRecord]:
        """Every trial, by number."""
        document = json.loads(_native.study_json(self.results, self.name))
        return [TrialRecord._from_json(t) for t in document["trials"]]

    @property
    def best_trial(self) -> TrialRecord | None:
        """The best feasible COMPLETE trial (the lowest number on ties), as
        ``study status`` names it."""
        document = json.loads(_native.study_json(self.results, self.name))
        best = document["study"]["best_trial"]
        return next((TrialRecord._from_json(t) for t in document["trials"] if t["number"] == best), None)

    @property
    def best_trials(self) -> list[TrialRecord]:
        """The Pareto set of a study with several objectives (its feasible
        COMPLETE trials that no other beats in every objective, by number),
        as Optuna's ``best_trials``; the best trial alone with one objective."""
        document = json.loads(_native.study_json(self.results, self.name))
        numbers = document["study"].get("pareto_set")
        if numbers is None:
            best = document["study"]["best_trial"]
            numbers = [] if best is None else [best]
        return [TrialRecord._from_json(t) for t in document["trials"] if t["number"] in numbers]

    @property
    def definitions(self) -> list[dict[str, Any]]:
        """The study-file definitions the study ran under, oldest first, each
        with its first trial and what changed from the one before."""
        return json.loads(_native.definitions_json(self.results, self.name))

    def trials_dataframe(self):
        """The trials as a pandas DataFrame with Optuna's columns: the table
        ``study export --format csv`` writes (``number``, ``value``,
        ``datetime_start``, ``datetime_complete``, ``duration``,
        ``params_<name>``, ``user_attrs_<name>`` for the metrics and the
        trial's other facts, ``state``), read by :func:`read_trials_csv`."""
        return read_trials_csv(io.StringIO(_native.trials_csv(self.results, self.name)))

    # Ask and tell, for a study with `resources.executor: external`.

    def ask(self, stale_after: float | None = None) -> "Trial | None":
        """The next trial to run, RUNNING from now; ``None`` when there is
        none to give now (the study is finished, or its next phase waits for
        running trials to be told). ``stale_after`` (seconds) first fails
        RUNNING trials whose last heartbeat is older."""
        asked, _why = _native.ask(self.name, self.results, 1, stale_after)
        return Trial(self, json.loads(asked[0])) if asked else None

    def tell(
        self,
        trial: "Trial | int",
        value: float | None = None,
        *,
        state: str | None = None,
        reason: str | None = None,
        metrics: Mapping[str, float] | None = None,
        constraints: Sequence[float] | None = None,
        values: Sequence[float] | None = None,
    ) -> str:
        """Ends a RUNNING trial: COMPLETE with ``value`` (``values``, one per
        objective, in a study with several), or ``state="fail"``
        (with a ``reason``) or ``state="pruned"``; ``metrics`` are recorded
        with it, and ``constraints`` are its own constraint values (each
        feasible when ≤ 0, as Optuna's), for the study file's ``constraints``
        entries with a ``name``. Returns the trial's new state."""
        number = trial.number if isinstance(trial, Trial) else int(trial)
        value = None if value is None else float(value)
        constraints = None if constraints is None else [float(c) for c in constraints]
        values = None if values is None else [float(v) for v in values]
        return _native.tell(
            self.name, self.results, number, value, state, reason, dict(metrics or {}), constraints, values
        )


def read_trials_csv(path_or_buffer):
    """A ``study export --format csv`` file as the DataFrame Optuna's
    ``trials_dataframe()`` gives: ``datetime_start`` and
    ``datetime_complete`` as datetimes, ``duration`` as timedeltas."""
    import pandas as pd

    frame = pd.read_csv(path_or_buffer, parse_dates=["datetime_start", "datetime_complete"])
    frame["duration"] = pd.to_timedelta(frame["duration"], unit="s")
    return frame


def load_study(name: str, results: str | os.PathLike = "results") -> Study:
    """The study ``name`` in ``results`` (or the study folder ``name``)."""
    return Study(name, results)


def create_study(
    study_file: str | os.PathLike, results: str | os.PathLike = "results", overrides: Mapping[str, Any] | None = None
) -> Study:
    """The study of ``study_file``, whose trials an outside driver runs
    (``resources.executor: external``): created in ``results`` on first use,
    else opened (a changed file is reviewed as ``study ask`` reviews it).
    Then ``study.ask()`` and ``study.tell(...)``."""
    _native.ask(str(study_file), Path(results), 0, None, _overrides(overrides))
    return Study(_study_name(study_file, overrides), results)


class Trial:
    """A trial handed out by :meth:`Study.ask`: its ``number``, ``params``,
    ``seed``, ``trial_dir``, and the ``command`` (with ``workdir`` and
    ``env``) that runs it, printing the trial protocol's JSON lines."""

    def __init__(self, study: Study, asked: Mapping[str, Any]):
        self.study = study
        self.number: int = asked["number"]
        self.params: dict[str, Any] = asked["params"]
        self.seed: int = asked["seed"]
        self.trial_dir = Path(asked["trial_dir"])
        self.command: list[str] = asked["command"]
        self.workdir = Path(asked["workdir"]) if asked.get("workdir") else None
        self.env: dict[str, str] = asked["env"]

    def __repr__(self) -> str:
        return f"Trial(number={self.number}, params={self.params!r})"

    def report(self, value: float, step: int) -> None:
        """Records an intermediate value at ``step`` (also a heartbeat)."""
        _native.report(self.study.name, self.study.results, self.number, int(step), float(value))

    def should_prune(self) -> bool:
        """Whether the study's pruner stops this trial after its last report."""
        return _native.should_prune(self.study.name, self.study.results, self.number)

    def heartbeat(self) -> None:
        """Shows that this trial's driver is alive (see ``stale_after``)."""
        _native.heartbeat(self.study.name, self.study.results, self.number)


@dataclass(frozen=True)
class Prediction:
    """An ensemble's prediction of n structures: ``mean`` and ``spread``
    (n, 3, 3) Cartesian ε∞ and its per-component standard deviation over the
    members; ``eigenvalues`` (n, 3) ascending; ``eps_poly``,
    ``eps_poly_spread``, ``anisotropy``, ``anisotropy_spread`` and
    ``birefringence`` (n,), NaN where undefined; ``unphysical`` (n,) bool."""

    mean: np.ndarray
    spread: np.ndarray
    eigenvalues: np.ndarray
    eps_poly: np.ndarray
    eps_poly_spread: np.ndarray
    anisotropy: np.ndarray
    anisotropy_spread: np.ndarray
    birefringence: np.ndarray
    unphysical: np.ndarray


class Predictor:
    """A study's best models as an ensemble (or one trained model), predicting
    ε∞ of ASE ``Atoms`` and pymatgen ``Structure`` objects on every core."""

    def __init__(self, ensemble: "_native.Ensemble"):
        self._ensemble = ensemble

    @classmethod
    def from_study(
        cls, study: "Study | str", models: str | int = "auto", results: str | os.PathLike = "results"
    ) -> "Predictor":
        """``models``: "auto" (a sweep's best cell with its seeds, a search's 5
        best trials), "best", "seeds", or k (the k best trials), as ``study
        screen --models``."""
        if isinstance(study, Study):
            name, results = study.name, study.results
        else:
            name = str(study)
        return cls(_native.Ensemble.from_study(Path(results), name, str(models)))

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike) -> "Predictor":
        """One model: the ``--out`` folder of ``study train``, or a trial's checkpoint folder."""
        if not _native.is_checkpoint(Path(path)):
            error = InputError(f"{path}: holds no trained model\n  hint: give the --out folder of `study train`")
            error.location, error.problem, error.hint = str(path), "holds no trained model", "give the --out folder of `study train`"
            raise error
        return cls(_native.Ensemble.from_checkpoint(Path(path)))

    @property
    def members(self) -> list[tuple[int, float, str]]:
        """(trial, objective value, parameters) of each member."""
        return self._ensemble.members

    @property
    def why(self) -> str:
        """Why these members, in words."""
        return self._ensemble.why

    def predict(self, structures, threads: int | None = None, batch: int = 32) -> Prediction:
        """Predicts one structure or a list of them (ASE ``Atoms``, pymatgen
        ``Structure``, duck-typed). The GIL is released while it computes."""
        items = _as_list(structures)
        cells, positions, numbers = [], [], []
        for k, item in enumerate(items):
            cell, pos, z = _parts(item, k)
            cells.append(cell)
            positions.append(pos)
            numbers.append(z)
        out = self._ensemble.predict(cells, positions, numbers, batch, threads)

        def floats(name):
            return np.array([np.nan if v is None else v for v in out[name]], dtype=float)

        return Prediction(
            mean=np.array(out["mean"], dtype=float).reshape(len(items), 3, 3),
            spread=np.array(out["spread"], dtype=float).reshape(len(items), 3, 3),
            eigenvalues=np.array(out["eigenvalues"], dtype=float).reshape(len(items), 3),
            eps_poly=floats("eps_poly"),
            eps_poly_spread=floats("eps_poly_spread"),
            anisotropy=floats("anisotropy"),
            anisotropy_spread=floats("anisotropy_spread"),
            birefringence=floats("birefringence"),
            unphysical=np.array(out["unphysical"], dtype=bool),
        )


def _as_list(structures) -> list:
    if _is_structure(structures):
        return [structures]
    return list(structures)


def _is_structure(item) -> bool:
    return (hasattr(item, "get_cell") and hasattr(item, "get_positions")) or (
        hasattr(item, "lattice") and hasattr(item, "cart_coords")
    )


def _parts(item, k: int):
    """(cell rows, Cartesian positions, atomic numbers) of an ASE Atoms or a
    pymatgen Structure, as the library reads them from files."""
    if hasattr(item, "get_cell") and hasattr(item, "get_positions"):  # ASE Atoms
        cell = np.asarray(item.get_cell()[:], dtype=float)
        positions = np.asarray(item.get_positions(), dtype=float)
        numbers = [int(z) for z in item.get_atomic_numbers()]
    elif hasattr(item, "lattice") and hasattr(item, "cart_coords"):  # pymatgen Structure
        if not getattr(item, "is_ordered", True):
            error = InputError(f"structure {k}: has partially occupied sites")
            error.location, error.problem = f"structure {k}", "has partially occupied sites"
            error.hint = "order the structure first (e.g. pymatgen's OrderDisorderedStructureTransformation)"
            raise error
        cell = np.asarray(item.lattice.matrix, dtype=float)
        positions = np.asarray(item.cart_coords, dtype=float)
        numbers = [int(site.specie.Z) for site in item]
    else:
        error = InputError(f"structure {k}: is a {type(item).__name__}, not a crystal structure")
        error.location, error.problem = f"structure {k}", f"is a {type(item).__name__}, not a crystal structure"
        error.hint = "give ASE Atoms or pymatgen Structure objects, or a list of them"
        raise error
    return cell.tolist(), positions.reshape(-1, 3).tolist(), numbers


def _overrides(overrides: Mapping[str, Any] | None) -> list[str]:
    """``{"training.epochs": 5}`` → ``["training.epochs=5"]`` (values as YAML)."""
    out = []
    for key, value in (overrides or {}).items():
        text = json.dumps(value) if not isinstance(value, str) else value
        out.append(f"{key}={text}")
    return out


def _study_name(study_file, overrides) -> str:
    """The `name:` of a study file (after overrides), read by the library."""
    return _native.study_name(str(study_file), _overrides(overrides))


def run(
    study_file: str | os.PathLike,
    results: str | os.PathLike = "results",
    overrides: Mapping[str, Any] | None = None,
    accept_changes: bool = False,
) -> Study:
    """Runs (or resumes) a study file as ``study run`` does, with the same
    progress on stderr; Ctrl-C stops it gracefully (running trials
    checkpoint), and running it again resumes. ``overrides`` are ``--set``
    keys: ``{"training.epochs": 5}``. Returns the study."""
    args = ["run", str(study_file), "--results", str(results)]
    for item in _overrides(overrides):
        args += ["--set", item]
    if accept_changes:
        args.append("--accept-changes")
    _native.cli(args)
    return Study(_study_name(study_file, overrides), results)


def screen(
    study: "Study | str",
    structures: Sequence[str | os.PathLike] | str | os.PathLike,
    results: str | os.PathLike = "results",
    *,
    top: int = 50,
    by: str = "anisotropy",
    models: str | int = "auto",
    out: str | os.PathLike | None = None,
    **options: Any,
):
    """Screens structure files with a study's best models, as ``study
    screen`` does (same options: ``min_eps_poly``, ``max_eps_poly``,
    ``physical_only``, ``systems``, ``max_atoms``, ``threads``, ``batch``,
    ``dielectric_key``), writing its files into ``out`` (default
    ``<results>/<study>/screen``). Returns the ranked table as a pandas
    DataFrame when pandas is installed, else the path of the ranked CSV."""
    if isinstance(study, Study):
        name, results = study.name, study.results
    else:
        name = str(study)
    files = [structures] if isinstance(structures, (str, os.PathLike)) else list(structures)
    args = ["screen", name, "--results", str(results), "--top", str(top), "--by", by, "--models", str(models)]
    args += ["--structures", *[str(f) for f in files]]
    if out is not None:
        args += ["--out", str(out)]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, (list, tuple)):
            args += [flag, ",".join(str(v) for v in value)]
        else:
            args += [flag, str(value)]
    _native.cli(args)
    folder = Path(out) if out is not None else Path(_native.study_folder(Path(results), name)) / "screen"
    ranked = folder / "ranked.csv"
    try:
        import pandas as pd
    except ImportError:
        return ranked
    return pd.read_csv(ranked)
