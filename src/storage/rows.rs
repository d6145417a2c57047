//! How trial values map to columns, and reading trials back in bulk.
//!
//! A trial's state is written to and read from SQL only as a
//! [`StoredState`], whose text is [`TrialState::name`]: queries bind states
//! as parameters rather than spelling them out.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Context};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, Row, ToSql};

use super::{Artifact, Timestamp, TrialDetails};
use crate::hpo::{Direction, FrozenTrial, ParamValue, Params, TrialState};

/// A trial state as the `trials.state` column holds it: the state's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StoredState(pub TrialState);

impl ToSql for StoredState {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.0.name()))
    }
}

impl FromSql for StoredState {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let name = value.as_str()?;
        name.parse()
            .map(StoredState)
            .map_err(|unknown| FromSqlError::Other(format!("{unknown} in the database").into()))
    }
}

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

/// Constraint values as the `constraints` column holds them (objective
/// values as `objective_values` does): a JSON list, NaN as `null`,
/// infinities as the largest finite numbers (JSON has none).
pub(super) fn constraints_json(values: &[f64]) -> String {
    let values: Vec<Option<f64>> = values.iter().map(|&v| storable_constraint(v)).collect();
    serde_json::to_string(&values).expect("numbers always serialise")
}

/// A constraint value as stored: `None` for NaN, infinities clamped.
pub(super) fn storable_constraint(value: f64) -> Option<f64> {
    (!value.is_nan()).then(|| value.clamp(-f64::MAX, f64::MAX))
}

/// The values of a `constraints` column (`null` reads as NaN).
pub(super) fn constraints_from_json(text: &str) -> serde_json::Result<Vec<f64>> {
    let values: Vec<Option<f64>> = serde_json::from_str(text)?;
    Ok(values.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect())
}

/// The trials of one study (`?1`), or just its trial number `?2` when that is not null.
const FILTER: &str = "t.study = ?1 AND (?2 IS NULL OR t.number = ?2)";

/// A trial's own row, before its parameters, values and attributes are added.
fn trial_from_row(row: &Row) -> rusqlite::Result<TrialDetails> {
    let timestamp = |column| -> rusqlite::Result<Option<Timestamp>> {
        Ok(row.get::<_, Option<i64>>(column)?.map(|unix_ms| Timestamp { unix_ms }))
    };
    Ok(TrialDetails {
        trial: FrozenTrial {
            number: row.get(1)?,
            phase: row.get(2)?,
            state: row.get::<_, StoredState>(3)?.0,
            params: Params::new(),
            value: row.get(4)?,
            intermediate: BTreeMap::new(),
            constraints: match row.get::<_, Option<String>>(14)? {
                Some(text) => Some(constraints_from_json(&text).map_err(|err| {
                    rusqlite::Error::FromSqlConversionFailure(14, rusqlite::types::Type::Text, err.into())
                })?),
                None => None,
            },
            values: match row.get::<_, Option<String>>(15)? {
                Some(text) => constraints_from_json(&text).map_err(|err| {
                    rusqlite::Error::FromSqlConversionFailure(15, rusqlite::types::Type::Text, err.into())
                })?,
                None => Vec::new(),
            },
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
    let mut trials = Vec::new();
    let mut index_of = HashMap::new();
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT id, number, phase, state, value, seed, device, attempt, created_ms, started_ms,
             finished_ms, heartbeat_ms, fail_reason, waiting_for, constraints, objective_values
         FROM trials t WHERE {FILTER} ORDER BY number"
    ))?;
    let mut rows = stmt.query(params![study, only])?;
    while let Some(row) = rows.next()? {
        index_of.insert(row.get::<_, i64>(0)?, trials.len());
        trials.push(trial_from_row(row)?);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_is_stored_by_its_name_and_reads_back() {
        let conn = Connection::open_in_memory().unwrap();
        for state in TrialState::REPORT_ORDER {
            let (text, back): (String, StoredState) = conn
                .query_row("SELECT ?1, ?1", [StoredState(state)], |row| Ok((row.get(0)?, row.get(1)?)))
                .unwrap();
            assert_eq!((text.as_str(), back), (state.name(), StoredState(state)));
        }
        let err = conn.query_row("SELECT 'DONE'", [], |row| row.get::<_, StoredState>(0)).unwrap_err();
        assert!(err.to_string().contains("unknown trial state \"DONE\" in the database"), "{err}");
    }
}
