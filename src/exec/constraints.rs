//! A trial's constraint values, from what it reported.
//!
//! Constraints follow Optuna's convention: one value per constraint,
//! feasible when ≤ 0. A bound on a metric becomes `metric − max` (or
//! `min − metric`), so the value also says by how much it is exceeded; a
//! `command` may report values of its own on its result line
//! (`{"objective": x, "constraints": [c1, c2]}`). The controller records them
//! with the trial before telling it, so every sampler and report sees them.
//!
//! A study may also count trials that failed for resources (out of memory,
//! a time limit) as infeasible, with a violation larger than any measured
//! one: the sampler then learns to avoid the settings that cannot run,
//! where otherwise it would ignore such failures and propose their
//! neighbours again.

use std::collections::BTreeMap;

/// The violation of every constraint of a trial that failed for resources:
/// larger than any measured violation, finite so that it is stored as is.
pub const RESOURCE_FAILURE_VIOLATION: f64 = 1e300;

/// Which side of a metric's bound is feasible.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// Feasible when the metric is at most this.
    Max(f64),
    /// Feasible when the metric is at least this.
    Min(f64),
}

/// One constraint of a study.
#[derive(Debug, Clone, PartialEq)]
pub enum Constraint {
    /// A bound on a metric the trial records.
    Metric { metric: String, bound: Bound },
    /// A value the trial reports itself; `index` into its reported list.
    Reported { name: String, index: usize },
}

impl Constraint {
    /// How reports and exports name it: `num_params ≤ 2000000`, `memory`.
    pub fn label(&self) -> String {
        match self {
            Constraint::Metric { metric, bound: Bound::Max(max) } => format!("{metric} ≤ {max}"),
            Constraint::Metric { metric, bound: Bound::Min(min) } => format!("{metric} ≥ {min}"),
            Constraint::Reported { name, .. } => name.clone(),
        }
    }
}

/// How a trial ends, as far as its constraint values go.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ending<'a> {
    Complete,
    Pruned,
    /// With the failure's reason.
    Failed(&'a str),
}

/// A study's constraints and what failures for resources count as.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Constraints {
    pub list: Vec<Constraint>,
    /// A trial that failed for resources is infeasible (`failures: infeasible`).
    pub failures_infeasible: bool,
}

impl Constraints {
    /// Whether trials carry constraint values at all.
    pub fn is_active(&self) -> bool {
        !self.list.is_empty() || self.failures_infeasible
    }

    /// How many values a trial reports on its result line.
    pub fn reported(&self) -> usize {
        self.list.iter().filter(|c| matches!(c, Constraint::Reported { .. })).count()
    }

    /// The constraint values of a trial that ran to its end, from its
    /// metrics and the values it reported; `Err` says what is missing.
    pub fn values(
        &self,
        metrics: &BTreeMap<String, f64>,
        reported: Option<&[f64]>,
    ) -> Result<Vec<f64>, String> {
        let reported = reported.unwrap_or_default();
        if reported.len() != self.reported() {
            return Err(match self.reported() {
                0 => format!(
                    "the trial reported {} constraint value(s), but the study declares none to take them; \
                     add `constraints: [{{name: …}}]` entries for them",
                    reported.len()
                ),
                n => format!(
                    "the study declares {n} reported constraint(s), but the trial's result line gave {}: \
                     print {{\"objective\": x, \"constraints\": [{n} values]}}",
                    reported.len()
                ),
            });
        }
        self.list
            .iter()
            .map(|constraint| match constraint {
                Constraint::Metric { metric, bound } => match metrics.get(metric) {
                    Some(&value) => Ok(match *bound {
                        Bound::Max(max) => value - max,
                        Bound::Min(min) => min - value,
                    }),
                    None => Err(format!(
                        "constraint `{}` needs metric `{metric}`, which the trial did not report",
                        constraint.label()
                    )),
                },
                Constraint::Reported { index, .. } => Ok(reported[*index]),
            })
            .collect()
    }

