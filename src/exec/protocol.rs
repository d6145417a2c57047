//! What a trial process says on stdout: one JSON object per line.
//!
//! Built-in trials (`study trial …`) speak the versioned protocol, every
//! line `{"v": 1, "type": …, …}`:
//!
//! | type           | fields                                    | meaning                          |
//! |----------------|-------------------------------------------|----------------------------------|
//! | `start`        | `trial`, `device`, `pid`                  | the trial is running             |
//! | `epoch`        | `epoch`, `metrics` {name: value}          | one epoch's metrics              |
//! | `intermediate` | `step`, `value`                           | a value the pruner judges        |
//! | `metrics`      | `metrics` {name: value}                   | final metrics (e.g. test MAE)    |
//! | `artifact`     | `kind`, `path`                            | a file the trial wrote           |
//! | `final`        | `objective`, `objectives`, `constraints` (both optional) | the objective value(s); last line |
//! | `error`        | `kind` (e.g. `nan_loss`, `oom`), `message`| why the trial gives up           |
//!
//! A `command` objective prints `{"objective": x}` as its last line
//! (`{"objective": x, "constraints": [c1, c2]}` with constraint values of
//! its own, each feasible when ≤ 0; `{"objectives": [a, b]}` in a study
//! with several objectives), and may print `{"step": n, "value": x}`
//! lines to enable pruning and `{"metrics": {"name": x, …}}` lines with
//! metrics that constraints and reports can name. Any other line
//! (progress bars, warnings, a newer protocol version) is kept in the log
//! and otherwise ignored. Non-finite numbers, which Python's `json` writes
//! as `NaN` / `Infinity`, are read as NaN.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// One message of a trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    Start {
        #[serde(default)]
        trial: Option<u64>,
        #[serde(default)]
        device: Option<String>,
        #[serde(default)]
        pid: Option<u32>,
    },
    Epoch {
        epoch: u64,
        #[serde(default)]
        metrics: BTreeMap<String, Number>,
    },
    Intermediate {
        step: u64,
        value: Number,
    },
    Metrics {
        metrics: BTreeMap<String, Number>,
    },
    /// A file the trial produced (e.g. `test_predictions`); `path` is
    /// absolute or relative to the trial's folder.
    Artifact {
        kind: String,
        path: String,
    },
    Final {
        /// The objective's value; with several objectives, the first one's.
        objective: Number,
        /// Every objective's value, where the trial reports several.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        objectives: Option<Vec<Number>>,
        /// Constraint values the trial reports itself (≤ 0 feasible).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        constraints: Option<Vec<Number>>,
    },
    Error {
        #[serde(default)]
        kind: Option<String>,
        message: String,
    },
}

/// A number that may be non-finite (`null` on the wire). A missing field
/// stays an error: only an explicit `null` (or `NaN`) reads as NaN.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Number(pub f64);

impl Serialize for Number {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.is_finite() {
            true => serializer.serialize_f64(self.0),
            false => serializer.serialize_none(),
        }
    }
}

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumberVisitor;
        impl serde::de::Visitor<'_> for NumberVisitor {
            type Value = Number;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number or null")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Number, E> {
                Ok(Number(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
            fn visit_unit<E>(self) -> Result<Number, E> {
                Ok(Number(f64::NAN))
            }
            fn visit_none<E>(self) -> Result<Number, E> {
                Ok(Number(f64::NAN))
            }
        }
        deserializer.deserialize_any(NumberVisitor)
    }
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    v: u32,
    #[serde(flatten)]
    message: Message,
}

/// The `command` objective's own lines.
#[derive(Deserialize)]
#[serde(untagged)]
enum CommandLine {
    Final {
        objective: Number,
        #[serde(default)]
        constraints: Option<Vec<Number>>,
    },
    Objectives {
        objectives: Vec<Number>,
        #[serde(default)]
        constraints: Option<Vec<Number>>,
    },
    Intermediate {
        step: u64,
        value: Number,
    },
    Metrics {
        metrics: BTreeMap<String, Number>,
    },
}

