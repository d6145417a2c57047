//! Pruners decide from intermediate values (one per step, e.g. the
//! validation loss per epoch) whether a running trial should stop early.
//! They follow Optuna's `MedianPruner` and `SuccessiveHalvingPruner` and,
//! like the samplers, keep no state: everything comes from the trials.

use serde::{Deserialize, Serialize};

use super::{Direction, FrozenTrial, TrialState};
use anisostudy_error::InputError;

/// Decides whether `trial` (RUNNING, with its intermediate values so far)
/// should be pruned, given the study's other trials.
pub trait Pruner {
    fn prune(&self, trial: &FrozenTrial, history: &[FrozenTrial], direction: Direction) -> bool;
}

/// Never prunes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct NopPruner;

impl Pruner for NopPruner {
    fn prune(&self, _: &FrozenTrial, _: &[FrozenTrial], _: Direction) -> bool {
        false
    }
}

/// Prunes a trial whose best intermediate value so far is worse than the
/// median of the COMPLETE trials' values at the trial's current step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MedianPruner {
    /// No pruning until this many trials are COMPLETE.
    pub n_startup_trials: usize,
    /// No pruning before this step.
    pub n_warmup_steps: u64,
    /// Prune only at steps n_warmup_steps + k·interval_steps (or the first
    /// report after such a step).
    pub interval_steps: u64,
    /// No pruning unless at least this many COMPLETE trials reported the step.
    pub n_min_trials: usize,
}

impl Default for MedianPruner {
    fn default() -> Self {
        Self { n_startup_trials: 5, n_warmup_steps: 0, interval_steps: 1, n_min_trials: 1 }
    }
}

impl Pruner for MedianPruner {
    fn prune(&self, trial: &FrozenTrial, history: &[FrozenTrial], direction: Direction) -> bool {
        let completed: Vec<&FrozenTrial> =
            history.iter().filter(|t| t.state == TrialState::Complete && t.number != trial.number).collect();
        if completed.is_empty() || completed.len() < self.n_startup_trials {
            return false;
        }
        let Some(step) = trial.last_step() else { return false };
        if step < self.n_warmup_steps || !self.is_first_in_interval(trial, step) {
            return false;
        }
        let best_so_far = trial.intermediate.values().copied().filter(|v| !v.is_nan()).reduce(|a, b| {
            if direction.better(a, b) {
                a
            } else {
                b
            }
        });
        let Some(best_so_far) = best_so_far else { return true };
        let at_step: Vec<f64> = completed.iter().filter_map(|t| t.intermediate.get(&step).copied()).collect();
        if at_step.len() < self.n_min_trials {
            return false;
        }
        let Some(median) = nan_median(at_step) else { return false };
        direction.better(median, best_so_far)
    }
}

impl MedianPruner {
    pub fn validate(&self, location: &str) -> Result<(), InputError> {
        if self.interval_steps == 0 {
            return Err(InputError::new(location, "interval_steps must be at least 1"));
        }
        if self.n_min_trials == 0 {
            return Err(InputError::new(location, "n_min_trials must be at least 1"));
        }
        Ok(())
    }

    /// Whether `step` is the first report at or after the latest pruning
    /// step (so a trial is judged once per interval even if it skips steps).
    fn is_first_in_interval(&self, trial: &FrozenTrial, step: u64) -> bool {
        let pruning_step =
            (step - self.n_warmup_steps) / self.interval_steps * self.interval_steps + self.n_warmup_steps;
        let previous = trial.intermediate.keys().rev().find(|&&s| s != step);
        previous.is_none_or(|&s| s < pruning_step)
    }
}

/// The median ignoring NaN (linear interpolation, as numpy's nanpercentile).
fn nan_median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| !v.is_nan());
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 { values[n / 2] } else { 0.5 * (values[n / 2 - 1] + values[n / 2]) })
}

/// Asynchronous successive halving (ASHA, Li et al. 2020) as in Optuna.
///
/// Rung r is reached at step min_resource · η^(min_early_stopping_rate + r).
/// A trial reaching a rung continues only if its value there is among the
/// best 1/η of all values recorded at that rung (for fewer than η values:
/// only if it is the best). A trial's value at a rung is its intermediate
/// value at the first step it reported at or after the rung's step — the
/// value Optuna records when the pruner is asked after every report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SuccessiveHalvingPruner {
    /// Steps before the first rung; `None` estimates it as Optuna's "auto"
    /// does: max(last step of the longest COMPLETE trial / 100, 1), no
    /// pruning before a trial has completed.
    pub min_resource: Option<u64>,
    /// η: the fraction 1/η of trials is promoted at each rung.
    pub reduction_factor: u64,
    /// s: the first rung is at min_resource · η^s.
    pub min_early_stopping_rate: u32,
}

