//! What a study is defined by, and what an edit of its file changes.
//!
//! A study remembers, in its database, every definition it ran under (the
//! study file as parsed, defaults filled in, `--set` overrides applied) and
//! which of them each trial was created under. Running a study file again
//! compares it with the last definition key by key:
//!
//! - changes that **continue** leave what earlier trials mean alone: more
//!   trials (a larger `n_trials`, more values on a grid or sweep axis, an
//!   added phase), the execution mode, and everything under `resources`
//!   (devices, timeouts, retries, executor);
//! - changes that **stop** alter what earlier trials mean or how the study
//!   goes on from them: the seed, the data, the model and training
//!   settings, the objective, a phase's sampler or space, the pruner, fewer
//!   grid values, a removed phase. `study run` refuses them (exit 2) unless
//!   `--accept-changes` records them as accepted.
//!
//! Comparing the parsed file rather than its text ignores comments,
//! formatting and defaults written out, and shows a changed default of the
//! tool itself as the change it is.

use serde_json::Value;

use super::file::StudyFile;

/// A change is recorded with the definition it leads to, so its type lives
/// with the store that records it.
pub use crate::storage::{Change, Effect};

/// The normalised definition of a study: its file as parsed, as JSON.
pub fn of_file(file: &StudyFile) -> Value {
    serde_json::to_value(file).expect("a study file always serialises")
}

/// The definition stored in a database of an earlier version, which kept
/// only the study file's YAML: `None` when that no longer parses.
pub fn of_snapshot(yaml: &str) -> Option<Value> {
    serde_yaml::from_str::<StudyFile>(yaml).ok().map(|file| of_file(&file))
}

