//! Training parity with the Python reference: from the same initial weights,
//! 20 AdamW steps on the same batches of the shared MP data give the
//! reference's batch losses (f64). This pins everything between the data file
//! and the optimiser at once: edges, masses, targets, the model's gradient,
//! AdamW and the loss. `tests/fixtures/reference_training_steps.json` holds
//! the reference's initial parameters and losses (see its `note`).

use std::path::Path;

use anisostudy::data::{load_graphs, CacheOptions, GraphOptions, LoadOptions, Source, Split};
use anisostudy::model::reference::load_reference;
use anisostudy::model::ModelKind;
use anisostudy::train::batch::Batch;
use anisostudy::train::{TrainConfig, TrainData, Trainer};

const DATASET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mp_dielectric_2k.extxyz");
const SPLIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mp_dielectric_2k.split.json");
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/reference_training_steps.json");

#[test]
fn adamw_steps_match_the_reference_losses() {
    if !Path::new(DATASET).exists() || !Path::new(SPLIT).exists() {
        eprintln!("note: {DATASET} or its split file is absent; skipping");
        return;
    }
    let weights = load_reference(Path::new(FIXTURE)).unwrap();
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap();
    let want: Vec<f64> =
        fixture["training"]["losses"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let batch_size = fixture["training"]["batch_size"].as_u64().unwrap() as usize;

    let source = Source::File(DATASET.into());
    let (set, _) =
        load_graphs(&source, &LoadOptions::default(), &GraphOptions::default(), &CacheOptions { dir: None })
            .unwrap();
    let split = Split::from_json_file(Path::new(SPLIT), &set.frames(), set.report.frames_read).unwrap();
    let data = TrainData { graphs: set.graphs, split };
    // The reference trains on the raw targets, without a gradient-norm limit.
    let config = TrainConfig {
        lr: 0.003,
        weight_decay: 0.03,
        batch_size,
        center_targets: false,
        max_grad_norm: None,
        ..Default::default()
    };
    let mut trainer = Trainer::<f64>::new(&weights.config, &config, &data).unwrap();
    trainer.model.params.flat.copy_from(&weights.flat);

    for (step, &reference) in want.iter().enumerate() {
        let positions = &data.split.train[step * batch_size..(step + 1) * batch_size];
        let loss = trainer.train_step(&Batch::new(ModelKind::Equivariant, &data.graphs, positions)).unwrap();
        let rel = (loss - reference).abs() / reference.abs();
        assert!(rel < 1e-9, "step {step}: loss {loss} vs the reference's {reference} (relative {rel:e})");
    }
}