impl Default for SuccessiveHalvingPruner {
    fn default() -> Self {
        Self { min_resource: None, reduction_factor: 4, min_early_stopping_rate: 0 }
    }
}

impl SuccessiveHalvingPruner {
    pub fn validate(&self, location: &str) -> Result<(), InputError> {
        if self.reduction_factor < 2 {
            return Err(InputError::new(location, "reduction_factor must be at least 2"));
        }
        if self.min_resource == Some(0) {
            return Err(InputError::new(location, "min_resource must be at least 1"));
        }
        Ok(())
    }

    fn rung_step(&self, min_resource: u64, rung: u32) -> u64 {
        let factor = self.reduction_factor.saturating_pow(self.min_early_stopping_rate + rung);
        min_resource.saturating_mul(factor)
    }
}

/// The value a trial recorded at the rung starting at `rung_step`.
fn rung_value(trial: &FrozenTrial, rung_step: u64) -> Option<f64> {
    trial.intermediate.range(rung_step..).next().map(|(_, &v)| v)
}

impl Pruner for SuccessiveHalvingPruner {
    fn prune(&self, trial: &FrozenTrial, history: &[FrozenTrial], direction: Direction) -> bool {
        let Some((step, value)) = trial.last_intermediate() else { return false };
        let min_resource = match self.min_resource {
            Some(r) => r,
            None => {
                let longest = history
                    .iter()
                    .filter(|t| t.state == TrialState::Complete)
                    .filter_map(FrozenTrial::last_step)
                    .max();
                match longest {
                    Some(last) => (last / 100).max(1),
                    None => return false,
                }
            }
        };
        // Rungs passed at an earlier report were judged then.
        let previous = trial.intermediate.keys().rev().nth(1).copied();
        let mut rung = 0;
        while previous.is_some_and(|p| p >= self.rung_step(min_resource, rung)) {
            rung += 1;
        }
        loop {
            let rung_step = self.rung_step(min_resource, rung);
            if step < rung_step {
                return false;
            }
            if value.is_nan() {
                return true;
            }
            let mut competing: Vec<f64> = history
                .iter()
                .filter(|t| t.number != trial.number)
                .filter_map(|t| rung_value(t, rung_step))
                .filter(|v| !v.is_nan())
                .collect();
            competing.push(value);
            if !promotable(value, competing, self.reduction_factor, direction) {
                return true;
            }
            rung += 1;
        }
    }
}

/// Whether `value` is among the best ⌊n/η⌋ of the `competing` values (which
/// include it); with fewer than η values, whether it is the best.
fn promotable(value: f64, mut competing: Vec<f64>, reduction_factor: u64, direction: Direction) -> bool {
    let promotable_index = (competing.len() / reduction_factor as usize).max(1) - 1;
    competing.sort_by(f64::total_cmp);
    match direction {
        Direction::Minimize => value <= competing[promotable_index],
        Direction::Maximize => value >= competing[competing.len() - 1 - promotable_index],
    }
}

/// Hyperband (Li et al. 2018) as in Optuna's `HyperbandPruner`: trials are
/// spread over brackets, each a successive-halving pruner over the same
/// minimum resource, maximum resource and reduction factor η, bracket b
/// with its first rung at min_resource · η^b. Bracket 0 stops trials
/// earliest and gets the most trials: bracket b's share of the trials is
/// ⌈B · η^s / (s + 1)⌉ with s = B − 1 − b, for B = ⌊log_η(max / min)⌋ + 1
/// brackets. A trial's bracket is the CRC-32 of `<study name>_<number>`
/// ([`HyperbandPruner::for_study`]), as in Optuna, so it never changes, and
/// it competes only with trials of its own bracket.
///
/// Samplers learn from every trial. Optuna means its samplers to see only
/// the new trial's bracket (`_filter_study`), but its TPE reads the trials
/// through `Study._get_trials`, which the bracket's view does not filter, so
/// in Optuna 5.0 TPE sees them all; filtering here made searches worse
/// than Optuna's (`benches/pruner_budget`: mixed space, 40 trials' worth of
/// steps, p = 0.0001), not filtering leaves none worse.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HyperbandPruner {
    /// Steps before the first rung of bracket 0.
    pub min_resource: u64,
    /// The steps a trial runs at most; `None` takes the last step of the
    /// first COMPLETE trial + 1, as Optuna's "auto" (no pruning before one).
    pub max_resource: Option<u64>,
    /// η: each rung keeps the best 1/η.
    pub reduction_factor: u64,
    /// The CRC-32 register after `<study name>_`, where a trial's bracket
    /// hash starts: with [`HyperbandPruner::for_study`] a trial's bracket is
    /// the one Optuna gives it in a study of that name.
    pub bracket_key: u32,
}

