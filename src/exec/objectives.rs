//! A study with several objectives: where each objective's value comes from.
//!
//! A study with one objective takes its value from the trial's result line
//! (`{"objective": x}`), as it always has. With several, each objective
//! is either a metric the trial records (the built-in trainer's
//! `val_eps_poly_mae`, `num_params`, `train_seconds`, … or a command's
//! `{"metrics": {…}}`), or a position in the command's own result line
//! `{"objectives": [a, b]}`. The controller and outside drivers' `tell`
//! compute a finishing trial's values here, so one rule serves both.

use std::collections::BTreeMap;

use crate::hpo::Direction;

/// Where one objective's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A metric the trial records.
    Metric(String),
    /// The value at this position of the command's `objectives` list.
    Reported(usize),
}

/// One objective of a study with several.
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    /// How reports, exports and optuna-dashboard name it.
    pub name: String,
    pub direction: Direction,
    pub source: Source,
}

/// The objectives of a study with several; empty for a study with one,
/// whose value is the result line's `objective`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Objectives {
    pub list: Vec<Objective>,
}

impl Objectives {
    /// Whether the study has several objectives.
    pub fn is_multi(&self) -> bool {
        !self.list.is_empty()
    }

    pub fn directions(&self) -> Vec<Direction> {
        self.list.iter().map(|o| o.direction).collect()
    }

    /// As the study database keeps them (empty with one objective).
    pub fn stored(&self) -> Vec<crate::storage::StoredObjective> {
        self.list
            .iter()
            .map(|o| crate::storage::StoredObjective { name: o.name.clone(), direction: o.direction })
            .collect()
    }

    pub fn names(&self) -> Vec<String> {
        self.list.iter().map(|o| o.name.clone()).collect()
    }

    /// How many values a command prints on its result line.
    pub fn reported(&self) -> usize {
        self.list.iter().filter(|o| matches!(o.source, Source::Reported(_))).count()
    }

    /// The values of a trial that ran to its end, from its metrics and the
    /// values it reported; `Err` says what is missing.
    pub fn values(
        &self,
        metrics: &BTreeMap<String, f64>,
        reported: Option<&[f64]>,
    ) -> Result<Vec<f64>, String> {
        let reported = reported.unwrap_or_default();
        self.check_reported(reported)?;
        self.list
            .iter()
            .map(|objective| match &objective.source {
                Source::Metric(metric) => metrics.get(metric).copied().ok_or_else(|| {
                    format!(
                        "objective `{}` is metric `{metric}`, which the trial did not report",
                        objective.name
                    )
                }),
                Source::Reported(index) => Ok(reported[*index]),
            })
            .collect()
    }
}

impl Objectives {
    /// What a trial that ran to its end is told with, one rule for the
    /// controller and for outside drivers: its one `value` in a study with
    /// one objective (refusing a list of several), every objective's value
    /// in a study with several; `Err` says what is missing.
    pub fn of_complete(
        &self,
        value: f64,
        metrics: &BTreeMap<String, f64>,
        reported: Option<&[f64]>,
    ) -> Result<crate::hpo::Outcome, String> {
        if self.is_multi() {
            return self.values(metrics, reported).map(crate::hpo::Outcome::Objectives);
        }
        self.check_reported(reported.unwrap_or_default())?;
        Ok(crate::hpo::Outcome::Complete(value))
    }

    /// Whether a trial may report `reported` objective values: as many as
    /// the command's objectives, or at most one with a single objective;
    /// `Err` says what is wrong.
    pub fn check_reported(&self, reported: &[f64]) -> Result<(), String> {
        let expected = self.reported();
        match (self.is_multi(), reported.len()) {
            (false, n) if n > 1 => Err(format!(
                "the trial reported {n} objective values, but the study has one objective; \
                 list them under `objective` to optimise several"
            )),
            (true, n) if expected > 0 && n != expected => Err(format!(
                "the study has {expected} objectives, but the trial's result line gave {n} values: \
                 print {{\"objectives\": [{expected} values]}}"
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_from_metrics_and_the_result_line() {
        let objectives = Objectives {
            list: vec![
                Objective {
                    name: "error".into(),
                    direction: Direction::Minimize,
                    source: Source::Reported(0),
                },
                Objective {
                    name: "num_params".into(),
                    direction: Direction::Minimize,
                    source: Source::Metric("num_params".into()),
                },
            ],
        };
        let metrics: BTreeMap<String, f64> = [("num_params".into(), 1e6)].into();
        assert_eq!(objectives.values(&metrics, Some(&[0.5])), Ok(vec![0.5, 1e6]));
        let err = objectives.values(&metrics, Some(&[0.5, 1.0])).unwrap_err();
        assert!(err.contains("gave 2 values"), "{err}");
        let err = objectives.values(&BTreeMap::new(), Some(&[0.5])).unwrap_err();
        assert!(err.contains("metric `num_params`"), "{err}");
    }
}
