//! `study run`: run or resume a study file.
//!
//! Progress goes to stderr: bars (overall, and one line per slot with its
//! trial, epoch and losses) on a terminal, one log line per event otherwise.
//! The summary goes to stdout. Ctrl-C stops gracefully (running trials
//! checkpoint and exit), a second Ctrl-C kills them; running the same
//! command again resumes.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::exec::devices::{Machine, Slot};
use crate::exec::protocol::Message;
use crate::exec::scheduler::{Outcome, TrialReport};
use crate::hpo::{Direction, FrozenTrial, Params, TrialState};
use crate::storage::TrialDetails;
use crate::study::{self, Observer};

/// Run (or resume) a study file.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The study file (YAML; see docs/study-file.md).
    pub file: PathBuf,
    /// Results folder; the study's database and trials go to `<DIR>/<name>/`.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
    /// Override a key of the file, e.g. `--set training.epochs=5` (repeatable).
    #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
    pub set: Vec<String>,
    /// Go on although the file changed in ways that alter what the study's
    /// earlier trials mean (its space, sampler, data, training …); the
    /// changes are recorded in the study and shown by `status` and `report`.
    #[arg(long)]
    pub accept_changes: bool,
}

pub fn run(args: RunArgs) -> Result<()> {
    let mut plan = study::load(&args.file, &args.set)?;
    plan.accept_changes = args.accept_changes;
    let dir = study::study_dir(&args.results, &plan.name);
    let machine = Machine::detect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let names = plan.objectives.names();
    let metric = match (&plan.objective, names.first()) {
        (_, Some(first)) => first.as_str(),
        (study::Objective::Anisonet { metric }, None) => metric.name(),
        (study::Objective::Command { .. }, None) => "objective",
    };
    let mut progress = Progress::new(plan.config.direction, metric.to_owned());
    eprintln!("study {}: results in {}", plan.name, dir.display());
    let summary = runtime.block_on(async {
        let stop = crate::exec::ctrl_c();
        study::run_plan_observed(&plan, &args.results, &machine, stop, &mut progress).await
    })?;
    progress.clear();

    let secs = progress.started.elapsed().as_secs_f64();
    let store = crate::storage::Database::open_read_only(dir.join("study.db"))?.open_study(&plan.name)?;
    let trials = store.all_trial_details()?;
    let count = |state: TrialState| trials.iter().filter(|t| t.trial.state == state).count();
    let ran = summary.complete + summary.pruned + summary.failed;
    println!(
        "study {}: {} complete, {} pruned, {} failed ({ran} run now in {secs:.1} s)",
        plan.name,
        count(TrialState::Complete),
        count(TrialState::Pruned),
        count(TrialState::Failed),
    );
    if plan.objectives.is_multi() {
        let frozen: Vec<_> = trials.iter().map(|t| t.trial.clone()).collect();
        let mut text = String::new();
        let constrained = plan.constraints.is_active();
        super::status::write_pareto_set(&mut text, &frozen, &plan.objectives.stored(), constrained)?;
        print!("{text}");
    } else {
        match TrialDetails::best(&trials, plan.config.direction) {
            Some((t, value)) => println!(
                "best: trial {}  {} {value:.6}  {}",
                t.trial.number,
                progress.metric,
                format_params(&t.trial.params)
            ),
            None => println!("best: none yet"),
        }
    }
    if summary.stopped {
        println!(
            "stopped: {} trial(s) interrupted; run the same command again to resume",
            summary.interrupted
        );
    }
    println!("results: {}", dir.display());
    Ok(())
}

/// `lr=0.003 em_dim=48`.
pub fn format_params(params: &Params) -> String {
    params.iter().map(|(k, v)| format!("{k}={}", short(v))).collect::<Vec<_>>().join(" ")
}

fn short(value: &crate::hpo::ParamValue) -> String {
    match value {
        crate::hpo::ParamValue::Float(x) => format!("{x:.4e}").replace("e0", "").replace("e-0", "e-"),
        other => other.to_string(),
    }
}

/// Bars on a terminal, log lines otherwise.
struct Progress {
    direction: Direction,
    metric: String,
    started: Instant,
    multi: Option<MultiProgress>,
    overall: Option<ProgressBar>,
    lines: HashMap<usize, ProgressBar>,
    /// Slot of each running trial.
    slot_of: HashMap<u64, Slot>,
    best: Option<(u64, f64, Params)>,
}

impl Progress {
    fn new(direction: Direction, metric: String) -> Progress {
        let multi = std::io::stderr().is_terminal().then(MultiProgress::new);
        Progress {
            direction,
            metric,
            started: Instant::now(),
            multi,
            overall: None,
            lines: HashMap::new(),
            slot_of: HashMap::new(),
            best: None,
        }
    }