impl Default for HyperbandPruner {
    fn default() -> Self {
        Self { min_resource: 1, max_resource: None, reduction_factor: 3, bracket_key: !0 }
    }
}

impl HyperbandPruner {
    /// This pruner in the study named `name`: trials get the brackets
    /// Optuna gives them there (a CRC-32 of `<name>_<number>`).
    pub fn for_study(self, name: &str) -> Self {
        Self { bracket_key: crc32_update(!0, format!("{name}_").as_bytes()), ..self }
    }

    pub fn validate(&self, location: &str) -> Result<(), InputError> {
        if self.reduction_factor < 2 {
            return Err(InputError::new(location, "reduction_factor must be at least 2"));
        }
        if self.min_resource == 0 {
            return Err(InputError::new(location, "min_resource must be at least 1"));
        }
        if self.max_resource.is_some_and(|max| max < self.min_resource) {
            return Err(InputError::new(location, "max_resource must be at least min_resource")
                .with_hint("max_resource is the most steps (epochs) a trial reports"));
        }
        Ok(())
    }

    /// The maximum resource: as configured, or from the COMPLETE trials of
    /// `history` (`None` until one has reported).
    fn max_resource(&self, history: &[FrozenTrial]) -> Option<u64> {
        self.max_resource.or_else(|| {
            history
                .iter()
                .filter(|t| t.state == TrialState::Complete)
                .filter_map(FrozenTrial::last_step)
                .max()
                .map(|last| last + 1)
        })
    }

    /// Each bracket's share of the trials (Optuna's trial allocation budgets).
    fn budgets(&self, max_resource: u64) -> Vec<u64> {
        let eta = self.reduction_factor as f64;
        let ratio = (max_resource as f64 / self.min_resource as f64).max(1.0);
        // A tolerance so that exact powers (max/min = η^k) give k + 1 brackets.
        let brackets = ((ratio.ln() / eta.ln()) + 1e-9).floor() as u32 + 1;
        (0..brackets)
            .map(|b| {
                let s = brackets - 1 - b;
                (f64::from(brackets) * eta.powi(s as i32) / f64::from(s + 1)).ceil() as u64
            })
            .collect()
    }

    /// The bracket of trial `number`, once the maximum resource is known.
    pub fn bracket(&self, number: u64, history: &[FrozenTrial]) -> Option<usize> {
        let budgets = self.budgets(self.max_resource(history)?);
        let total: u64 = budgets.iter().sum();
        let hash = !crc32_update(self.bracket_key, number.to_string().as_bytes());
        let mut n = u64::from(hash) % total;
        for (bracket, budget) in budgets.iter().enumerate() {
            if n < *budget {
                return Some(bracket);
            }
            n -= budget;
        }
        unreachable!("n is below the budgets' total")
    }
}

impl Pruner for HyperbandPruner {
    fn prune(&self, trial: &FrozenTrial, history: &[FrozenTrial], direction: Direction) -> bool {
        let Some(bracket) = self.bracket(trial.number, history) else { return false };
        let rivals: Vec<FrozenTrial> =
            history.iter().filter(|t| self.bracket(t.number, history) == Some(bracket)).cloned().collect();
        let halving = SuccessiveHalvingPruner {
            min_resource: Some(self.min_resource),
            reduction_factor: self.reduction_factor,
            min_early_stopping_rate: bracket as u32,
        };
        halving.prune(trial, &rivals, direction)
    }
}

