"""Predictions of ASE and pymatgen structures equal `study predict` to the
last digit; a study's ensemble and `study screen` from Python."""

import json

import numpy as np
import pytest
from ase.io import read
from pymatgen.io.ase import AseAtomsAdaptor

import anisostudy
from conftest import study


def predicted(smoke, path, *more):
    out = study("predict", "--study", "smoke", "--results", smoke.results, "--structures", path, *more)
    return json.loads(out.stdout)


def test_ase_atoms_give_study_predicts_numbers_bit_for_bit(smoke, structures):
    atoms = read(structures, ":")
    reference = predicted(smoke, structures, "--best")
    prediction = anisostudy.Predictor.from_study(smoke, models="best").predict(atoms)
    assert prediction.mean.shape == (20, 3, 3)
    assert np.array_equal(prediction.mean, np.array([p["tensor"] for p in reference]))
    assert np.array_equal(prediction.eps_poly, np.array([p["eps_poly"] for p in reference]))
    assert np.array_equal(prediction.spread, np.zeros((20, 3, 3))), "one model has no spread"
    # One structure alone, as in a notebook, gives the same numbers.
    alone = anisostudy.Predictor.from_study(smoke, models="best").predict(atoms[3])
    assert np.array_equal(alone.mean[0], prediction.mean[3])


def test_pymatgen_structures_give_study_predicts_numbers_bit_for_bit(smoke, structures, tmp_path):
    pmg = [AseAtomsAdaptor.get_structure(a) for a in read(structures, ":")]
    path = tmp_path / "structures.json"
    path.write_text("[" + ",".join(s.to(fmt="json") for s in pmg) + "]")
    reference = predicted(smoke, path, "--best")
    prediction = anisostudy.Predictor.from_study(smoke, models="best").predict(pmg)
    assert np.array_equal(prediction.mean, np.array([p["tensor"] for p in reference]))


def test_a_checkpoint_predicts_as_its_trial(smoke, structures):
    trial = smoke.trials[1]
    checkpoint = smoke.results / "smoke" / "trials" / str(trial.number) / "checkpoint"
    reference = predicted(smoke, structures, "--trial", trial.number)
    prediction = anisostudy.Predictor.from_checkpoint(checkpoint).predict(read(structures, ":"), threads=2, batch=5)
    assert np.array_equal(prediction.mean, np.array([p["tensor"] for p in reference]))


def test_an_ensemble_gives_the_mean_and_spread_of_its_members(smoke, structures):
    atoms = read(structures, ":")
    ensemble = anisostudy.Predictor.from_study(smoke, models=2)
    assert len(ensemble.members) == 2
    singles = [
        anisostudy.Predictor.from_checkpoint(smoke.results / "smoke" / "trials" / str(n) / "checkpoint").predict(atoms)
        for n, _, _ in ensemble.members
    ]
    prediction = ensemble.predict(atoms)
    np.testing.assert_allclose(prediction.mean, (singles[0].mean + singles[1].mean) / 2, rtol=1e-12)
    np.testing.assert_allclose(prediction.spread, np.abs(singles[0].mean - singles[1].mean) / np.sqrt(2), rtol=1e-9, atol=1e-12)


def test_screen_mirrors_study_screen(smoke, structures, tmp_path):
    ranked = anisostudy.screen(smoke, [structures], top=5, models="best", out=tmp_path / "screen", threads=2)
    assert len(ranked) == 20
    assert (tmp_path / "screen" / "report.md").is_file()
    cli = tmp_path / "cli"
    study("screen", "smoke", "--results", smoke.results, "--structures", structures, "--top", 5,
          "--models", "best", "--out", cli, "--threads", 2)
    assert (cli / "ranked.csv").read_text() == (tmp_path / "screen" / "ranked.csv").read_text()


def test_bad_structures_raise_value_errors_naming_the_structure(smoke):
    from ase import Atoms

    predictor = anisostudy.Predictor.from_study(smoke, models="best")
    overlapping = Atoms("Si2", positions=[[0, 0, 0], [0.1, 0, 0]], cell=np.eye(3) * 5, pbc=True)
    fine = Atoms("Si", positions=[[0, 0, 0]], cell=np.eye(3) * 5, pbc=True)
    with pytest.raises(anisostudy.InputError) as caught:
        predictor.predict([fine, overlapping])
    assert caught.value.location == "structure 1"
    with pytest.raises(anisostudy.InputError, match="not a crystal structure"):
        predictor.predict(["Si"])
    with pytest.raises(anisostudy.InputError, match="holds no trained model"):
        anisostudy.Predictor.from_checkpoint(smoke.results)
    with pytest.raises(anisostudy.InputError, match="models"):
        anisostudy.Predictor.from_study(smoke, models="most")
