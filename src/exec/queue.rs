//! A controller over a fixed list of trials: runs plain command lists
//! (and the scheduler's tests and benchmarks) and records what happened.

use std::collections::{BTreeMap, VecDeque};

use super::devices::Slot;
use super::launch::TrialSpec;
use super::protocol::Message;
use super::scheduler::{Controller, Directive, Next, TrialReport};

/// Decides from a message whether to prune a trial.
pub type PruneRule = Box<dyn FnMut(u64, &Message) -> Directive + Send>;

/// Hands out `queue` in order and keeps every event.
#[derive(Default)]
pub struct QueueController {
    queue: VecDeque<TrialSpec>,
    prune: Option<PruneRule>,
    /// (trial, slot index, attempt) of every start.
    pub starts: Vec<(u64, usize, u32)>,
    /// (trial, why it waits to start, or `None` once it started).
    pub waits: Vec<(u64, Option<String>)>,
    pub messages: Vec<(u64, Message)>,
    /// (trial, failed attempt, reason) of every retry.
    pub retries: Vec<(u64, u32, String)>,
    pub reports: BTreeMap<u64, TrialReport>,
}

impl QueueController {
    pub fn new(trials: impl IntoIterator<Item = TrialSpec>) -> Self {
        Self { queue: trials.into_iter().collect(), ..Self::default() }
    }

    /// Prunes the trials for which `rule` says so.
    pub fn with_prune_rule(mut self, rule: PruneRule) -> Self {
        self.prune = Some(rule);
        self
    }
}

impl Controller for QueueController {
    fn next_trial(&mut self, _slot: &Slot) -> anyhow::Result<Next> {
        Ok(self.queue.pop_front().map_or(Next::Finished, Next::Launch))
    }

    fn on_start(&mut self, number: u64, slot: &Slot, attempt: u32) -> anyhow::Result<()> {
        self.starts.push((number, slot.index, attempt));
        Ok(())
    }

    fn on_waiting(&mut self, number: u64, reason: Option<&str>) -> anyhow::Result<()> {
        self.waits.push((number, reason.map(str::to_owned)));
        Ok(())
    }

    fn on_message(&mut self, number: u64, message: &Message) -> anyhow::Result<Directive> {
        self.messages.push((number, message.clone()));
        Ok(self.prune.as_mut().map_or(Directive::Continue, |rule| rule(number, message)))
    }

    fn on_retry(&mut self, number: u64, attempt: u32, reason: &str) -> anyhow::Result<()> {
        self.retries.push((number, attempt, reason.to_owned()));
        Ok(())
    }

    fn on_finish(&mut self, number: u64, report: &TrialReport) -> anyhow::Result<()> {
        self.reports.insert(number, report.clone());
        Ok(())
    }
}
