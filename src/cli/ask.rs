//! `study ask` and `study tell`: an outside driver (a workflow engine, a
//! script) runs the trials of a study with `resources.executor: external`.
//!
//! `ask` prints one JSON object per trial on its own line (the trial's
//! number, parameters, seed, folder and the command that runs it); `tell`
//! records a result, an intermediate value or a failure, and with
//! `--should-prune` prints `true` or `false`. Each call holds the study's
//! lock only while it writes, so drivers in many processes can share a study.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::error::InputError;
use crate::study::external::{Asked, ExternalStudy, Told};
use crate::study::file::TimeoutSpec;

/// Ask for trials of a study whose trials someone else runs.
#[derive(Debug, Args)]
pub struct AskArgs {
    /// The study file (its first ask creates the study), or the name of a
    /// study in the results folder.
    pub study: String,
    /// Results folder; the study lives in `<DIR>/<name>/`.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
    /// How many trials to ask for (fewer are printed when the study has fewer to give now).
    #[arg(long = "n", value_name = "K", default_value_t = 1)]
    pub n: u32,
    /// First fail RUNNING trials whose last heartbeat (ask, report or
    /// `tell --heartbeat`) is older than this: seconds, or "90s", "30m", "2h".
    #[arg(long, value_name = "AGE")]
    pub stale_after: Option<String>,
    /// Override a key of the study file, e.g. `--set training.epochs=5` (repeatable).
    #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
    pub set: Vec<String>,
    /// Go on although the study file changed in ways that alter what earlier trials mean.
    #[arg(long)]
    pub accept_changes: bool,
}

pub fn ask(args: AskArgs) -> Result<()> {
    let stale_after = match &args.stale_after {
        None => None,
        Some(text) => Some(parse_age(text)?),
    };
    let mut study = ExternalStudy::open(&args.study, &args.results, &args.set, args.accept_changes)?;
    if let Some(age) = stale_after {
        for number in study.fail_stale(age)? {
            eprintln!("study {}: trial {number} FAILED (no heartbeat for {} s)", study.name(), age.as_secs());
        }
    }
    for _ in 0..args.n {
        match study.ask()? {
            Asked::Trial(trial) => println!("{}", serde_json::to_string(&trial)?),
            Asked::Wait => {
                eprintln!("study {}: the next trial waits for the running ones to be told", study.name());
                break;
            }
            Asked::Finished => {
                eprintln!("study {}: every phase is done; nothing left to ask", study.name());
                break;
            }
        }
    }
    Ok(())
}

/// Tell the result of a trial that `study ask` handed out.
#[derive(Debug, Args)]
pub struct TellArgs {
    /// The study's name in the results folder (or its study file).
    pub study: String,
    /// Results folder; the study lives in `<DIR>/<name>/`.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
    /// The trial's number, as `study ask` printed it.
    #[arg(long, value_name = "N")]
    pub trial: u64,
    /// The objective value: the trial is COMPLETE.
    #[arg(long, value_name = "X", allow_negative_numbers = true, conflicts_with_all = ["values", "state"])]
    pub value: Option<f64>,
    /// The objective values, comma-separated, one per objective.
    #[arg(
        long,
        value_name = "X,…",
        value_delimiter = ',',
        allow_negative_numbers = true,
        conflicts_with = "state"
    )]
    pub values: Vec<f64>,
    /// End the trial FAILED (`fail`) or PRUNED (`pruned`, its last intermediate value becomes its value).
    #[arg(long, value_name = "STATE", value_parser = ["fail", "pruned"])]
    pub state: Option<String>,
    /// Why the trial failed, with `--state fail`.
    #[arg(long, value_name = "TEXT", requires = "state")]
    pub reason: Option<String>,
    /// The trial's own constraint values, comma-separated, each feasible when ≤ 0
    /// (the study's `constraints` entries with a `name`, in order).
    #[arg(long, value_name = "C,…", value_delimiter = ',', allow_negative_numbers = true)]
    pub constraints: Vec<f64>,
    /// A final metric recorded with the result, e.g. `--metric val_mae=0.21` (repeatable).
    #[arg(long = "metric", value_name = "NAME=X")]
    pub metrics: Vec<String>,
    /// The step of an intermediate value (with --intermediate).
    #[arg(long, value_name = "S", requires = "intermediate")]
    pub step: Option<u64>,
    /// An intermediate value at --step, for the pruner (the trial stays RUNNING).
    #[arg(long, value_name = "V", allow_negative_numbers = true, requires = "step")]
    pub intermediate: Option<f64>,
    /// Print `true` if the pruner stops the trial after its last intermediate value, else `false`.
    #[arg(long)]
    pub should_prune: bool,
    /// Only show that the trial's driver is alive (see `study ask --stale-after`).
    #[arg(long)]
    pub heartbeat: bool,
}

