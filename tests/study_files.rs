//! Every study file shipped in `studies/` loads and validates.

use std::path::Path;

use anisostudy::hpo::{Distribution, SamplerConfig};
use anisostudy::study::{self, Objective};

fn studies_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/studies"))
}

#[test]
fn every_shipped_study_file_validates() {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(studies_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let plan = study::load(&path, &[]).unwrap_or_else(|err| panic!("{err}"));
            assert_eq!(Some(plan.name.as_str()), path.file_stem().and_then(|s| s.to_str()));
            names.push(plan.name);
        }
    }
    names.sort();
    assert_eq!(
        names,
        ["anisonet_hpo", "anisonet_pareto", "command_example", "lmax_sweep", "lmax_sweep_mp", "smoke"]
    );
}

#[test]
fn the_pareto_search_has_two_objectives_a_size_budget_and_multi_objective_tpe() {
    use anisostudy::hpo::Direction;
    let plan = study::load(&studies_dir().join("anisonet_pareto.yaml"), &[]).unwrap();
    assert_eq!(plan.objectives.names(), ["val_anisotropy_mae", "val_eps_poly_mae"]);
    assert_eq!(plan.config.directions, [Direction::Minimize; 2]);
    assert_eq!(plan.constraints.list[0].label(), "num_params ≤ 2000000");
    let [phase] = &plan.config.phases[..] else { panic!("one phase expected") };
    assert!(matches!(&phase.sampler, SamplerConfig::Tpe(c) if c.multivariate));
    assert_eq!(phase.space.len(), 5);
    assert_eq!(plan.config.pruner, Default::default(), "several objectives are not pruned");
}

#[test]
fn the_paper_search_has_its_published_spaces_and_defaults() {
    let plan = study::load(&studies_dir().join("anisonet_hpo.yaml"), &[]).unwrap();
    let [tpe, grid] = &plan.config.phases[..] else { panic!("two phases expected") };
    // The GP sampler, which the quality table finds better for this budget and space.
    assert!(matches!(&tpe.sampler, SamplerConfig::Gp(c) if c.n_startup_trials == 10));
    assert_eq!(tpe.n_trials, Some(100));
    assert_eq!(tpe.space.params["lr"], Distribution::Float { low: 1e-4, high: 0.5, log: true, step: None });
    assert_eq!(tpe.space.params["em_dim"], Distribution::Int { low: 8, high: 96, log: false, step: 1 });
    let SamplerConfig::Grid(spec) = &grid.sampler else { panic!("grid expected") };
    assert_eq!(spec.axes.len(), 5);
    assert_eq!(grid.space, tpe.space, "the grid inherits the first phase's space");
    let h = &plan.hyperparameters;
    assert_eq!((h.model.em_dim, h.model.layers, h.model.lmax, h.model.mul), (48, 2, 3, 48));
    assert_eq!((h.training.lr, h.training.weight_decay, h.training.batch_size), (0.003, 0.03, 12));
    assert_eq!(plan.objective, Objective::Anisonet { metric: Default::default() });
    assert!(plan.dataset_path().unwrap().ends_with("shared/data/mp_dielectric_2k.extxyz"));
}

#[test]
fn a_sweep_becomes_one_grid_phase_over_its_product() {
    let plan = study::load(&studies_dir().join("lmax_sweep.yaml"), &[]).unwrap();
    let [sweep] = &plan.config.phases[..] else { panic!("one phase expected") };
    assert_eq!(sweep.name, "sweep");
    assert_eq!(sweep.space.len(), 3);
    assert_eq!(sweep.n_trials, None, "every combination: 2 kinds × 5 l_max × 3 seeds");
    assert_eq!(plan.sweep_best_of, None, "the embedded default fixes its hyperparameters");
    assert_eq!(plan.dataset_path(), None, "runs on the embedded synthetic data");
}

#[test]
fn overrides_reach_the_plan() {
    let path = studies_dir().join("smoke.yaml");
    let plan = study::load(&path, &["training.epochs=1".into(), "mode=async".into()]).unwrap();
    assert_eq!(plan.hyperparameters.training.epochs, 1);
    assert_eq!(plan.mode, study::file::Mode::Async);
}

/// The `--set` flags of the small run in `lmax_sweep_mp.yaml`'s comments
/// (and docs/reports.md), read from the file itself so the two cannot drift apart.
fn small_run_overrides(text: &str) -> Vec<String> {
    let command: String = text
        .lines()
        .skip_while(|l| !l.contains("A smaller run"))
        .take_while(|l| l.starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ");
    command
        .split("--set ")
        .skip(1)
        .map(|flag| flag.replace(['#', '\\'], " ").split_whitespace().collect::<Vec<_>>().join(" "))
        .map(|flag| flag.trim_matches('\'').to_owned())
        .collect()
}

#[test]
fn the_real_data_sweep_runs_the_papers_table_at_either_scale() {
    let path = studies_dir().join("lmax_sweep_mp.yaml");
    let plan = study::load(&path, &[]).unwrap();
    let [sweep] = &plan.config.phases[..] else { panic!("one phase expected") };
    let cells: usize = sweep.space.params.values().map(|d| d.n_values().unwrap() as usize).product();
    assert_eq!(cells, 2 * 5 * 3, "kind × l_max 0…4 × 3 seeds");
    let h = &plan.hyperparameters;
    assert_eq!((h.model.em_dim, h.model.layers, h.model.mul, h.training.epochs), (48, 2, 48, 120));
    assert!(plan.dataset_path().unwrap().ends_with("mp_dielectric.extxyz"));

    let overrides = small_run_overrides(&std::fs::read_to_string(&path).unwrap());
    assert_eq!(overrides.len(), 12, "{overrides:?}");
    let small = study::load(&path, &overrides).unwrap_or_else(|err| panic!("{err}"));
    let [sweep] = &small.config.phases[..] else { panic!("one phase expected") };
    let cells: usize = sweep.space.params.values().map(|d| d.n_values().unwrap() as usize).product();
    assert_eq!(cells, 2 * 5 * 3, "the whole table");
    assert!(small.dataset_path().unwrap().ends_with("shared/data/mp_dielectric_2k.extxyz"));
    assert_eq!((small.hyperparameters.model.em_dim, small.hyperparameters.training.epochs), (16, 60));
}
