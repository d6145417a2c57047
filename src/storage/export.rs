//! All trials of a study as CSV (one row per trial with the columns of
//! Optuna's `trials_dataframe()`, for spreadsheets and pandas) or JSON
//! (typed, nested).
//!
//! Both read one snapshot, so they are safe to run while the study runs.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use serde::Serialize;
use serde_json::{json, Value as Json};

use super::rows::direction_name;
use super::{Artifact, Phase, SqliteStore, TrialDetails};
use crate::hpo::ParamValue;

/// Writes every trial of `store` as CSV, with the columns Optuna's
/// `trials_dataframe()` has for the study exported to Optuna: `number,
/// value, datetime_start, datetime_complete, duration` (seconds), then
/// `params_<name>` for each parameter any trial has, then `user_attrs_<name>`
/// for what Optuna has no column for (the metrics, phase, attempt, seed,
/// device, failure reason and the trial's own attributes, as the Optuna
/// export stores them), then `state`. Empty cells where a trial has no value.
/// A study with several objectives has a column `values_<name>` for each
/// instead of `value`, as Optuna's has once its metrics are named.
pub fn to_csv(store: &SqliteStore, out: impl Write) -> anyhow::Result<()> {
    let names: Vec<String> = store.info().objectives.iter().map(|o| o.name.clone()).collect();
    write_csv(&store.all_trial_details()?, &store.phases()?, &names, out)
}

/// [`to_csv`] for trials already loaded, with the names of the study's
/// several objectives (none for one).
pub fn write_csv(
    trials: &[TrialDetails],
    phases: &[Phase],
    objectives: &[String],
    mut out: impl Write,
) -> anyhow::Result<()> {
    let attrs: Vec<Vec<(String, Json)>> = trials.iter().map(|t| trial_user_attrs(t, phases)).collect();
    let param_names: BTreeSet<&str> =
        trials.iter().flat_map(|details| details.trial.params.keys().map(String::as_str)).collect();
    let attr_names: BTreeSet<&str> = attrs.iter().flatten().map(|(k, _)| k.as_str()).collect();

    let mut header = vec!["number".to_owned()];
    match objectives {
        [] => header.push("value".to_owned()),
        names => header.extend(names.iter().map(|name| format!("values_{name}"))),
    }
    header.extend(["datetime_start", "datetime_complete", "duration"].map(String::from));
    header.extend(param_names.iter().map(|name| format!("params_{name}")));
    header.extend(attr_names.iter().map(|name| format!("user_attrs_{name}")));
    header.push("state".to_owned());
    write_record(&mut out, &header)?;

    for (details, attrs) in trials.iter().zip(&attrs) {
        let trial = &details.trial;
        let mut record = vec![trial.number.to_string()];
        match objectives.len() {
            0 => record.push(trial.value.map(float_cell).unwrap_or_default()),
            n => record
                .extend((0..n).map(|i| trial.values.get(i).copied().map(float_cell).unwrap_or_default())),
        }
        record.extend([
            details.started.map(|time| time.to_string()).unwrap_or_default(),
            details.finished.map(|time| time.to_string()).unwrap_or_default(),
            details.duration().map(|duration| float_cell(duration.as_secs_f64())).unwrap_or_default(),
        ]);
        record.extend(
            param_names.iter().map(|name| trial.params.get(*name).map(param_cell).unwrap_or_default()),
        );
        record.extend(attr_names.iter().map(|name| {
            attrs.iter().find(|(k, _)| k == name).map(|(_, v)| json_cell(v)).unwrap_or_default()
        }));
        record.push(trial.state.name().to_string());
        write_record(&mut out, &record)?;
    }
    out.flush()?;
    Ok(())
}