/// The JSON line for `message` (no newline).
pub fn encode(message: &Message) -> String {
    serde_json::to_string(&Envelope { v: PROTOCOL_VERSION, message: message.clone() })
        .expect("messages always serialise")
}

/// Writes `message` as one protocol line and flushes, so the controller
/// sees it at once (for the trial side, e.g. `emit(&mut std::io::stdout(), …)`).
pub fn emit(out: &mut impl std::io::Write, message: &Message) -> std::io::Result<()> {
    writeln!(out, "{}", encode(message))?;
    out.flush()
}

/// What one stdout line means.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    Message(Message),
    /// Not a message: kept in the log only. Carries why, when the line looked
    /// like one (e.g. a newer protocol version, a malformed field).
    Other(Option<String>),
}

/// Reads one stdout line of a trial.
pub fn parse_line(line: &str) -> Line {
    let line = line.trim();
    if !line.starts_with('{') {
        return Line::Other(None);
    }
    let Ok(value) = parse_json(line) else { return Line::Other(None) };
    let Some(object) = value.as_object() else { return Line::Other(None) };
    if let Some(version) = object.get("v") {
        if version.as_u64() != Some(PROTOCOL_VERSION as u64) {
            return Line::Other(Some(format!("protocol version {version} is not {PROTOCOL_VERSION}")));
        }
        return match serde_json::from_value::<Envelope>(value) {
            Ok(envelope) => Line::Message(envelope.message),
            Err(err) => Line::Other(Some(format!("malformed protocol line: {err}"))),
        };
    }
    if !["objective", "objectives", "step", "metrics"].iter().any(|key| object.contains_key(*key)) {
        return Line::Other(None);
    }
    match serde_json::from_value::<CommandLine>(value) {
        Ok(CommandLine::Final { objective, constraints }) => {
            Line::Message(Message::Final { objective, objectives: None, constraints })
        }
        Ok(CommandLine::Objectives { objectives, constraints }) => Line::Message(Message::Final {
            objective: objectives.first().copied().unwrap_or(Number(f64::NAN)),
            objectives: Some(objectives),
            constraints,
        }),
        Ok(CommandLine::Intermediate { step, value }) => Line::Message(Message::Intermediate { step, value }),
        Ok(CommandLine::Metrics { metrics }) => Line::Message(Message::Metrics { metrics }),
        Err(_) => Line::Other(Some(
            "expected {\"objective\": <number>, \"constraints\": [<number>, …]}, {\"objectives\": [<number>, …]}, \
             {\"step\": <n>, \"value\": <number>} or {\"metrics\": {\"<name>\": <number>, …}}"
                .to_owned(),
        )),
    }
}

