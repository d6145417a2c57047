//! Reading a study for its report: metadata, phases, every trial with its
//! metrics, from one read-only snapshot (safe while `study run` writes),
//! and grouping a sweep's trials into cells that differ only by seed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use serde_json::Value as Json;

use crate::hpo::{Direction, ParamValue, TrialState};
use crate::storage::{Database, Definition, Phase, StudyInfo, TrialDetails};
use crate::train::predictions::{self, PredictionRow};

/// Everything a report shows about one study.
#[derive(Debug, Clone)]
pub struct StudyData {
    /// The study's folder (`study.db`, `trials/`).
    pub dir: PathBuf,
    pub info: StudyInfo,
    pub phases: Vec<Phase>,
    pub trials: Vec<TrialDetails>,
    /// Study user attributes (`dataset`: cleaning counts and split sizes).
    pub attrs: BTreeMap<String, Json>,
    /// The study file as run, parsed (`Null` when unreadable).
    pub config: serde_yaml::Value,
    /// Every definition the study ran under, by revision.
    pub definitions: Vec<Definition>,
}

/// Model kinds in the order reports show them.
pub const KINDS: [&str; 2] = ["equivariant", "scalar"];

impl StudyData {
    /// Reads the study in folder `dir` (which holds `study.db`).
    pub fn load(dir: &Path) -> Result<StudyData> {
        let store = Database::open_read_only(dir.join("study.db"))?.open_only_study()?;
        let info = store.info().clone();
        let config = serde_yaml::from_str(&info.config).unwrap_or(serde_yaml::Value::Null);
        Ok(StudyData {
            dir: dir.to_path_buf(),
            phases: store.phases()?,
            trials: store.all_trial_details()?,
            attrs: store.study_user_attrs()?,
            definitions: store.definitions()?,
            info,
            config,
        })
    }

    /// A key of the study file as run, e.g. `["objective", "metric"]`.
    pub fn config_at(&self, path: &[&str]) -> Option<&serde_yaml::Value> {
        path.iter().try_fold(&self.config, |value, key| value.get(*key))
    }

    /// A sweep (one grid phase of fixed values) rather than a search.
    pub fn is_sweep(&self) -> bool {
        self.config_at(&["sweep"]).is_some_and(|v| !v.is_null())
    }

    pub fn direction(&self) -> Direction {
        self.info.direction
    }

    /// Every objective's name and direction, in a study with several.
    pub fn objectives(&self) -> &[crate::storage::StoredObjective] {
        &self.info.objectives
    }

    /// The Pareto set of a study with several objectives (feasible COMPLETE
    /// trials no other beats in every objective), sorted by the first
    /// objective; empty with one objective.
    pub fn pareto_set(&self) -> Vec<&TrialDetails> {
        let directions: Vec<Direction> = self.objectives().iter().map(|o| o.direction).collect();
        if directions.is_empty() {
            return Vec::new();
        }
        let front = crate::hpo::pareto::pareto_front(self.trials.iter().map(|t| &t.trial), &directions);
        let mut set: Vec<&TrialDetails> =
            self.trials.iter().filter(|t| front.iter().any(|f| f.number == t.trial.number)).collect();
        set.sort_by(|a, b| {
            let key = |t: &TrialDetails| directions[0].as_loss(t.trial.values[0]);
            key(a).total_cmp(&key(b)).then(a.trial.number.cmp(&b.trial.number))
        });
        set
    }

    /// What the trials' value is: the validation metric, or the command's objective.
    pub fn objective_name(&self) -> String {
        objective_name_of(&self.config)
    }

    /// The built-in objective's model kind of a trial: its `kind`
    /// parameter, else the study file's `model.kind` (default equivariant).
    pub fn kind_of(&self, trial: &TrialDetails) -> String {
        match trial.trial.params.get("kind") {
            Some(ParamValue::Str(kind)) => kind.clone(),
            Some(other) => other.to_string(),
            None => self
                .config_at(&["model", "kind"])
                .and_then(|v| v.as_str())
                .unwrap_or("equivariant")
                .to_owned(),
        }
    }

