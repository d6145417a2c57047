//! All trials of a study as CSV (one row per trial, a column per parameter
//! and per metric, for spreadsheets and pandas) or JSON (typed, nested).
//!
//! Both read one snapshot, so they are safe to run while the study runs.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use serde::Serialize;
use serde_json::Value as Json;

use super::study_store::{direction_name, state_name};
use super::{Artifact, SqliteStore, TrialDetails};
use crate::hpo::ParamValue;

/// Writes every trial of `store` as CSV: `number, phase, state, value`,
/// then `params_<name>` for each parameter name any trial has, then
/// `metrics_<name>` likewise, then `duration_s, started, finished, seed,
/// device, attempt, fail_reason`. Empty cells where a trial has no value.
pub fn to_csv(store: &SqliteStore, out: impl Write) -> anyhow::Result<()> {
    write_csv(&store.all_trial_details()?, out)
}

/// [`to_csv`] for trials already loaded.
pub fn write_csv(trials: &[TrialDetails], mut out: impl Write) -> anyhow::Result<()> {
    let param_names: BTreeSet<&str> =
        trials.iter().flat_map(|details| details.trial.params.keys().map(String::as_str)).collect();
    let metric_names: BTreeSet<&str> =
        trials.iter().flat_map(|details| details.metrics.keys().map(String::as_str)).collect();

    let mut header: Vec<String> = ["number", "phase", "state", "value"].map(String::from).to_vec();
    header.extend(param_names.iter().map(|name| format!("params_{name}")));
    header.extend(metric_names.iter().map(|name| format!("metrics_{name}")));
    header.extend(
        ["duration_s", "started", "finished", "seed", "device", "attempt", "fail_reason"].map(String::from),
    );
    write_record(&mut out, &header)?;

    for details in trials {
        let trial = &details.trial;
        let mut record = vec![
            trial.number.to_string(),
            trial.phase.to_string(),
            state_name(trial.state).to_string(),
            trial.value.map(float_cell).unwrap_or_default(),
        ];
        record.extend(
            param_names.iter().map(|name| trial.params.get(*name).map(param_cell).unwrap_or_default()),
        );
        record.extend(
            metric_names
                .iter()
                .map(|name| details.metrics.get(*name).copied().map(float_cell).unwrap_or_default()),
        );
        record.extend([
            details.duration().map(|duration| float_cell(duration.as_secs_f64())).unwrap_or_default(),
            details.started.map(|time| time.to_string()).unwrap_or_default(),
            details.finished.map(|time| time.to_string()).unwrap_or_default(),
            details.seed.map(|seed| seed.to_string()).unwrap_or_default(),
            details.device.clone().unwrap_or_default(),
            details.attempt.to_string(),
            details.fail_reason.clone().unwrap_or_default(),
        ]);
        write_record(&mut out, &record)?;
    }
    out.flush()?;
    Ok(())
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

/// One CSV line (RFC 4180): a field with a comma, quote, line break or
/// surrounding space is quoted, with inner quotes doubled.
fn write_record(out: &mut impl Write, fields: &[String]) -> std::io::Result<()> {
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
            seed: info.seed,
            created: info.created.to_string(),
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
    seed: u64,
    created: String,
    user_attrs: BTreeMap<String, Json>,
}

#[derive(Serialize)]
struct TrialRecord<'a> {
    number: u64,
    phase: usize,
    state: &'static str,
    value: Option<f64>,
    params: &'a BTreeMap<String, ParamValue>,
    metrics: &'a BTreeMap<String, f64>,
    intermediate: &'a BTreeMap<u64, f64>,
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
            state: state_name(trial.state),
            value: trial.value,
            params: &trial.params,
            metrics: &details.metrics,
            intermediate: &trial.intermediate,
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