    fn log(&self, line: String) {
        match &self.multi {
            Some(multi) => {
                let _ = multi.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    fn clear(&mut self) {
        if let Some(bar) = &self.overall {
            bar.finish();
        }
        for bar in self.lines.values() {
            bar.finish_and_clear();
        }
    }

    fn best_text(&self) -> String {
        match &self.best {
            Some((n, v, _)) => format!("best {} {v:.4} (trial {n})", self.metric),
            None => String::new(),
        }
    }
}

impl Observer for Progress {
    fn definition_changed(&mut self, changes: &[study::definition::Change]) {
        let accepted = changes.iter().any(|c| c.effect == study::definition::Effect::Stops);
        let verdict = if accepted {
            "accepted and recorded"
        } else {
            "recorded; they leave earlier trials as they are"
        };
        self.log(format!("the study file changed since the last run ({verdict}):"));
        for change in changes {
            self.log(format!("  {change}"));
        }
    }

    fn begin(&mut self, slots: &[Slot], finished: usize, budget: Option<u64>) {
        let devices: Vec<String> = slots.iter().map(Slot::label).collect();
        let total = budget.map_or("an open number of".to_owned(), |b| b.to_string());
        self.log(format!(
            "{total} trials on {} slot(s) ({}); {finished} already finished",
            slots.len(),
            devices.join(", ")
        ));
        let Some(multi) = &self.multi else { return };
        let overall = multi.add(match budget {
            Some(total) => ProgressBar::new(total),
            None => ProgressBar::no_length(),
        });
        overall.set_style(
            ProgressStyle::with_template("trials {pos}/{len} [{bar:30}] {elapsed_precise} ETA {eta}  {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        overall.set_position(finished as u64);
        overall.enable_steady_tick(Duration::from_millis(500));
        for slot in slots {
            let line = multi.add(ProgressBar::new_spinner());
            line.set_style(ProgressStyle::with_template("  {prefix:>7} {msg}").expect("valid template"));
            line.set_prefix(slot.label());
            line.set_message("idle");
            self.lines.insert(slot.index, line);
        }
        self.overall = Some(overall);
    }

    fn data(&mut self, about: &str) {
        self.log(format!("data: {about}"));
    }

    fn note(&mut self, note: &str) {
        self.log(note.to_owned());
    }

    fn started(&mut self, number: u64, slot: &Slot, params: &Params, resumed_after: Option<u64>) {
        self.slot_of.insert(number, slot.clone());
        let how = resumed_after.map_or("started".to_owned(), |epoch| format!("resumed after epoch {epoch}"));
        let params = format_params(params);
        match self.lines.get(&slot.index) {
            Some(line) => line.set_message(format!("trial {number}  {how}  {params}")),
            None => self.log(format!("trial {number} {how} on {}: {params}", slot.label())),
        }
    }

    fn message(&mut self, number: u64, message: &Message) {
        let Message::Epoch { epoch, metrics } = message else { return };
        let get = |k: &str| metrics.get(k).map(|n| n.0);
        let of = get("max_epochs").map_or(String::new(), |m| format!("/{m}"));
        let loss = |k: &str| get(k).map_or("-".to_owned(), |v| format!("{v:.4}"));
        let text = format!(
            "trial {number}  epoch {epoch}{of}  train {}  val {}",
            loss("train_loss"),
            loss("val_loss")
        );
        match self.slot_of.get(&number).and_then(|s| self.lines.get(&s.index)) {
            Some(line) => line.set_message(text),
            None => self.log(text),
        }
    }

    fn finished(&mut self, number: u64, report: &TrialReport, trial: Option<&FrozenTrial>) {
        let slot = self.slot_of.remove(&number);
        if let Some(line) = slot.and_then(|s| self.lines.get(&s.index)) {
            line.set_message("idle");
        }
        let secs = report.elapsed.as_secs_f64();
        let text = match &report.outcome {
            Outcome::Complete(v) => {
                let feasible = trial.is_none_or(FrozenTrial::is_feasible);
                if feasible && self.best.as_ref().is_none_or(|(_, b, _)| self.direction.better(*v, *b)) {
                    let params = trial.map(|t| t.params.clone()).unwrap_or_default();
                    self.best = Some((number, *v, params));
                }
                format!("trial {number} COMPLETE  {} {v:.6}  ({secs:.1} s)", self.metric)
            }
            Outcome::Pruned => format!("trial {number} PRUNED  ({secs:.1} s)"),
            Outcome::Failed(reason) => format!("trial {number} FAILED: {reason}"),
            Outcome::Interrupted => {
                format!("trial {number} interrupted (checkpointed; resumes on the next run)")
            }
        };
        self.log(text);
        if let Some(overall) = &self.overall {
            if !matches!(report.outcome, Outcome::Interrupted) {
                overall.inc(1);
            }
            overall.set_message(self.best_text());
        }
    }
}