    pub fn count(&self, state: TrialState) -> usize {
        self.trials.iter().filter(|t| t.trial.state == state).count()
    }

    pub fn complete(&self) -> impl Iterator<Item = &TrialDetails> {
        self.trials.iter().filter(|t| t.trial.state == TrialState::Complete)
    }

    /// Wall times of the COMPLETE trials.
    pub fn durations(&self) -> Vec<Duration> {
        self.complete().filter_map(TrialDetails::duration).collect()
    }

    /// The trial's test predictions: the `test_predictions` artefact, or
    /// `trials/<n>/test_predictions.csv` of this folder when the recorded
    /// path moved with the results. An error says why there are none.
    pub fn test_predictions(&self, trial: &TrialDetails) -> Result<Vec<PredictionRow>> {
        let recorded = trial
            .artifacts
            .iter()
            .find(|a| a.kind == predictions::TEST_PREDICTIONS_KIND)
            .map(|a| PathBuf::from(&a.path));
        let local = self
            .dir
            .join("trials")
            .join(trial.trial.number.to_string())
            .join(predictions::TEST_PREDICTIONS_FILE);
        match recorded {
            Some(path) if path.is_file() => predictions::read_csv(&path),
            _ if local.is_file() => predictions::read_csv(&local),
            Some(path) => anyhow::bail!("the test predictions of trial {} ({}) are gone", trial.trial.number, path.display()),
            None => anyhow::bail!(
                "trial {} recorded no test predictions (a `command` objective, or a study run by an older build)",
                trial.trial.number
            ),
        }
    }
}

/// What a study's trial values are, from its study file as run: the
/// validation metric (`val_loss` by default), or `objective` for a command.
pub fn objective_name_of(config: &serde_yaml::Value) -> String {
    let objective = config.get("objective");
    // Several objectives: the trials' `value` is the first one's.
    if let Some(first) = objective.and_then(|o| o.as_sequence()).and_then(|list| list.first()) {
        return first.get("metric").and_then(|m| m.as_str()).unwrap_or("objective").to_owned();
    }
    if let Some(first) =
        objective.and_then(|o| o.get("names")).and_then(|n| n.as_sequence()?.first().cloned())
    {
        return first.as_str().unwrap_or("objective_0").to_owned();
    }
    if objective.and_then(|o| o.get("directions")).is_some() {
        return "objective_0".to_owned();
    }
    if objective.and_then(|o| o.get("command")).is_some_and(|v| !v.is_null()) {
        return "objective".to_owned();
    }
    match objective.and_then(|o| o.get("metric")).and_then(|v| v.as_str()) {
        Some(metric) => metric.to_owned(),
        None => "val_loss".to_owned(),
    }
}

/// The trials of one setting of a sweep: same kind and parameters, any seed.
#[derive(Debug, Clone)]
pub struct SweepCell<'a> {
    pub kind: String,
    /// The cell's parameters other than `kind` and `seed`, by name.
    pub setting: Vec<(String, ParamValue)>,
    pub trials: Vec<&'a TrialDetails>,
}

