//! A catalogue of malformed study files: each must be refused with a message
//! that names the line (or the `--set` flag), the problem and a hint.

use std::path::Path;

use anisostudy::study::load_str;

/// A valid study; cases edit it.
const VALID: &str = "\
name: case
seed: 1
dataset:
  synthetic: {size: 20}
training:
  epochs: 2
phases:
  - name: tpe
    sampler:
      type: tpe
    n_trials: 4
    space:
      lr: {type: float, low: 0.001, high: 0.1, log: true}
      layers: {type: int, low: 1, high: 3}
";

struct Case {
    what: &'static str,
    source: String,
    overrides: &'static [&'static str],
    /// Fragments the whole message (location, problem, hint) must contain.
    expect: &'static [&'static str],
    /// `:line:` in the location, or the flag for `--set` errors.
    location: &'static str,
}

fn edit(from: &str, to: &str) -> String {
    assert!(VALID.contains(from), "the base file has no `{from}`");
    VALID.replacen(from, to, 1)
}

fn case(what: &'static str, source: String, expect: &'static [&'static str], location: &'static str) -> Case {
    Case { what, source, overrides: &[], expect, location }
}

fn catalogue() -> Vec<Case> {
    vec![
        case(
            "tab in the indentation",
            edit("  epochs: 2", "\tepochs: 2"),
            &["tab character in the indentation", "replace the tab with spaces"],
            "case.yaml:6:1",
        ),
        case(
            "key indented under a scalar",
            edit("seed: 1\n", "seed: 1\n  extra: 2\n"),
            &["YAML syntax error", "check the indentation"],
            "case.yaml:3:",
        ),
        case(
            "unknown top-level key",
            edit("seed: 1", "seed: 1\nphasez: []"),
            &["unknown key `phasez`", "did you mean `phases`?"],
            "case.yaml:3:",
        ),
        case(
            "unknown nested key with a typo",
            edit("  epochs: 2", "  epochs: 2\n  weight_decya: 0.1"),
            &["`training`: unknown key `weight_decya`", "did you mean `weight_decay`?"],
            "case.yaml:7:",
        ),
        case(
            "wrong type",
            edit("epochs: 2", "epochs: many"),
            &["`training.epochs`: invalid type: string \"many\"", "a whole number"],
            "case.yaml:6:",
        ),
        case(
            "low above high",
            edit("low: 0.001, high: 0.1", "low: 0.1, high: 0.001"),
            &["`phases[0].space.lr`: low 0.1 must be below high 0.001", "swap the bounds"],
            "case.yaml:13:",
        ),
        case(
            "log scale with low ≤ 0",
            edit("low: 0.001, high: 0.1", "low: 0.0, high: 0.1"),
            &["log-scale range needs low > 0", "drop `log`"],
            "case.yaml:13:",
        ),
        case(
            "empty choices",
            edit("layers: {type: int, low: 1, high: 3}", "layers: {type: categorical, choices: []}"),
            &["`phases[0].space.layers`: has no choices", "list at least one choice"],
            "case.yaml:14:",
        ),
        case(
            "step larger than the range",
            edit("layers: {type: int, low: 1, high: 3}", "layers: {type: int, low: 1, high: 3, step: 5}"),
            &["step 5 is larger than the range [1, 3]"],
            "case.yaml:14:",
        ),
        case(
            "duplicate phase names",
            format!("{VALID}  - name: tpe\n    sampler: {{type: random}}\n    n_trials: 2\n    space:\n      lr: {{type: float, low: 0.01, high: 0.1}}\n"),
            &["phase name `tpe` is also used by phase 0", "give every phase its own name"],
            "case.yaml:15:",
        ),
        case(
            "unknown sampler",
            edit("type: tpe", "type: tpx"),
            &["unknown value `tpx`", "did you mean `tpe`?", "grid_around_best"],
            "case.yaml:10:",
        ),
        case(
            "grid around the best as the first phase",
            edit("type: tpe", "type: grid_around_best\n      axes: {lr: best}"),
            &["grid_around_best cannot be the first phase", "put a tpe or random phase before it"],
            "case.yaml:10:",
        ),
        case(
            "bad device string",
            format!("{VALID}resources:\n  devices: [cpu, gpu:0]\n"),
            &["`resources.devices[1]`: `gpu:0` is not a device", "[cuda:0, cuda:1]"],
            "case.yaml:16:",
        ),
        case(
            "l_max out of range",
            edit("  epochs: 2", "  epochs: 2\nmodel:\n  lmax: 7"),
            &["`model.lmax`: lmax 7 is out of range 0..=4"],
            "case.yaml:8:",
        ),
        case(
            "gradient limit not positive",
            edit("  epochs: 2", "  epochs: 2\n  max_grad_norm: -5"),
            &["`training.max_grad_norm`: -5 must be positive"],
            "case.yaml:7:",
        ),
        case(
            "centring searched over numbers",
            edit("layers: {type: int, low: 1, high: 3}", "center_targets: {type: categorical, choices: [0, 1]}"),
            &["`0` is not true or false"],
            "case.yaml:14:",
        ),
        case(
            "searched l_max out of range",
            edit("layers: {type: int, low: 1, high: 3}", "lmax: {type: int, low: 0, high: 6}"),
            &["lmax 6 is out of range 0..=4"],
            "case.yaml:14:",
        ),
        case(
            "a radial basis the model refuses",
            edit("  epochs: 2", "  epochs: 2\nmodel:\n  num_basis: 1"),
            &["`model.num_basis`: must be at least 2", "docs/study-file.md"],
            "case.yaml:8:",
        ),
        case(
            "a searched radial basis the model refuses",
            edit("layers: {type: int, low: 1, high: 3}", "num_basis: {type: int, low: 1, high: 8}"),
            &["must be at least 2", "integer ≥ 2"],
            "case.yaml:14:",
        ),
        case(
            "a searched l_max the fixed kind cannot take",
            edit("layers: {type: int, low: 1, high: 3}", "lmax: {type: int, low: 0, high: 3}"),
            &["lmax = 0 with the fixed kind", "cannot produce the 2e part"],
            "case.yaml:14:",
        ),
        case(
            "learning rate and weight decay that cannot go together",
            edit("  epochs: 2", "  epochs: 2\n  weight_decay: 20"),
            &["lr = 0.1 with the fixed weight_decay", "lr × weight_decay must stay below 1"],
            "case.yaml:14:",
        ),
        case(
            "a misspelt sampler option",
            edit("type: tpe", "type: tpe\n      n_startup_trial: 3"),
            &["unknown key `n_startup_trial`", "did you mean `n_startup_trials`?"],
            "case.yaml:11:",
        ),
        case(
            "an option of no pruner",
            format!("{VALID}pruner:\n  type: none\n  n_warmup_steps: 3\n"),
            &["`n_warmup_steps` is an option of the median pruner", "set `type: median`"],
            "case.yaml:17:",
        ),
        case("missing name", edit("name: case\n", ""), &["missing key `name`", "add `name:`"], "case.yaml:1:"),
        case(
            "neither phases nor sweep",
            VALID[..VALID.find("phases:").unwrap()].to_owned(),
            &["neither `phases` nor a `sweep`", "add `phases:`"],
            "case.yaml",
        ),
        case(
            "unknown metric",
            format!("{VALID}objective:\n  metric: val_mse\n"),
            &["unknown value `val_mse`", "val_loss"],
            "case.yaml:16:",
        ),
        case(
            "metric and command together",
            format!("{VALID}objective:\n  metric: val_loss\n  command: python train.py\n"),
            &["either a `metric` or a `command`"],
            "case.yaml:17:",
        ),
        case(
            "unknown placeholder in the command",
            format!(
                "{}objective:\n  command: python train.py --lr {{lrr}}\n",
                edit("dataset:\n  synthetic: {size: 20}\n", "")
            ),
            &["unknown placeholder(s) {lrr}", "did you mean {lr}?"],
            "case.yaml:14:",
        ),
        case(
            "objective list naming no recorded metric",
            format!("{VALID}objective:\n  - {{metric: val_eps_poly_mae}}\n  - {{metric: params}}\n"),
            &["records no metric `params` to optimise", "did you mean `num_params`?"],
            "case.yaml:17:",
        ),
        case(
            "objective list of one",
            format!("{VALID}objective:\n  - {{metric: val_eps_poly_mae}}\n"),
            &["a list of objectives needs two or more", "write one objective as a map"],
            "case.yaml:15:",
        ),
        case(
            "the same objective twice",
            format!("{VALID}objective:\n  - {{metric: num_params}}\n  - {{metric: num_params, direction: maximize}}\n"),
            &["`num_params` is listed twice"],
            "case.yaml:17:",
        ),
        case(
            "a measured objective in a deterministic study",
            format!("{VALID}mode: deterministic\nobjective:\n  - {{metric: val_loss}}\n  - {{metric: train_seconds}}\n"),
            &["`train_seconds` is measured", "cannot optimise it", "num_params"],
            "case.yaml:18:",
        ),
        case(
            "directions without a command",
            format!("{VALID}objective:\n  directions: [minimize, minimize]\n"),
            &["`directions` belongs to a `command`", "list the metrics"],
            "case.yaml:16:",
        ),
        case(
            "names that do not match the directions",
            format!(
                "{}objective:\n  command: python train.py --lr {{lr}}\n  directions: [minimize, minimize]\n  names: [error]\n",
                edit("dataset:\n  synthetic: {size: 20}\n", "")
            ),
            &["gives 1 names for 2 directions", "name every objective"],
            "case.yaml:16:",
        ),
        case(
            "pruning several objectives",
            format!("{VALID}objective:\n  - {{metric: val_loss}}\n  - {{metric: num_params}}\npruner: {{type: median}}\n"),
            &["cannot prune a study with several objectives", "remove `pruner`"],
            "case.yaml:18:",
        ),
        case(
            "the gp sampler with several objectives",
            format!("{}objective:\n  - {{metric: val_loss}}\n  - {{metric: num_params}}\n", edit("type: tpe", "type: gp")),
            &["GP sampler, which handles one objective", "nsga2"],
            "case.yaml:",
        ),
        case(
            "a grid around the best after several objectives without a pick",
            edit(
                "      layers: {type: int, low: 1, high: 3}\n",
                "      layers: {type: int, low: 1, high: 3}\n  - name: around\n    sampler: {type: grid_around_best, axes: {lr: best}}\nobjective:\n  - {metric: val_loss}\n  - {metric: num_params}\n",
            ),
            &["a Pareto set, not one best trial", "pick: knee"],
            "case.yaml:",
        ),
        case(
            "a pick of an unknown objective",
            edit(
                "      layers: {type: int, low: 1, high: 3}\n",
                "      layers: {type: int, low: 1, high: 3}\n  - name: around\n    sampler: {type: grid_around_best, pick: {objective: size}, axes: {lr: best}}\nobjective:\n  - {metric: val_loss}\n  - {metric: num_params}\n",
            ),
            &["the study has no objective `size`", "val_loss, num_params"],
            "case.yaml:16:",
        ),
        case(
            "a pick with one objective",
            edit(
                "      layers: {type: int, low: 1, high: 3}\n",
                "      layers: {type: int, low: 1, high: 3}\n  - name: around\n    sampler: {type: grid_around_best, pick: knee, axes: {lr: best}}\n",
            ),
            &["this study has one objective", "remove `pick`"],
            "case.yaml:16:",
        ),
        case(
            "nsga2 with a population of one",
            edit("type: tpe", "type: nsga2\n      population_size: 1"),
            &["population_size must be at least 2", "two parents"],
            "case.yaml:",
        ),
        case(
            "tpe without a budget",
            edit("    n_trials: 4\n", ""),
            &["`phases[0]`: has no `n_trials`", "n_trials: 60"],
            "case.yaml:8:",
        ),
        case(
            "not a hyperparameter",
            edit("layers: {type: int, low: 1, high: 3}", "weight_decai: {type: float, low: 0.0, high: 0.1}"),
            &["`weight_decai` is not a hyperparameter", "did you mean `weight_decay`?"],
            "case.yaml:14:",
        ),
        case(
            "split ratios not adding up to 1",
            edit("  synthetic: {size: 20}", "  synthetic: {size: 20}\n  split: {train: 0.8, valid: 0.1, test: 0.2}"),
            &["ratios add up to 1.1"],
            "case.yaml:5:",
        ),
        case(
            "an sbatch option the trial-jobs executor sets",
            format!("{VALID}resources:\n  executor: slurm-jobs\n  slurm: {{sbatch_args: [--exclusive, -pgpu]}}\n"),
            &["`resources.slurm.sbatch_args[1]`: `-pgpu` is set by the executor", "resources.slurm.partition"],
            "case.yaml:17:",
        ),
        case(
            "a job-step setting with the trial-jobs executor",
            format!("{VALID}resources:\n  executor: slurm-jobs\n  slurm: {{srun_args: [--exclusive]}}\n"),
            &["`resources.slurm.srun_args`: is a setting of job steps", "`sbatch_args`"],
            "case.yaml:17:",
        ),
        case(
            "a trial-job setting with the job-step executor",
            format!("{VALID}resources:\n  executor: slurm\n  slurm: {{max_jobs: 8}}\n"),
            &["`resources.slurm.max_jobs`: is a setting of trial jobs", "`executor: slurm-jobs`"],
            "case.yaml:17:",
        ),
        case(
            "no trial jobs at all",
            format!("{VALID}resources:\n  executor: slurm-jobs\n  slurm: {{max_jobs: 0}}\n"),
            &["`resources.slurm.max_jobs`: must be at least 1"],
            "case.yaml:17:",
        ),
        case(
            "several GPUs for a trial that shares one",
            format!("{VALID}resources:\n  executor: slurm-jobs\n  slurm: {{trials_per_gpu: 2, gpus_per_trial: 2}}\n"),
            &["`resources.slurm.gpus_per_trial`: 2 GPUs per trial, but with trials_per_gpu 2"],
            "case.yaml:17:",
        ),
        case(
            "unreadable timeout",
            format!("{VALID}resources:\n  trial_timeout: 2days\n"),
            &["unknown unit `days`", "`30m`"],
            "case.yaml:16:",
        ),
        case(
            "option of another sampler",
            edit("type: tpe", "type: random\n      multivariate: true"),
            &["`multivariate` is an option of the tpe sampler", "set `type: tpe`"],
            "case.yaml:11:",
        ),
        case(
            "option of the gp sampler on a tpe phase",
            edit("type: tpe", "type: tpe\n      deterministic_objective: true"),
            &["`deterministic_objective` is an option of the gp sampler", "set `type: gp`"],
            "case.yaml:11:",
        ),
        case(
            "a GP search with a single local search",
            edit("type: tpe", "type: gp\n      n_local_search: 1"),
            &["n_local_search must be at least 2", "one search starts from the best sample"],
            "case.yaml:9:",
        ),
        case(
            "a condition on an unknown parameter",
            edit("      layers: {type: int, low: 1, high: 3}", "      layers: {type: int, low: 1, high: 3, when: {optimiser: sgd}}"),
            &["depends on `optimiser`, which is no parameter", "the parameters are layers, lr"],
            "case.yaml:14:",
        ),
        case(
            "a condition on a value the parent never takes",
            edit("      layers: {type: int, low: 1, high: 3}", "      layers: {type: int, low: 1, high: 3, when: {lr: 0.5}}"),
            &["`lr` never takes the value 0.5", "use values of `lr`'s domain"],
            "case.yaml:14:",
        ),
        case(
            "conditions in a circle",
            edit(
                "      lr: {type: float, low: 0.001, high: 0.1, log: true}\n      layers: {type: int, low: 1, high: 3}",
                "      lr: {type: float, low: 0.001, high: 0.1, log: true, when: {layers: 2}}\n      layers: {type: int, low: 1, high: 3, when: {lr: 0.01}}",
            ),
            &["depend on each other in a circle", "may name only parameters that do not depend on it"],
            "case.yaml:14:",
        ),
        case(
            "option of another pruner",
            format!("{VALID}pruner:\n  type: median\n  reduction_factor: 3\n"),
            &["`reduction_factor` is an option of the asha and hyperband pruners", "`type: asha` or `type: hyperband`"],
            "case.yaml:17:",
        ),
        case(
            "hyperband's maximum below its minimum",
            format!("{VALID}pruner:\n  type: hyperband\n  min_resource: 9\n  max_resource: 3\n"),
            &["max_resource must be at least min_resource", "epochs"],
            "case.yaml:18:",
        ),
        case(
            "hyperband's maximum is a word other than auto",
            format!("{VALID}pruner:\n  type: hyperband\n  max_resource: all\n"),
            &["`all` is neither a number of steps nor `auto`", "e.g. 100"],
            "case.yaml:17:",
        ),
        case(
            "built-in objective without data",
            edit("dataset:\n  synthetic: {size: 20}\n", ""),
            &["the built-in objective needs a `dataset`", "synthetic"],
            "case.yaml",
        ),
        case(
            "constraint on a metric the trainer does not record",
            format!("{VALID}constraints:\n  - {{metric: params, max: 2.0e6}}\n"),
            &["records no metric `params` to bound", "did you mean `num_params`?"],
            "case.yaml:16:",
        ),
        case(
            "constraint on a test metric",
            format!("{VALID}constraints:\n  - {{metric: test_loss, max: 1}}\n"),
            &["records no metric `test_loss`", "the search never looks at the test split"],
            "case.yaml:16:",
        ),
        case(
            "constraint with two bounds",
            format!("{VALID}constraints:\n  - {{metric: num_params, max: 2.0e6, min: 1.0e5}}\n"),
            &["a constraint has one bound", "write a range as two constraints"],
            "case.yaml:16:",
        ),
        case(
            "constraint without a bound",
            format!("{VALID}constraints:\n  - {{metric: num_params}}\n"),
            &["the constraint on `num_params` has no bound", "add `max: …` or `min: …`"],
            "case.yaml:16:",
        ),
        case(
            "reported constraint with the built-in objective",
            format!("{VALID}constraints:\n  - {{name: memory}}\n"),
            &["the built-in objective reports no constraint values", "{metric: num_params, max: 2.0e6}"],
            "case.yaml:16:",
        ),
        case(
            "constraint with both a metric and a name",
            format!("{VALID}constraints:\n  - {{metric: num_params, max: 1, name: memory}}\n"),
            &["a `metric` or names a reported value, not both", "{name: memory}"],
            "case.yaml:16:",
        ),
        case(
            "deterministic study bounding a measured cost",
            format!("{VALID}constraints:\n  - {{metric: train_seconds, max: 600}}\nmode: deterministic\n"),
            &["`train_seconds` is measured, and differs from run to run", "`mode: async`"],
            "case.yaml:16:",
        ),
        case(
            "failures with an unknown policy",
            format!("{VALID}failures: retry\n"),
            &["unknown value `retry`", "`ignore`, `infeasible`"],
            "case.yaml:15:",
        ),
        case("empty file", String::new(), &["the study file is empty", "studies/smoke.yaml"], "case.yaml"),
        Case {
            what: "--set into a scalar",
            source: VALID.to_owned(),
            overrides: &["name.first=x"],
            expect: &["`name` is a string, so it has no key `first`"],
            location: "--set name.first=x",
        },
        Case {
            what: "--set with a value of the wrong type",
            source: VALID.to_owned(),
            overrides: &["training.epochs=abc"],
            expect: &["`training.epochs`: invalid type: string \"abc\"", "a whole number"],
            location: "--set training.epochs=abc",
        },
        Case {
            what: "--set of an unknown key",
            source: VALID.to_owned(),
            overrides: &["training.epochz=1"],
            expect: &["unknown key `epochz`", "did you mean `epochs`?"],
            location: "--set training.epochz=1",
        },
        Case {
            what: "--set without a value",
            source: VALID.to_owned(),
            overrides: &["training.epochs"],
            expect: &["expected `key.path=value`"],
            location: "--set training.epochs",
        },
        Case {
            what: "--set of an out-of-range index",
            source: VALID.to_owned(),
            overrides: &["phases[3].n_trials=2"],
            expect: &["`phases` has 1 entries, there is no entry [3]"],
            location: "--set phases[3].n_trials=2",
        },
    ]
}

#[test]
fn every_malformed_file_is_refused_with_location_problem_and_hint() {
    let cases = catalogue();
    assert!(cases.len() >= 15);
    let mut failures = Vec::new();
    for case in &cases {
        let overrides: Vec<String> = case.overrides.iter().map(|s| s.to_string()).collect();
        match load_str(&case.source, "case.yaml", Path::new("."), &overrides) {
            Ok(_) => failures.push(format!("{}: accepted", case.what)),
            Err(err) => {
                let message = err.to_string();
                println!("{}:\n{message}\n", case.what);
                let location_ok = if case.location.contains(':') && !case.location.starts_with("--set") {
                    err.location.starts_with(case.location)
                } else {
                    err.location == case.location
                };
                if !location_ok {
                    failures.push(format!(
                        "{}: location `{}`, expected `{}`",
                        case.what, err.location, case.location
                    ));
                }
                for fragment in case.expect {
                    if !message.contains(fragment) {
                        failures.push(format!("{}: `{fragment}` missing from:\n{message}", case.what));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_valid_base_file_loads_and_overrides_apply() {
    let plan = load_str(VALID, "case.yaml", Path::new("."), &[]).unwrap();
    assert_eq!(plan.config.phases.len(), 1);
    assert_eq!(plan.hyperparameters.training.epochs, 2);
    // Combinations of two varied values are the trials' to report: an
    // ablation of l_max 0…4 over both kinds runs.
    let sweep = format!(
        "{}sweep:\n  values:\n    kind: [equivariant, scalar]\n    lmax: [0, 1, 2]\n",
        &VALID[..VALID.find("phases:").unwrap()]
    );
    assert!(load_str(&sweep, "case.yaml", Path::new("."), &[]).is_ok());
    let overrides = vec!["training.epochs=1".to_owned(), "phases[0].n_trials=9".to_owned()];
    let plan = load_str(VALID, "case.yaml", Path::new("."), &overrides).unwrap();
    assert_eq!(plan.hyperparameters.training.epochs, 1);
    assert_eq!(plan.config.phases[0].n_trials, Some(9));
}

/// A value the model refuses stops `study run` with exit 2 before anything
/// runs or is written, not as a study of failed trials.
#[test]
fn study_run_refuses_a_value_the_model_refuses_before_any_trial() {
    let results = tempfile::tempdir().unwrap();
    let smoke = concat!(env!("CARGO_MANIFEST_DIR"), "/studies/smoke.yaml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_study"))
        .args(["run", smoke, "--set", "model.num_basis=1", "--results"])
        .arg(results.path())
        .output()
        .expect("the study binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--set model.num_basis=1") && stderr.contains("must be at least 2"), "{stderr}");
    assert_eq!(std::fs::read_dir(results.path()).unwrap().count(), 0, "nothing written");
}
