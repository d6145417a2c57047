//! How trial values map to columns, and reading trials back in bulk.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Context};
use rusqlite::{params, Connection, Row};

use super::{Artifact, Timestamp, TrialDetails};
use crate::hpo::{Direction, FrozenTrial, ParamValue, Params, TrialState};

/// `kind` and the typed columns of a parameter value.
pub(super) fn param_columns(value: &ParamValue) -> (&'static str, Option<f64>, Option<i64>, Option<&str>) {
    match value {
        ParamValue::Float(x) => ("float", Some(*x), None, None),
        ParamValue::Int(i) => ("int", None, Some(*i), None),
        ParamValue::Bool(b) => ("bool", None, Some(i64::from(*b)), None),
        ParamValue::Str(s) => ("str", None, None, Some(s.as_str())),
    }
}

fn param_from_row(row: &Row) -> rusqlite::Result<ParamValue> {
    let kind: String = row.get(2)?;
    Ok(match kind.as_str() {
        "float" => ParamValue::Float(row.get(3)?),
        "int" => ParamValue::Int(row.get(4)?),
        "bool" => ParamValue::Bool(row.get::<_, i64>(4)? != 0),
        _ => ParamValue::Str(row.get(5)?),
    })
}

/// Trials of `study` (all, or just number `only`) with their parameters and
/// intermediate values; `detailed` adds distributions, metrics, artefacts
/// and user attributes.
pub(super) fn load(
    tx: &Connection,
    study: i64,
    only: Option<u64>,
    detailed: bool,
) -> anyhow::Result<Vec<TrialDetails>> {
    const FILTER: &str = "t.study = ?1 AND (?2 IS NULL OR t.number = ?2)";
    let mut trials = Vec::new();
    let mut index_of = HashMap::new();
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT id, number, phase, state, value, seed, device, attempt, created_ms, started_ms,
             finished_ms, heartbeat_ms, fail_reason, waiting_for
         FROM trials t WHERE {FILTER} ORDER BY number"
    ))?;
    let mut rows = stmt.query(params![study, only])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let state: String = row.get(3)?;
        let timestamp = |column| -> rusqlite::Result<Option<Timestamp>> {
            Ok(row.get::<_, Option<i64>>(column)?.map(|unix_ms| Timestamp { unix_ms }))
        };
        index_of.insert(id, trials.len());
        trials.push(TrialDetails {
            trial: FrozenTrial {
                number: row.get(1)?,
                phase: row.get(2)?,
                state: parse_state(&state)?,
                params: Params::new(),
                value: row.get(4)?,
                intermediate: BTreeMap::new(),
            },
            distributions: BTreeMap::new(),
            seed: row.get::<_, Option<i64>>(5)?.map(|seed| seed as u64),
            device: row.get(6)?,
            attempt: row.get(7)?,
            created: Timestamp { unix_ms: row.get(8)? },
            started: timestamp(9)?,
            finished: timestamp(10)?,
            heartbeat: timestamp(11)?,
            fail_reason: row.get(12)?,
            waiting_for: row.get(13)?,
            metrics: BTreeMap::new(),
            artifacts: Vec::new(),
            user_attrs: BTreeMap::new(),
        });
    }
    drop(rows);

    let mut each_row = |sql: &str, apply: &mut dyn FnMut(&mut TrialDetails, &Row) -> anyhow::Result<()>| {
        let mut stmt = tx.prepare_cached(sql)?;
        let mut rows = stmt.query(params![study, only])?;
        while let Some(row) = rows.next()? {
            let trial = &mut trials[index_of[&row.get::<_, i64>(0)?]];
            apply(trial, row)?;
        }
        anyhow::Ok(())
    };
    each_row(
        &format!(
            "SELECT p.trial, p.name, p.kind, p.float_value, p.int_value, p.str_value, p.distribution
             FROM trial_params p JOIN trials t ON t.id = p.trial WHERE {FILTER}"
        ),
        &mut |details, row| {
            let name: String = row.get(1)?;
            if detailed {
                if let Some(text) = row.get::<_, Option<String>>(6)? {
                    let distribution = serde_json::from_str(&text)
                        .with_context(|| format!("distribution of parameter {name}"))?;
                    details.distributions.insert(name.clone(), distribution);
                }
            }
            details.trial.params.insert(name, param_from_row(row)?);
            Ok(())
        },
    )?;
    each_row(
        &format!(
            "SELECT i.trial, i.step, i.value FROM trial_intermediate i JOIN trials t ON t.id = i.trial
             WHERE {FILTER}"
        ),
        &mut |details, row| {
            let value: Option<f64> = row.get(2)?;
            details.trial.intermediate.insert(row.get(1)?, value.unwrap_or(f64::NAN));
            Ok(())
        },
    )?;
    if !detailed {
        return Ok(trials);
    }
    each_row(
        &format!(
            "SELECT m.trial, m.name, m.value FROM trial_metrics m JOIN trials t ON t.id = m.trial
             WHERE {FILTER}"
        ),
        &mut |details, row| {
            let value: Option<f64> = row.get(2)?;
            details.metrics.insert(row.get(1)?, value.unwrap_or(f64::NAN));
            Ok(())
        },
    )?;
    each_row(
        &format!(
            "SELECT a.trial, a.kind, a.path FROM trial_artifacts a JOIN trials t ON t.id = a.trial
             WHERE {FILTER}"
        ),
        &mut |details, row| {
            details.artifacts.push(Artifact { kind: row.get(1)?, path: row.get(2)? });
            Ok(())
        },
    )?;
    each_row(
        &format!(
            "SELECT u.trial, u.key, u.value FROM trial_user_attrs u JOIN trials t ON t.id = u.trial
             WHERE {FILTER}"
        ),
        &mut |details, row| {
            let value: String = row.get(2)?;
            details.user_attrs.insert(row.get(1)?, serde_json::from_str(&value)?);
            Ok(())
        },
    )?;
    Ok(trials)
}

pub(super) fn parse_state(name: &str) -> anyhow::Result<TrialState> {
    Ok(match name {
        "WAITING" => TrialState::Waiting,
        "RUNNING" => TrialState::Running,
        "COMPLETE" => TrialState::Complete,
        "PRUNED" => TrialState::Pruned,
        "FAILED" => TrialState::Failed,
        other => bail!("unknown trial state {other:?} in the database"),
    })
}

pub(super) fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Minimize => "minimize",
        Direction::Maximize => "maximize",
    }
}

pub(super) fn parse_direction(name: &str) -> anyhow::Result<Direction> {
    Ok(match name {
        "minimize" => Direction::Minimize,
        "maximize" => Direction::Maximize,
        other => bail!("unknown study direction {other:?} in the database"),
    })
}