impl SweepCell<'_> {
    pub fn complete(&self) -> impl Iterator<Item = &&TrialDetails> {
        self.trials.iter().filter(|t| t.trial.state == TrialState::Complete)
    }

    /// Finite values of `metric` over the cell's COMPLETE trials.
    pub fn metric_values(&self, metric: &str) -> Vec<f64> {
        self.complete().filter_map(|t| t.metrics.get(metric).copied()).filter(|v| v.is_finite()).collect()
    }

    /// Objective values over the cell's COMPLETE trials.
    pub fn objective_values(&self) -> Vec<f64> {
        self.complete().filter_map(|t| t.trial.value).filter(|v| v.is_finite()).collect()
    }

    /// Why the cell has no COMPLETE trial: the failure reasons, or the
    /// trials still to finish; `None` when it has one.
    pub fn why_empty(&self) -> Option<String> {
        if self.complete().next().is_some() {
            return None;
        }
        let failed: Vec<&str> = self
            .trials
            .iter()
            .filter(|t| t.trial.state == TrialState::Failed)
            .map(|t| t.fail_reason.as_deref().unwrap_or("failed without a reason"))
            .collect();
        let open = self.trials.iter().filter(|t| !t.trial.state.is_finished()).count();
        let pruned = self.trials.iter().filter(|t| t.trial.state == TrialState::Pruned).count();
        Some(if open > 0 {
            format!("not finished yet ({open} trial(s) running or waiting)")
        } else if let Some(first) = failed.first() {
            shorten(first)
        } else if pruned > 0 {
            "every trial was pruned".to_owned()
        } else {
            "no trial".to_owned()
        })
    }

    /// The setting as text: `lmax = 2`, or `—` for none.
    pub fn setting_label(&self) -> String {
        setting_label(&self.setting)
    }
}

/// `lmax = 2, lr = 0.003`.
pub fn setting_label(setting: &[(String, ParamValue)]) -> String {
    if setting.is_empty() {
        return "—".to_owned();
    }
    let parts: Vec<String> = setting.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    parts.join(", ")
}

/// The first line of a failure reason, without the launcher's prefix, at
/// most 160 characters: long stderr tails stay in the database.
fn shorten(reason: &str) -> String {
    let line = reason.lines().next().unwrap_or("").trim();
    let line = line.strip_prefix("cannot launch: ").unwrap_or(line);
    match line.char_indices().nth(160) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_owned(),
    }
}

/// The sweep's cells: trials grouped by kind and parameters other than
/// `seed`, kinds in [`KINDS`] order, settings in parameter order.
pub fn sweep_cells(data: &StudyData) -> Vec<SweepCell<'_>> {
    // Key: rank of the kind, the kind, the setting in sort order.
    type CellKey = (usize, String, Vec<(String, SortKey)>);
    let mut cells: BTreeMap<CellKey, SweepCell> = BTreeMap::new();
    for trial in &data.trials {
        let kind = data.kind_of(trial);
        let setting: Vec<(String, ParamValue)> = trial
            .trial
            .params
            .iter()
            .filter(|(name, _)| name.as_str() != "kind" && name.as_str() != "seed")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let rank = KINDS.iter().position(|k| *k == kind).unwrap_or(KINDS.len());
        let key = (rank, kind.clone(), setting.iter().map(|(k, v)| (k.clone(), SortKey::of(v))).collect());
        cells
            .entry(key)
            .or_insert_with(|| SweepCell { kind, setting, trials: Vec::new() })
            .trials
            .push(trial);
    }
    cells.into_values().collect()
}

/// Orders parameter values: numbers by value, then text.
#[derive(Debug, Clone, PartialEq)]
enum SortKey {
    Number(f64),
    Text(String),
}

impl Eq for SortKey {}

impl Ord for SortKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        use std::cmp::Ordering::{Greater, Less};
        match (self, other) {
            (SortKey::Number(a), SortKey::Number(b)) => a.total_cmp(b),
            (SortKey::Number(_), SortKey::Text(_)) => Less,
            (SortKey::Text(_), SortKey::Number(_)) => Greater,
            (SortKey::Text(a), SortKey::Text(b)) => a.cmp(b),
        }
    }
}

impl PartialOrd for SortKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl SortKey {
    fn of(value: &ParamValue) -> SortKey {
        match value.as_f64() {
            Some(x) if !matches!(value, ParamValue::Str(_)) => SortKey::Number(x),
            _ => SortKey::Text(value.to_string()),
        }
    }
}
