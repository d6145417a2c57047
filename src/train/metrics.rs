//! Evaluation metrics on a split: the loss, ε_poly and a_r MAE overall and per
//! crystal system, and the number of unphysical predictions.

use serde::{Deserialize, Serialize};

use super::batch::loss_components;
use crate::crystal::symmetry::CrystalSystem;
use crate::data::Graph;
use crate::e3::cartesian::irreps_to_cartesian;
use crate::e3::sym3::{anisotropy_ratio, eps_poly};
use crate::model::{is_unphysical, ModelKind};

/// The metrics a built-in trial records that a study's constraints may
/// bound: its validation errors and its costs. Test metrics are left out on
/// purpose: the search never sees the test split.
pub const CONSTRAINABLE_METRICS: &[&str] = &[
    "val_loss",
    "val_eps_poly_mae",
    "val_anisotropy_mae",
    "val_unphysical",
    "num_params",
    "train_seconds",
    "peak_memory_gb",
    "inference_edges_per_s",
    "epochs_run",
];

/// The recorded metrics that are measurements of the run rather than of
/// the model: they differ between runs of the same trial, so determinism
/// (the same trials, values and errors for a seed) leaves them out.
pub const MEASURED_METRICS: &[&str] = &["train_seconds", "peak_memory_gb", "inference_edges_per_s"];

/// Errors of one group of structures (a whole split or one crystal system).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupMetrics {
    pub count: usize,
    /// Mean absolute error of ε_poly (mean eigenvalue); `None` for an empty group.
    pub eps_poly_mae: Option<f64>,
    /// Mean absolute error of the anisotropy ratio a_r = λ_max / λ_min.
    pub anisotropy_mae: Option<f64>,
    /// Predictions whose smallest eigenvalue is below 1.
    pub unphysical: usize,
}

/// A split's metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// MSE over the six loss components (irreps 0e+2e, or Cartesian for the scalar model).
    pub loss: f64,
    #[serde(flatten)]
    pub overall: GroupMetrics,
    /// One entry per crystal system, in the order of [`CrystalSystem::ALL`].
    pub by_system: Vec<(String, GroupMetrics)>,
}

#[derive(Default)]
struct Sums {
    count: usize,
    eps: f64,
    ar: f64,
    unphysical: usize,
}

impl Sums {
    fn add(&mut self, eps: f64, ar: f64, unphysical: bool) {
        self.count += 1;
        self.eps += eps;
        self.ar += ar;
        self.unphysical += usize::from(unphysical);
    }

    fn finish(&self) -> GroupMetrics {
        let mean = |s: f64| (self.count > 0).then(|| s / self.count as f64);
        GroupMetrics {
            count: self.count,
            eps_poly_mae: mean(self.eps),
            anisotropy_mae: mean(self.ar),
            unphysical: self.unphysical,
        }
    }
}

impl Metrics {
    /// Metrics of `predictions` (ε as irreps 0e+2e, one per position) against the
    /// targets of `graphs[positions[k]]`. Sums run in position order, so the
    /// result does not depend on how the predictions were batched or threaded.
    pub fn compute(
        kind: ModelKind,
        graphs: &[Graph],
        positions: &[usize],
        predictions: &[[f64; 6]],
    ) -> Metrics {
        assert_eq!(positions.len(), predictions.len(), "one prediction per structure");
        let mut overall = Sums::default();
        let mut systems: Vec<Sums> = CrystalSystem::ALL.iter().map(|_| Sums::default()).collect();
        let mut squared = 0.0;
        for (&k, pred) in positions.iter().zip(predictions) {
            let graph = &graphs[k];
            let p = loss_components(kind, pred);
            let t = loss_components(kind, &graph.target_irreps);
            squared += p.iter().zip(&t).map(|(a, b)| (a - b) * (a - b)).sum::<f64>();
            let pc = irreps_to_cartesian(pred);
            let tc = &graph.target_cartesian;
            let eps = (eps_poly(&pc) - eps_poly(tc)).abs();
            let ar = (anisotropy_ratio(&pc) - anisotropy_ratio(tc)).abs();
            let bad = is_unphysical(pred);
            overall.add(eps, ar, bad);
            let s = CrystalSystem::ALL.iter().position(|&c| c == graph.crystal_system).expect("one of seven");
            systems[s].add(eps, ar, bad);
        }
        let n = positions.len();
        Metrics {
            loss: if n > 0 { squared / (6 * n) as f64 } else { f64::NAN },
            overall: overall.finish(),
            by_system: CrystalSystem::ALL
                .iter()
                .zip(&systems)
                .map(|(c, s)| (c.name().to_string(), s.finish()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e3::cartesian::cartesian_to_irreps;

    fn graph(t: [[f64; 3]; 3], system: CrystalSystem) -> Graph {
        Graph {
            frame: 0,
            id: None,
            numbers: vec![1],
            edge_src: vec![0],
            edge_dst: vec![0],
            edge_vec: vec![[0.0; 3]],
            target_cartesian: t,
            target_irreps: cartesian_to_irreps(&t),
            crystal_system: system,
        }
    }

    #[test]
    fn maes_overall_and_per_system() {
        let diag = |a: f64, b: f64, c: f64| [[a, 0.0, 0.0], [0.0, b, 0.0], [0.0, 0.0, c]];
        let graphs = vec![
            graph(diag(2.0, 2.0, 2.0), CrystalSystem::Cubic),
            graph(diag(2.0, 2.0, 4.0), CrystalSystem::Tetragonal),
        ];
        let preds = [cartesian_to_irreps(&diag(3.0, 3.0, 3.0)), cartesian_to_irreps(&diag(0.5, 2.0, 4.0))];
        let m = Metrics::compute(ModelKind::Equivariant, &graphs, &[0, 1], &preds);
        let close = |a: Option<f64>, b: f64| assert!((a.unwrap() - b).abs() < 1e-12, "{a:?} vs {b}");
        // ε_poly errors 1 and 0.5; a_r errors 0 and |8 − 2| = 6.
        close(m.overall.eps_poly_mae, 0.75);
        close(m.overall.anisotropy_mae, 3.0);
        assert_eq!((m.overall.count, m.overall.unphysical), (2, 1));
        let cubic = &m.by_system.iter().find(|(n, _)| n == "cubic").unwrap().1;
        close(cubic.eps_poly_mae, 1.0);
        let tetragonal = &m.by_system.iter().find(|(n, _)| n == "tetragonal").unwrap().1;
        assert_eq!(tetragonal.unphysical, 1);
        assert_eq!(m.by_system.len(), 7);
        assert_eq!(m.by_system.iter().find(|(n, _)| n == "triclinic").unwrap().1.eps_poly_mae, None);
        // Loss: MSE of the irreps.
        let want: f64 = preds
            .iter()
            .zip(&graphs)
            .flat_map(|(p, g)| {
                p.iter().zip(g.target_irreps).map(|(a, b)| (a - b) * (a - b)).collect::<Vec<_>>()
            })
            .sum::<f64>()
            / 12.0;
        assert!((m.loss - want).abs() < 1e-12);
    }
}