/// CRC-32 (IEEE, as Python's `binascii.crc32`, with which Optuna assigns
/// Hyperband brackets) continued over `bytes` from the register `crc`
/// (`!0` to start; the checksum is the final register inverted).
fn crc32_update(mut crc: u32, bytes: &[u8]) -> u32 {
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    crc
}

/// The pruner of a study, as configured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrunerConfig {
    #[default]
    None,
    Median(MedianPruner),
    SuccessiveHalving(SuccessiveHalvingPruner),
    Hyperband(HyperbandPruner),
}

impl PrunerConfig {
    pub fn validate(&self, location: &str) -> Result<(), InputError> {
        match self {
            PrunerConfig::None => Ok(()),
            PrunerConfig::Median(p) => p.validate(location),
            PrunerConfig::SuccessiveHalving(p) => p.validate(location),
            PrunerConfig::Hyperband(p) => p.validate(location),
        }
    }
}

impl Pruner for PrunerConfig {
    fn prune(&self, trial: &FrozenTrial, history: &[FrozenTrial], direction: Direction) -> bool {
        match self {
            PrunerConfig::None => NopPruner.prune(trial, history, direction),
            PrunerConfig::Median(p) => p.prune(trial, history, direction),
            PrunerConfig::SuccessiveHalving(p) => p.prune(trial, history, direction),
            PrunerConfig::Hyperband(p) => p.prune(trial, history, direction),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(number: u64, state: TrialState, curve: &[f64]) -> FrozenTrial {
        FrozenTrial {
            number,
            phase: 0,
            state,
            params: Default::default(),
            value: curve.last().copied(),
            intermediate: curve.iter().enumerate().map(|(s, &v)| (s as u64, v)).collect(),
            values: Vec::new(),
            constraints: None,
        }
    }

    #[test]
    fn median_pruner_compares_best_so_far_with_median_at_step() {
        let mut history: Vec<FrozenTrial> =
            (0..5).map(|i| trial(i, TrialState::Complete, &[1.0 + i as f64, 1.0 + i as f64])).collect();
        // Median at step 1 is 3.0.
        let bad = trial(10, TrialState::Running, &[5.0, 4.0]);
        let good = trial(11, TrialState::Running, &[5.0, 2.5]);
        let lucky_start = trial(12, TrialState::Running, &[2.0, 9.0]);
        let pruner = MedianPruner::default();
        assert!(pruner.prune(&bad, &history, Direction::Minimize));
        assert!(!pruner.prune(&good, &history, Direction::Minimize));
        assert!(!pruner.prune(&lucky_start, &history, Direction::Minimize));
        let weak = trial(13, TrialState::Running, &[1.0, 2.0]);
        assert!(!pruner.prune(&good, &history, Direction::Maximize));
        assert!(pruner.prune(&weak, &history, Direction::Maximize));
        // Startup: with 4 COMPLETE trials nothing is pruned; warm-up likewise.
        assert!(!pruner.prune(&bad, &history[..4], Direction::Minimize));
        assert!(!MedianPruner { n_warmup_steps: 2, ..pruner }.prune(&bad, &history, Direction::Minimize));
        assert!(!MedianPruner { n_min_trials: 6, ..pruner }.prune(&bad, &history, Direction::Minimize));
        // Interval 2 from warm-up 0: step 1 is not a pruning step.
        assert!(!MedianPruner { interval_steps: 2, ..pruner }.prune(&bad, &history, Direction::Minimize));
        history.push(trial(20, TrialState::Running, &[f64::NAN]));
        assert!(pruner.prune(&history[5].clone(), &history, Direction::Minimize));
    }

    #[test]
    fn hyperband_spreads_trials_over_brackets_as_optuna_does() {
        assert_eq!(!crc32_update(!0, b"123456789"), 0xCBF4_3926, "the standard CRC-32 check value");
        let pruner = HyperbandPruner { max_resource: Some(81), ..Default::default() };
        // Optuna's bracket of trial 7 of study "tuning": binascii.crc32(b"tuning_7") % 143 = 12 → bracket 0.
        assert_eq!(!crc32_update(!0, b"tuning_7"), 0x464B_7D98);
        let named = pruner.for_study("tuning");
        assert_eq!(!crc32_update(named.bracket_key, b"7"), 0x464B_7D98);
        assert_eq!(named.bracket(7, &[]), Some(0));
        // B = 5 brackets; bracket b gets ⌈5·3^s/(s+1)⌉, s = 4 − b.
        assert_eq!(pruner.budgets(81), [81, 34, 15, 8, 5]);
        assert_eq!(pruner.budgets(80), [27, 12, 6, 4], "⌊log₃ 80⌋ + 1 = 4 brackets");
        assert_eq!(pruner.budgets(1), [1], "one bracket when max = min");
        let mut counts = [0usize; 5];
        for number in 0..10_000 {
            let bracket = pruner.bracket(number, &[]).unwrap();
            assert_eq!(pruner.bracket(number, &[]), Some(bracket), "a trial keeps its bracket");
            counts[bracket] += 1;
        }
        // The shares follow the budgets (81 : 34 : 15 : 8 : 5 of 143), within sampling noise.
        for (count, budget) in counts.iter().zip([81.0, 34.0, 15.0, 8.0, 5.0]) {
            let expected = 10_000.0 * budget / 143.0;
            assert!((*count as f64 - expected).abs() < 4.0 * expected.sqrt() + 10.0, "{counts:?}");
        }
        // "auto": no brackets, so no pruning, until a trial has completed.
        let auto = HyperbandPruner::default();
        let running = trial(3, TrialState::Running, &[9.0, 9.0]);
        assert_eq!(auto.bracket(3, &[]), None);
        assert!(!auto.prune(&running, &[], Direction::Minimize));
        let done = trial(0, TrialState::Complete, &[1.0; 9]);
        assert_eq!(auto.budgets(auto.max_resource(&[done]).unwrap()), [9, 5, 3], "max = 9 steps: 3 brackets");
    }

    #[test]
    fn hyperband_judges_a_trial_within_its_bracket_from_its_first_rung() {
        let pruner = HyperbandPruner { max_resource: Some(9), ..Default::default() };
        let in_bracket = |b: usize| (0..).filter(move |&n| pruner.bracket(n, &[]) == Some(b));
        // Bracket 0: rungs at steps 1, 3, 9. Three rivals at rung 0 of which the new trial is worst.
        let rivals: Vec<FrozenTrial> = in_bracket(0)
            .take(3)
            .enumerate()
            .map(|(k, n)| trial(n, TrialState::Complete, &[0.0, k as f64, k as f64]))
            .collect();
        let worst = in_bracket(0).nth(3).unwrap();
        assert!(pruner.prune(&trial(worst, TrialState::Running, &[0.0, 5.0]), &rivals, Direction::Minimize));
        // A trial of bracket 1 does not compete with bracket 0, and its first rung is at step 3.
        let other = in_bracket(1).next().unwrap();
        let mut history = rivals.clone();
        history.push(trial(worst, TrialState::Complete, &[0.0, 5.0]));
        assert!(!pruner.prune(
            &trial(other, TrialState::Running, &[0.0, 5.0]),
            &history,
            Direction::Minimize
        ));
    }

    #[test]
    fn successive_halving_keeps_the_best_quarter_per_rung() {
        let pruner = SuccessiveHalvingPruner { min_resource: Some(1), ..Default::default() };
        // Rung 0 at step 1, rung 1 at step 4. Seven trials recorded rung 0.
        let history: Vec<FrozenTrial> =
            (0..7).map(|i| trial(i, TrialState::Complete, &[0.0, i as f64 + 1.0])).collect();
        // Eight values at rung 0 → the best 2 are promoted: 1.0, 2.0.
        let ok = trial(10, TrialState::Running, &[0.0, 1.5]);
        let bad = trial(11, TrialState::Running, &[0.0, 2.5]);
        assert!(!pruner.prune(&ok, &history, Direction::Minimize));
        assert!(pruner.prune(&bad, &history, Direction::Minimize));
        // Before the first rung nothing happens.
        assert!(!pruner.prune(&trial(12, TrialState::Running, &[9.0]), &history, Direction::Minimize));
        // Auto min_resource waits for a COMPLETE trial.
        let auto = SuccessiveHalvingPruner::default();
        assert!(!auto.prune(&bad, &[], Direction::Minimize));
        assert!(auto.prune(&bad, &history, Direction::Minimize));
        // Between rungs (step 2, rung 0 judged at step 1) nothing new is judged.
        let mut between = bad.clone();
        between.intermediate.insert(2, 7.0);
        assert!(!pruner.prune(&between, &history, Direction::Minimize));
    }
}