/// Every changed key from `old` to `new`, in key order.
pub fn diff(old: &Value, new: &Value) -> Vec<Change> {
    let mut changes = Vec::new();
    walk(&mut Vec::new(), Some(old), Some(new), &mut changes);
    changes
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

fn path_text(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Objects are compared key by key and the `phases` list phase by phase;
/// every other value (lists of grid values, choices) as a whole. Absent and
/// `null` are the same.
fn walk(path: &mut Vec<Step>, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<Change>) {
    let (old, new) = (old.filter(|v| !v.is_null()), new.filter(|v| !v.is_null()));
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                path.push(Step::Key(key.clone()));
                walk(path, a.get(key), b.get(key), out);
                path.pop();
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) if path == &[Step::Key("phases".into())] => {
            for i in 0..a.len().max(b.len()) {
                path.push(Step::Index(i));
                walk(path, a.get(i), b.get(i), out);
                path.pop();
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(Change {
            key: path_text(path),
            old: a.cloned(),
            new: b.cloned(),
            effect: effect(path, a, b),
        }),
    }
}

/// Whether the change at `path` keeps the earlier trials' meaning (see the
/// module docs for the rules).
fn effect(path: &[Step], old: Option<&Value>, new: Option<&Value>) -> Effect {
    let key = |i: usize| match path.get(i) {
        Some(Step::Key(k)) => Some(k.as_str()),
        _ => None,
    };
    let more_values = || match (old, new) {
        (Some(Value::Array(a)), Some(Value::Array(b))) => a.iter().all(|v| b.contains(v)),
        _ => false,
    };
    let continues = match (key(0), path.get(1), key(2), key(3)) {
        (Some("resources" | "mode"), ..) => true,
        // A phase added after the others.
        (Some("phases"), Some(Step::Index(_)), None, _) => old.is_none(),
        (Some("phases"), Some(Step::Index(_)), Some("n_trials"), _) => true,
        // More values on an axis of a grid (the grid's other cells stay).
        (Some("phases"), Some(Step::Index(_)), Some("sampler"), Some("values")) if path.len() == 5 => {
            more_values()
        }
        (Some("sweep"), Some(Step::Key(k)), _, _) if k == "values" && path.len() == 3 => more_values(),
        _ => false,
    };
    if continues {
        Effect::Continues
    } else {
        Effect::Stops
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn effects(old: Value, new: Value) -> Vec<(String, Effect)> {
        diff(&old, &new).into_iter().map(|c| (c.key, c.effect)).collect()
    }

    #[test]
    fn unchanged_definitions_have_no_changes_and_null_is_absent() {
        let a = json!({"name": "s", "seed": 1, "sweep": null, "phases": [{"name": "tpe", "n_trials": 10}]});
        let b = json!({"name": "s", "seed": 1, "phases": [{"name": "tpe", "n_trials": 10}]});
        assert!(diff(&a, &b).is_empty());
    }

    #[test]
    fn changes_are_named_by_key_and_sorted_into_continue_and_stop() {
        let old = json!({
            "seed": 1,
            "resources": {"retries": 0},
            "training": {"epochs": 120},
            "phases": [{"name": "tpe", "n_trials": 10,
                        "sampler": {"type": "tpe", "multivariate": null, "values": null},
                        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}}},
                       {"name": "grid", "sampler": {"type": "grid", "values": {"a": [1, 2]}}}],
            "sweep": null,
        });
        let new = json!({
            "seed": 1,
            "resources": {"retries": 2},
            "training": {"epochs": 60},
            "phases": [{"name": "tpe", "n_trials": 20,
                        "sampler": {"type": "tpe", "multivariate": true, "values": null},
                        "space": {"x": {"type": "float", "low": 0.0, "high": 2.0}}},
                       {"name": "grid", "sampler": {"type": "grid", "values": {"a": [1, 2, 3]}}},
                       {"name": "more", "n_trials": 5}],
        });
        assert_eq!(
            effects(old.clone(), new.clone()),
            vec![
                ("phases[0].n_trials".to_owned(), Effect::Continues),
                ("phases[0].sampler.multivariate".to_owned(), Effect::Stops),
                ("phases[0].space.x.high".to_owned(), Effect::Stops),
                ("phases[1].sampler.values.a".to_owned(), Effect::Continues),
                ("phases[2]".to_owned(), Effect::Continues),
                ("resources.retries".to_owned(), Effect::Continues),
                ("training.epochs".to_owned(), Effect::Stops),
            ]
        );
        let change = &diff(&old, &new)[2];
        assert_eq!(change.to_string(), "phases[0].space.x.high: 1.0 → 2.0");
        // Back again: fewer grid values and a removed phase stop.
        let back = effects(new, old);
        assert!(back.contains(&("phases[1].sampler.values.a".to_owned(), Effect::Stops)));
        assert!(back.contains(&("phases[2]".to_owned(), Effect::Stops)));
    }

    #[test]
    fn sweeps_grow_by_values_and_stop_on_a_new_axis() {
        let old = json!({"sweep": {"values": {"lmax": [1, 2]}}});
        let grown = json!({"sweep": {"values": {"lmax": [1, 2, 3]}}});
        let axis = json!({"sweep": {"values": {"lmax": [1, 2], "kind": ["scalar"]}}});
        assert_eq!(effects(old.clone(), grown), vec![("sweep.values.lmax".to_owned(), Effect::Continues)]);
        assert_eq!(effects(old, axis), vec![("sweep.values.kind".to_owned(), Effect::Stops)]);
    }

    /// Constraints, the failure policy and a parameter's condition alter
    /// what earlier trials mean (which is feasible, where a parameter
    /// exists): all stop, parsed from real study files. A file without
    /// constraints reads as before they existed.
    #[test]
    fn constraints_and_conditions_stop() {
        let file = |extra: &str, when: &str| -> Value {
            let text = format!(
                "name: s\nobjective:\n  command: echo {{x}}\nphases:\n  - name: tpe\n    sampler: {{type: tpe}}\n    \
                 n_trials: 4\n    space:\n      o: {{type: categorical, choices: [a, b]}}\n      \
                 x: {{type: float, low: 0.0, high: 1.0{when}}}\n{extra}"
            );
            of_file(&serde_yaml::from_str(&text).unwrap())
        };
        let plain = file("", "");
        assert!(plain.get("constraints").is_none() && plain.get("failures").is_none());
        let bounded = file("constraints:\n  - {metric: cost, max: 3}\n", "");
        assert_eq!(effects(plain.clone(), bounded.clone()), vec![("constraints".to_owned(), Effect::Stops)]);
        let infeasible = file("constraints:\n  - {metric: cost, max: 3}\nfailures: infeasible\n", "");
        assert_eq!(effects(bounded, infeasible), vec![("failures".to_owned(), Effect::Stops)]);
        let conditional = file("", ", when: {o: b}");
        assert_eq!(effects(plain, conditional), vec![("phases[0].space.x.when".to_owned(), Effect::Stops)]);
    }

    #[test]
    fn a_change_of_objectives_stops() {
        let one = json!({"name": "s", "objective": {"metric": "val_loss", "direction": "minimize"}});
        let two = json!({"name": "s", "objective": [
            {"metric": "val_anisotropy_mae", "direction": "minimize"},
            {"metric": "num_params", "direction": "minimize"},
        ]});
        let changes = effects(one, two.clone());
        assert!(
            !changes.is_empty()
                && changes
                    .iter()
                    .all(|(key, effect)| key.starts_with("objective") && *effect == Effect::Stops),
            "{changes:?}"
        );
        let mut other = two.clone();
        other["objective"][1]["direction"] = json!("maximize");
        assert_eq!(effects(two, other), [("objective".to_owned(), Effect::Stops)]);
    }
}