    /// The constraint values to record for a trial ending as `ending`, one
    /// rule for the controller and for outside drivers: a COMPLETE trial's
    /// from its metrics and reported values (`Err` says what is missing), a
    /// PRUNED trial's where it reported them all, a FAILED trial's from
    /// [`Self::of_failure`]; `None` for none (or without constraints).
    pub fn of_ending(
        &self,
        ending: Ending<'_>,
        metrics: &BTreeMap<String, f64>,
        reported: Option<&[f64]>,
    ) -> Result<Option<Vec<f64>>, String> {
        if !self.is_active() {
            return Ok(None);
        }
        match ending {
            Ending::Complete => self.values(metrics, reported).map(Some),
            Ending::Pruned => Ok(self.values(metrics, reported).ok()),
            Ending::Failed(reason) => Ok(self.of_failure(reason)),
        }
    }

    /// The constraint values of a trial that failed for `reason`: a large
    /// violation of each (at least one) when failures for resources count
    /// as infeasible and this is one; otherwise none.
    pub fn of_failure(&self, reason: &str) -> Option<Vec<f64>> {
        (self.failures_infeasible && is_resource_failure(reason))
            .then(|| vec![RESOURCE_FAILURE_VIOLATION; self.list.len().max(1)])
    }
}

/// Whether a trial's failure reason says it ran out of memory or time: the
/// reasons the scheduler and the executors give (a timeout, Slurm's time
/// limit or out-of-memory kill, SIGKILL), and what trials say of device
/// memory (our GPU engine, PyTorch's `OutOfMemoryError`).
pub fn is_resource_failure(reason: &str) -> bool {
    let reason = reason.to_lowercase();
    ["timed out after", "time limit", "out of memory", "out of device memory", "outofmemoryerror"]
        .iter()
        .any(|needle| reason.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn constraints() -> Constraints {
        Constraints {
            list: vec![
                Constraint::Metric { metric: "num_params".into(), bound: Bound::Max(100.0) },
                Constraint::Reported { name: "memory".into(), index: 0 },
                Constraint::Metric { metric: "val_r2".into(), bound: Bound::Min(0.5) },
            ],
            failures_infeasible: true,
        }
    }

    #[test]
    fn values_are_optuna_style_margins() {
        let metrics: BTreeMap<String, f64> = [("num_params".into(), 150.0), ("val_r2".into(), 0.75)].into();
        assert_eq!(constraints().values(&metrics, Some(&[-2.0])), Ok(vec![50.0, -2.0, -0.25]));
        let err = constraints().values(&metrics, None).unwrap_err();
        assert!(err.contains("declares 1 reported constraint") && err.contains("gave 0"), "{err}");
        let err = constraints().values(&BTreeMap::new(), Some(&[0.0])).unwrap_err();
        assert!(err.contains("metric `num_params`"), "{err}");
        let none = Constraints::default();
        assert!(none.values(&metrics, Some(&[1.0])).unwrap_err().contains("declares none"));
        assert_eq!(none.values(&metrics, None), Ok(vec![]));
    }

    #[test]
    fn failures_for_resources_are_infeasible_when_asked() {
        for reason in [
            "timed out after 2.5 s (killed)",
            "Slurm ended the job step on n1 at its time limit (resources.slurm.time_per_trial, or the job's --time)",
            "Slurm: the job step ran out of memory on n1 (raise resources.slurm.mem_per_trial); srun exited with code 0",
            "killed by signal 9 (SIGKILL; out of memory?)",
            "the trial reported model: out of device memory: 4096 bytes asked on cuda:0",
            "exited with code 1: torch.OutOfMemoryError: CUDA out of memory.",
        ] {
            assert!(is_resource_failure(reason), "{reason}");
            assert_eq!(constraints().of_failure(reason), Some(vec![RESOURCE_FAILURE_VIOLATION; 3]));
        }
        for reason in ["exited with code 1", "the objective is not a finite number (NaN or infinite)"] {
            assert!(!is_resource_failure(reason), "{reason}");
            assert_eq!(constraints().of_failure(reason), None);
        }
        let only_failures = Constraints { list: vec![], failures_infeasible: true };
        assert_eq!(only_failures.of_failure("timed out after 1 s"), Some(vec![RESOURCE_FAILURE_VIOLATION]));
        let ignored = Constraints { failures_infeasible: false, ..constraints() };
        assert_eq!(ignored.of_failure("timed out after 1 s"), None);
    }
}