/// The trial's facts that Optuna has no column for, as user attributes.
pub(super) fn trial_user_attrs(details: &TrialDetails, phases: &[super::Phase]) -> Vec<(String, Json)> {
    let mut attrs: Vec<(String, Json)> =
        details.user_attrs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    attrs.extend(details.metrics.iter().map(|(k, v)| (k.clone(), json!(v))));
    let phase = phases.iter().find(|p| p.index == details.trial.phase).map(|p| p.name.clone());
    attrs.push(("phase".into(), json!(phase.unwrap_or_else(|| details.trial.phase.to_string()))));
    attrs.push(("attempt".into(), json!(details.attempt)));
    let optional = [
        ("seed", details.seed.map(|s| json!(s))),
        ("device", details.device.as_ref().map(|d| json!(d))),
        ("fail_reason", details.fail_reason.as_ref().map(|r| json!(r))),
    ];
    attrs.extend(optional.into_iter().filter_map(|(k, v)| Some((k.to_owned(), v?))));
    attrs.sort_by(|a, b| a.0.cmp(&b.0));
    attrs.dedup_by(|a, b| a.0 == b.0);
    attrs
}

/// A user attribute's cell: text as it is, numbers as [`float_cell`] or integers.
fn json_cell(value: &Json) -> String {
    match value {
        Json::String(text) => text.clone(),
        Json::Number(n) if n.is_f64() => n.as_f64().map(float_cell).unwrap_or_default(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

/// Shortest text that parses back to the same double (`0.1`, `1e-7`, `NaN`).
fn float_cell(value: f64) -> String {
    format!("{value:?}")
}

fn param_cell(value: &ParamValue) -> String {
    match value {
        ParamValue::Float(x) => float_cell(*x),
        other => other.to_string(),
    }
}

/// Writes one CSV record (RFC 4180 quoting: fields with a comma, quote,
/// line break or surrounding space are quoted, quotes doubled).
pub fn write_record(out: &mut impl Write, fields: &[String]) -> std::io::Result<()> {
    for (index, field) in fields.iter().enumerate() {
        if index > 0 {
            out.write_all(b",")?;
        }
        let needs_quotes = field.contains([',', '"', '\n', '\r'])
            || field.starts_with(char::is_whitespace)
            || field.ends_with(char::is_whitespace);
        if needs_quotes {
            write!(out, "\"{}\"", field.replace('"', "\"\""))?;
        } else {
            out.write_all(field.as_bytes())?;
        }
    }
    out.write_all(b"\n")
}

/// The records of CSV text as [`write_record`] writes it (quoted fields may
/// hold commas, doubled quotes and line breaks).
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let (mut record, mut field) = (Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    records
}

/// Writes the study and every trial as one JSON document:
/// `{"study": {...}, "trials": [{...}, ...]}`. Parameters keep their type
/// (`3` for an int, `3.0` for a float); NaN and infinities become `null`.
pub fn to_json(store: &SqliteStore, out: impl Write) -> anyhow::Result<()> {
    let info = store.info();
    let trials = store.all_trial_details()?;
    let document = Document {
        study: StudyRecord {
            name: &info.name,
            direction: direction_name(info.direction),
            objectives: &info.objectives,
            seed: info.seed,
            created: info.created.to_string(),
            best_trial: match info.objectives.is_empty() {
                true => TrialDetails::best(&trials, info.direction).map(|(t, _)| t.trial.number),
                false => None,
            },
            pareto_set: match info.objectives.as_slice() {
                [] => None,
                several => {
                    let directions: Vec<_> = several.iter().map(|o| o.direction).collect();
                    let frozen = trials.iter().map(|t| &t.trial);
                    Some(
                        crate::hpo::pareto::pareto_front(frozen, &directions)
                            .iter()
                            .map(|t| t.number)
                            .collect(),
                    )
                }
            },
            user_attrs: store.study_user_attrs()?,
        },
        trials: trials.iter().map(TrialRecord::from).collect(),
    };
    let mut out = out;
    serde_json::to_writer_pretty(&mut out, &document)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

#[derive(Serialize)]
struct Document<'a> {
    study: StudyRecord<'a>,
    trials: Vec<TrialRecord<'a>>,
}

#[derive(Serialize)]
struct StudyRecord<'a> {
    name: &'a str,
    direction: &'static str,
    /// Every objective's name and direction, in a study with several.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    objectives: &'a [super::StoredObjective],
    seed: u64,
    created: String,
    /// The best feasible COMPLETE trial's number, as `study status` names it
    /// (none with several objectives).
    best_trial: Option<u64>,
    /// The numbers of the Pareto set's trials, with several objectives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pareto_set: Option<Vec<u64>>,
    user_attrs: BTreeMap<String, Json>,
}

#[derive(Serialize)]
struct TrialRecord<'a> {
    number: u64,
    phase: usize,
    state: &'static str,
    value: Option<f64>,
    /// Every objective's value, with several objectives.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    values: &'a [f64],
    params: &'a BTreeMap<String, ParamValue>,
    metrics: &'a BTreeMap<String, f64>,
    intermediate: &'a BTreeMap<u64, f64>,
    /// Constraint values (≤ 0 feasible), where the study has constraints.
    #[serde(skip_serializing_if = "Option::is_none")]
    constraints: Option<&'a [f64]>,
    duration_s: Option<f64>,
    started: Option<String>,
    finished: Option<String>,
    seed: Option<u64>,
    device: Option<&'a str>,
    attempt: u32,
    fail_reason: Option<&'a str>,
    artifacts: &'a [Artifact],
    user_attrs: &'a BTreeMap<String, Json>,
}

impl<'a> From<&'a TrialDetails> for TrialRecord<'a> {
    fn from(details: &'a TrialDetails) -> Self {
        let trial = &details.trial;
        TrialRecord {
            number: trial.number,
            phase: trial.phase,
            state: trial.state.name(),
            value: trial.value,
            values: &trial.values,
            params: &trial.params,
            metrics: &details.metrics,
            intermediate: &trial.intermediate,
            constraints: trial.constraints.as_deref(),
            duration_s: details.duration().map(|duration| duration.as_secs_f64()),
            started: details.started.map(|time| time.to_string()),
            finished: details.finished.map(|time| time.to_string()),
            seed: details.seed,
            device: details.device.as_deref(),
            attempt: details.attempt,
            fail_reason: details.fail_reason.as_deref(),
            artifacts: &details.artifacts,
            user_attrs: &details.user_attrs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hpo::{Direction, FrozenTrial, TrialState, TrialStore};
    use crate::storage::{Database, NewStudy, Timestamp};

    fn details(number: u64, state: TrialState, params: &[(&str, ParamValue)]) -> TrialDetails {
        TrialDetails {
            trial: FrozenTrial {
                number,
                phase: number as usize / 2,
                state,
                params: params.iter().map(|(name, value)| (name.to_string(), value.clone())).collect(),
                value: None,
                intermediate: BTreeMap::new(),
                values: Vec::new(),
                constraints: None,
            },
            distributions: BTreeMap::new(),
            seed: None,
            device: None,
            attempt: 0,
            created: Timestamp { unix_ms: 0 },
            started: None,
            finished: None,
            heartbeat: None,
            fail_reason: None,
            waiting_for: None,
            metrics: BTreeMap::new(),
            artifacts: Vec::new(),
            user_attrs: BTreeMap::new(),
        }
    }

    #[test]
    fn csv_has_optunas_columns_a_column_per_parameter_and_fact_and_quotes_properly() {
        let mut first = details(
            0,
            TrialState::Complete,
            &[("lr", ParamValue::Float(1e-7)), ("mul", ParamValue::Int(48))],
        );
        first.trial.value = Some(0.1 + 0.2);
        first.metrics.insert("ar_mae".into(), 0.078);
        first.started = Some(Timestamp { unix_ms: 1_000 });
        first.finished = Some(Timestamp { unix_ms: 62_500 });
        first.seed = Some(u64::MAX);
        first.device = Some("cuda:0".into());
        let mut second = details(
            1,
            TrialState::Failed,
            &[("model", ParamValue::Str("a \"scalar\", 6x0e".into())), ("bias", ParamValue::Bool(true))],
        );
        second.fail_reason = Some("out of memory\nat epoch 3".into());
        second.attempt = 2;
        second.metrics.insert("eps_poly_mae".into(), f64::NAN);

        let mut out = Vec::new();
        write_csv(&[first, second], &[], &[], &mut out).unwrap();
        // Optuna's trials_dataframe() columns; a NaN metric is an empty cell (pandas reads NaN).
        let expected = "\
number,value,datetime_start,datetime_complete,duration,params_bias,params_lr,params_model,params_mul,\
user_attrs_ar_mae,user_attrs_attempt,user_attrs_device,user_attrs_eps_poly_mae,user_attrs_fail_reason,\
user_attrs_phase,user_attrs_seed,state
0,0.30000000000000004,1970-01-01T00:00:01.000Z,1970-01-01T00:01:02.500Z,61.5,,1e-7,,48,0.078,0,cuda:0,,,0,18446744073709551615,COMPLETE
1,,,,,true,,\"a \"\"scalar\"\", 6x0e\",,,2,,,\"out of memory
at epoch 3\",0,,FAILED
";
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn json_keeps_parameter_types_and_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let new = NewStudy {
            name: "grid".into(),
            direction: Direction::Maximize,
            objectives: Vec::new(),
            seed: 42,
            config: String::new(),
        };
        let mut store = Database::open(dir.path().join("study.db")).unwrap().create_study(&new).unwrap();
        let params = [
            ("layers".to_string(), ParamValue::Int(3)),
            ("lr".to_string(), ParamValue::Float(3.0)),
            ("bias".to_string(), ParamValue::Bool(false)),
        ]
        .into_iter()
        .collect();
        let number = store.create_trial(0, &params, TrialState::Running).unwrap();
        store.report(number, 4, f64::NAN).unwrap();
        let metrics = [("eps_poly_mae".to_string(), 0.311)].into_iter().collect();
        store.finish_trial(number, TrialState::Complete, Some(0.5), &metrics).unwrap();
        store.create_trial(1, &BTreeMap::new(), TrialState::Waiting).unwrap();

        let mut out = Vec::new();
        to_json(&store, &mut out).unwrap();
        let document: Json = serde_json::from_slice(&out).unwrap();
        assert_eq!(document["study"]["name"], "grid");
        assert_eq!(document["study"]["direction"], "maximize");
        let trials = document["trials"].as_array().unwrap();
        assert_eq!(trials.len(), 2);
        let trial = &trials[0];
        assert!(trial["params"]["layers"].is_i64());
        assert!(trial["params"]["lr"].is_f64());
        assert_eq!(trial["params"]["lr"], 3.0);
        assert_eq!(trial["params"]["bias"], false);
        assert_eq!(trial["state"], "COMPLETE");
        assert_eq!(trial["value"], 0.5);
        assert_eq!(trial["metrics"]["eps_poly_mae"], 0.311);
        assert!(trial["intermediate"]["4"].is_null(), "NaN becomes null");
        assert!(trial["duration_s"].as_f64().unwrap() >= 0.0);
        assert_eq!(trials[1]["state"], "WAITING");
        assert!(trials[1]["duration_s"].is_null());

        let mut csv = Vec::new();
        to_csv(&store, &mut csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        assert_eq!(csv.lines().count(), 3);
        let rows = parse_csv(&csv);
        assert_eq!(
            rows[0],
            [
                "number",
                "value",
                "datetime_start",
                "datetime_complete",
                "duration",
                "params_bias",
                "params_layers",
                "params_lr",
                "user_attrs_attempt",
                "user_attrs_eps_poly_mae",
                "user_attrs_phase",
                "state"
            ]
        );
        let first: Vec<&str> = rows[1].iter().map(String::as_str).collect();
        assert_eq!(first[..2], ["0", "0.5"]);
        assert_eq!(first[5..], ["false", "3", "3.0", "0", "0.311", "0", "COMPLETE"]);
    }
}