pub fn tell(args: TellArgs) -> Result<()> {
    let ends = args.value.is_some() || !args.values.is_empty() || args.state.is_some();
    let reports = args.intermediate.is_some();
    if !ends && !reports && !args.should_prune && !args.heartbeat {
        return Err(InputError::new("study tell", "nothing to tell")
            .with_hint("give --value X, --state fail|pruned, --step S --intermediate V, --should-prune or --heartbeat")
            .into());
    }
    if ends && (reports || args.should_prune) {
        return Err(InputError::new("study tell", "a trial is ended and reported in separate calls")
            .with_hint("report with --step S --intermediate V [--should-prune], then end it with --value X")
            .into());
    }
    let metrics = parse_metrics(&args.metrics)?;
    if !args.constraints.is_empty() && !ends {
        return Err(InputError::new(
            "study tell --constraints",
            "constraint values are told with the trial's result",
        )
        .with_hint("give them together with --value X or --state")
        .into());
    }
    if !metrics.is_empty() && !ends {
        return Err(InputError::new("study tell --metric", "metrics are recorded with the trial's result")
            .with_hint("give them together with --value X or --state")
            .into());
    }
    let told = match (&args.value, args.values.as_slice(), args.state.as_deref()) {
        (Some(value), _, _) => Some(Told::Complete(*value)),
        (None, [value], _) => Some(Told::Complete(*value)),
        (None, [], Some("fail")) => Some(Told::Failed(args.reason.clone())),
        (None, [], Some(_)) => Some(Told::Pruned),
        (None, [], None) => None,
        (None, many, _) => Some(Told::Values(many.to_vec())),
    };
    let mut study = ExternalStudy::open(&args.study, &args.results, &[], false)?;
    if let (Some(step), Some(value)) = (args.step, args.intermediate) {
        study.report(args.trial, step, value)?;
    }
    if args.heartbeat {
        study.heartbeat(args.trial)?;
    }
    if args.should_prune {
        println!("{}", study.should_prune(args.trial)?);
    }
    if let Some(told) = told {
        let reported = (!args.constraints.is_empty()).then_some(args.constraints.as_slice());
        study.tell(args.trial, told, &metrics, reported)?;
        let trial = study.study().trial(args.trial).expect("a told trial exists");
        eprintln!("study {}: trial {} {}", study.name(), args.trial, trial.state.name());
    }
    Ok(())
}

fn parse_age(text: &str) -> Result<std::time::Duration> {
    let seconds = TimeoutSpec::Text(text.to_owned()).seconds().map_err(|problem| bad_age(text, &problem))?;
    Ok(std::time::Duration::from_secs_f64(seconds))
}

fn bad_age(text: &str, problem: &str) -> anyhow::Error {
    InputError::new(format!("--stale-after {text}"), problem).with_hint("e.g. 600, 90s, 30m or 2h").into()
}

fn parse_metrics(texts: &[String]) -> Result<BTreeMap<String, f64>> {
    let mut metrics = BTreeMap::new();
    for text in texts {
        let parsed = text
            .split_once('=')
            .and_then(|(name, value)| Some((name.trim(), value.trim().parse::<f64>().ok()?)));
        match parsed {
            Some((name, value)) if !name.is_empty() => {
                metrics.insert(name.to_owned(), value);
            }
            _ => {
                return Err(InputError::new(format!("--metric {text}"), "is not NAME=NUMBER")
                    .with_hint("e.g. --metric val_mae=0.21")
                    .into())
            }
        }
    }
    Ok(metrics)
}