/// JSON, also accepting the bare `NaN`, `Infinity` and `-Infinity` that
/// Python writes (read as null, so as NaN).
fn parse_json(line: &str) -> serde_json::Result<serde_json::Value> {
    serde_json::from_str(line).or_else(|err| {
        let mut cleaned = String::with_capacity(line.len());
        let mut in_string = false;
        let mut escaped = false;
        let mut rest = line;
        while let Some(c) = rest.chars().next() {
            if in_string {
                in_string = c != '"' || escaped;
                escaped = c == '\\' && !escaped;
            } else if c == '"' {
                in_string = true;
            } else if let Some(token) = ["-Infinity", "Infinity", "NaN"].iter().find(|t| rest.starts_with(*t))
            {
                cleaned.push_str("null");
                rest = &rest[token.len()..];
                continue;
            }
            cleaned.push(c);
            rest = &rest[c.len_utf8()..];
        }
        if cleaned == line {
            Err(err)
        } else {
            serde_json::from_str(&cleaned)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_message() {
        let messages = [
            Message::Start { trial: Some(3), device: Some("cuda:0".into()), pid: Some(42) },
            Message::Epoch { epoch: 2, metrics: [("val_loss".to_owned(), Number(0.5))].into() },
            Message::Intermediate { step: 2, value: Number(0.5) },
            Message::Metrics { metrics: [("test_eps_poly_mae".to_owned(), Number(0.3))].into() },
            Message::Artifact { kind: "test_predictions".into(), path: "test_predictions.csv".into() },
            Message::Final { objective: Number(0.25), objectives: None, constraints: None },
            Message::Final {
                objective: Number(0.25),
                objectives: None,
                constraints: Some(vec![Number(-1.0), Number(2.0)]),
            },
            Message::Final {
                objective: Number(0.25),
                objectives: Some(vec![Number(0.25), Number(3.0)]),
                constraints: None,
            },
            Message::Error { kind: Some("nan_loss".into()), message: "loss is NaN at epoch 3".into() },
        ];
        for message in messages {
            let mut out = Vec::new();
            emit(&mut out, &message).unwrap();
            let line = String::from_utf8(out).unwrap();
            assert!(line.starts_with("{\"v\":1,\"type\":") && line.ends_with("}\n"), "{line}");
            assert_eq!(parse_line(&line), Line::Message(message));
        }
    }

    #[test]
    fn reads_command_lines_and_python_nan() {
        assert_eq!(
            parse_line(r#"{"objective": 1.5}"#),
            Line::Message(Message::Final { objective: Number(1.5), objectives: None, constraints: None })
        );
        assert_eq!(
            parse_line(r#"{"objective": 1.5, "constraints": [-0.5, 2]}"#),
            Line::Message(Message::Final {
                objective: Number(1.5),
                objectives: None,
                constraints: Some(vec![Number(-0.5), Number(2.0)])
            })
        );
        assert_eq!(
            parse_line(r#"{"objectives": [0.5, 1e6], "constraints": [-1]}"#),
            Line::Message(Message::Final {
                objective: Number(0.5),
                objectives: Some(vec![Number(0.5), Number(1e6)]),
                constraints: Some(vec![Number(-1.0)])
            })
        );
        assert_eq!(
            parse_line(r#"{"metrics": {"params": 1200, "peak_memory_gb": 3.5}}"#),
            Line::Message(Message::Metrics {
                metrics: [("params".to_owned(), Number(1200.0)), ("peak_memory_gb".to_owned(), Number(3.5))]
                    .into()
            })
        );
        assert_eq!(
            parse_line(r#"{"step": 4, "value": 0.2}"#),
            Line::Message(Message::Intermediate { step: 4, value: Number(0.2) })
        );
        let Line::Message(Message::Final { objective, .. }) = parse_line(r#"{"objective": NaN}"#) else {
            panic!("NaN objective not read")
        };
        assert!(objective.0.is_nan());
        let Line::Message(Message::Final { objective, .. }) = parse_line(r#"{"objective": -Infinity}"#)
        else {
            panic!("infinite objective not read")
        };
        assert!(objective.0.is_nan());
    }

    #[test]
    fn tolerates_other_lines() {
        assert_eq!(parse_line("epoch 3/120 ━━━━━"), Line::Other(None));
        assert_eq!(parse_line("{not json"), Line::Other(None));
        assert_eq!(parse_line(r#"{"loss": 1}"#), Line::Other(None));
        assert!(matches!(parse_line(r#"{"v": 2, "type": "final", "objective": 1}"#), Line::Other(Some(_))));
        assert!(matches!(parse_line(r#"{"objective": "high"}"#), Line::Other(Some(_))));
        assert!(matches!(parse_line(r#"{"v": 1, "type": "final"}"#), Line::Other(Some(_))));
        assert!(matches!(parse_line(r#"{"step": 1}"#), Line::Other(Some(_))));
    }
}
