//! Screening: a study's best models, as an ensemble, predict ε∞ for
//! structures that have no DFPT data, and the structures are ranked by what
//! a user looks for (the paper ranked 18,835 Materials Project crystals by
//! predicted anisotropy and validated the best by DFPT).
//!
//! Files are read a frame at a time ([`crate::crystal::io::stream_structures`])
//! into a bounded queue of batches; worker threads build each structure's
//! graph, predict it with every member and reduce the tensors to
//! [`EnsembleStats`]; the calling thread filters, ranks and keeps the
//! structures of the top N only. Memory is the frames in flight, one small
//! row per screened structure and the top N structures, whatever the size of
//! the files. Each worker holds its own copy of the members (the CPU network
//! is not shared between threads), so the models' memory grows with the
//! threads.

pub mod ensemble;
pub mod models;
pub mod output;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, Result};

use crate::crystal::io::{stream_structures, ExtxyzOptions, Frame};
use crate::crystal::symmetry::{crystal_system, CrystalSystem, DEFAULT_SYMPREC};
use crate::crystal::{elements, Structure};
use crate::e3::cartesian::{irreps_to_cartesian, Mat3};
use crate::model::{AnyAnisoNet, ModelInput};
use crate::train::checkpoint;

pub use ensemble::{ensemble_stats, EnsembleStats};
pub use models::{select, Member, ModelChoice, Selection};

/// What the structures are ranked by, highest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RankBy {
    /// a_r of the mean tensor.
    Anisotropy,
    /// ε_poly of the mean tensor.
    EpsPoly,
    /// √λ_max − √λ_min of the mean tensor.
    Birefringence,
    /// The largest eigenvalue of the mean tensor.
    EpsMax,
    /// The members' disagreement on a_r (where to learn most from a DFPT run).
    AnisotropySpread,
}

impl RankBy {
    pub const NAMES: [&'static str; 5] =
        ["anisotropy", "eps_poly", "birefringence", "eps_max", "anisotropy_spread"];

    pub fn name(self) -> &'static str {
        match self {
            RankBy::Anisotropy => "anisotropy",
            RankBy::EpsPoly => "eps_poly",
            RankBy::Birefringence => "birefringence",
            RankBy::EpsMax => "eps_max",
            RankBy::AnisotropySpread => "anisotropy_spread",
        }
    }

    /// The ranked quantity of `stats` (`None`: undefined, ranked last).
    pub fn score(self, stats: &EnsembleStats) -> Option<f64> {
        match self {
            RankBy::Anisotropy => stats.anisotropy,
            RankBy::EpsPoly => Some(stats.eps_poly),
            RankBy::Birefringence => stats.birefringence,
            RankBy::EpsMax => Some(stats.eigenvalues[2]),
            RankBy::AnisotropySpread => stats.anisotropy_spread,
        }
        .filter(|v| v.is_finite())
    }
}

impl FromStr for RankBy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let by = match text {
            "anisotropy" | "a_r" => RankBy::Anisotropy,
            "eps_poly" => RankBy::EpsPoly,
            "birefringence" => RankBy::Birefringence,
            "eps_max" => RankBy::EpsMax,
            "anisotropy_spread" => RankBy::AnisotropySpread,
            _ => return Err(format!("{text:?} is none of {}", RankBy::NAMES.join(", "))),
        };
        Ok(by)
    }
}

/// Which structures a screen keeps (the paper's: ε_poly range, physical
/// predictions only, crystal systems, size).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    pub min_eps_poly: Option<f64>,
    pub max_eps_poly: Option<f64>,
    /// Drop structures whose mean tensor has an eigenvalue below 1.
    pub physical_only: bool,
    /// Keep only these systems (empty: all).
    pub systems: Vec<CrystalSystem>,
    /// Skip structures with more atoms (before predicting them).
    pub max_atoms: Option<usize>,
}

/// How a screen runs.
#[derive(Debug, Clone)]
pub struct ScreenOptions {
    pub by: RankBy,
    pub filters: Filters,
    /// Structures kept whole for the ranked extxyz and the report's table.
    pub top: usize,
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Structures per model call.
    pub batch: usize,
    pub dielectric_key: String,
    /// Draw a progress bar on a terminal.
    pub progress: bool,
}

/// One screened structure.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Index into the screened files.
    pub file: usize,
    /// 0-based frame number in its file.
    pub frame: usize,
    pub id: Option<String>,
    pub formula: String,
    pub atoms: usize,
    pub system: Option<CrystalSystem>,
    pub stats: EnsembleStats,
    /// The file's own tensor, when it has one (for checking a screen).
    pub reference: Option<Mat3>,
}

/// Structures seen and what happened to them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    pub read: usize,
    pub too_many_atoms: usize,
    pub other_system: usize,
    /// No graph could be built (e.g. an element the model cannot embed).
    pub failed: usize,
    pub outside_eps_poly: usize,
    pub unphysical: usize,
    /// Kept and ranked.
    pub ranked: usize,
}

/// A finished screen.
pub struct Screened {
    /// Ranked, best first.
    pub ranked: Vec<Candidate>,
    /// The structures of `ranked[..top]`, in the same order.
    pub top: Vec<Frame>,
    pub counts: Counts,
    /// The first few structures that failed, with why.
    pub failures: Vec<String>,
    pub seconds: f64,
}

/// `SiO2`: elements in order of first appearance, counts divided by their
/// greatest common divisor.
pub fn reduced_formula(structure: &Structure) -> String {
    let mut counts: Vec<(u8, usize)> = Vec::new();
    for &z in &structure.numbers {
        match counts.iter_mut().find(|(e, _)| *e == z) {
            Some((_, n)) => *n += 1,
            None => counts.push((z, 1)),
        }
    }
    fn gcd(a: usize, b: usize) -> usize {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let divisor = counts.iter().fold(0, |g, &(_, n)| gcd(g, n)).max(1);
    counts
        .iter()
        .map(|&(z, n)| match n / divisor {
            1 => elements::symbol(z).to_owned(),
            k => format!("{}{k}", elements::symbol(z)),
        })
        .collect()
}

/// A batch of frames on its way to a worker: (file, frame number, frame).
type Batch = Vec<(usize, usize, Frame)>;

/// What a worker hands back for one structure.
enum Outcome {
    Skipped(Skip),
    Failed(String),
    Screened(Box<(Candidate, Frame)>),
}

enum Skip {
    TooManyAtoms,
    OtherSystem,
}

/// The members' models, loaded for one thread.
struct Loaded {
    models: Vec<(AnyAnisoNet, f64)>,
}

impl Loaded {
    fn load(members: &[Member]) -> Result<Loaded> {
        let mut models = Vec::new();
        for m in members {
            let (ck, model) = checkpoint::load_best_model(&m.checkpoint)?;
            models.push((model, ck.model.cutoff));
        }
        Ok(Loaded { models })
    }

    /// Every member's tensor of each structure, from one model call per
    /// member and cutoff (members may differ in cutoff; each structure's
    /// graph is built once per cutoff). A structure whose graph cannot be
    /// built gets why instead.
    fn tensors(&self, structures: &[&Structure]) -> Result<Vec<Result<Vec<Mat3>, String>>> {
        let mut cutoffs: Vec<f64> = self.models.iter().map(|m| m.1).collect();
        cutoffs.sort_by(f64::total_cmp);
        cutoffs.dedup();
        let mut graphs: Vec<Vec<ModelInput>> = vec![Vec::new(); cutoffs.len()];
        let mut results: Vec<Result<Vec<Mat3>, String>> = Vec::with_capacity(structures.len());
        for structure in structures {
            let built: Result<Vec<ModelInput>, _> =
                cutoffs.iter().map(|&c| ModelInput::from_structure(structure, c)).collect();
            match built {
                Ok(inputs) => {
                    for (k, input) in inputs.into_iter().enumerate() {
                        graphs[k].push(input);
                    }
                    results.push(Ok(Vec::with_capacity(self.models.len())));
                }
                Err(err) => results.push(Err(err.to_string())),
            }
        }
        if graphs[0].is_empty() {
            return Ok(results);
        }
        let batched: Vec<ModelInput> = graphs.iter().map(|g| ModelInput::batch(g)).collect();
        for (model, cutoff) in &self.models {
            let k = cutoffs.iter().position(|c| c == cutoff).expect("every cutoff has graphs");
            let predicted = model.predict(&batched[k]).map_err(|e| anyhow!("prediction failed: {e}"))?;
            let built = results.iter_mut().filter_map(|r| r.as_mut().ok());
            for (per_structure, irreps) in built.zip(&predicted) {
                per_structure.push(irreps_to_cartesian(irreps));
            }
        }
        Ok(results)
    }
}

/// The ensemble's prediction of each of `structures`, in order, computed in
/// batches of `batch` structures (as `study predict` batches a file, so a
/// one-member ensemble gives its numbers to the last digit) spread over
/// `threads` threads, each with its own copy of the members.
pub fn predict(
    members: &[Member],
    structures: &[Structure],
    batch: usize,
    threads: usize,
) -> Result<Vec<EnsembleStats>> {
    if members.is_empty() {
        return Err(anyhow!("an ensemble needs at least one model"));
    }
    let chunks: Vec<(usize, &[Structure])> =
        structures.chunks(batch.max(1)).enumerate().map(|(k, c)| (k * batch.max(1), c)).collect();
    let threads = threads.clamp(1, chunks.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let per_thread: Vec<Result<Vec<(usize, EnsembleStats)>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let loaded = Loaded::load(members)?;
                    let mut done = Vec::new();
                    loop {
                        let Some(&(first, chunk)) = chunks.get(next.fetch_add(1, Ordering::Relaxed)) else {
                            return Ok(done);
                        };
                        let refs: Vec<&Structure> = chunk.iter().collect();
                        for (k, tensors) in loaded.tensors(&refs)?.into_iter().enumerate() {
                            let tensors = tensors.map_err(|err| anyhow!("structure {}: {err}", first + k))?;
                            done.push((first + k, ensemble_stats(&tensors)));
                        }
                    }
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("a prediction thread panicked")).collect()
    });
    let mut all = Vec::with_capacity(structures.len());
    for done in per_thread {
        all.extend(done?);
    }
    all.sort_by_key(|(k, _)| *k);
    Ok(all.into_iter().map(|(_, stats)| stats).collect())
}

fn screen_batch(
    loaded: &Loaded,
    files: &[PathBuf],
    batch: Batch,
    options: &ScreenOptions,
) -> Result<Vec<Outcome>> {
    let filters = &options.filters;
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut kept: Vec<(usize, usize, Frame, Option<CrystalSystem>)> = Vec::new();
    for (file, frame_number, frame) in batch {
        if filters.max_atoms.is_some_and(|max| frame.structure.len() > max) {
            outcomes.push(Outcome::Skipped(Skip::TooManyAtoms));
            continue;
        }
        let system = crystal_system(&frame.structure, DEFAULT_SYMPREC).ok();
        if !filters.systems.is_empty() && !system.is_some_and(|s| filters.systems.contains(&s)) {
            outcomes.push(Outcome::Skipped(Skip::OtherSystem));
            continue;
        }
        kept.push((file, frame_number, frame, system));
    }
    let structures: Vec<&Structure> = kept.iter().map(|(_, _, frame, _)| &frame.structure).collect();
    let predicted = loaded.tensors(&structures)?;
    let mut ready = Vec::new();
    let mut tensors = Vec::new();
    for ((file, frame_number, frame, system), predicted) in kept.into_iter().zip(predicted) {
        match predicted {
            Ok(members) => {
                ready.push((file, frame_number, frame, system));
                tensors.push(members);
            }
            Err(err) => outcomes.push(Outcome::Failed(format!(
                "{}, frame {} (line {}): {err}",
                files[file].display(),
                frame_number + 1,
                frame.line
            ))),
        }
    }
    for ((file, frame_number, frame, system), members) in ready.into_iter().zip(tensors) {
        let candidate = Candidate {
            file,
            frame: frame_number,
            id: frame.id.clone(),
            formula: reduced_formula(&frame.structure),
            atoms: frame.structure.len(),
            system,
            stats: ensemble_stats(&members),
            reference: frame.dielectric,
        };
        outcomes.push(Outcome::Screened(Box::new((candidate, frame))));
    }
    Ok(outcomes)
}

/// Ranking order: the score highest first, undefined scores last, ties in file order.
fn rank_order(by: RankBy, a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    match (by.score(&a.stats), by.score(&b.stats)) {
        (Some(x), Some(y)) => y.total_cmp(&x),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    }
    .then((a.file, a.frame).cmp(&(b.file, b.frame)))
}

/// Screens every structure of `files` with the ensemble `members`.
pub fn screen(members: &[Member], files: &[PathBuf], options: &ScreenOptions) -> Result<Screened> {
    if members.is_empty() {
        return Err(anyhow!("an ensemble needs at least one model"));
    }
    // Load once here, so a bad checkpoint fails before any thread starts.
    Loaded::load(members)?;
    let started = Instant::now();
    let threads = options.threads.max(1);
    let bar = progress_bar(files, options.progress);
    let stop = AtomicBool::new(false);
    let (batches_tx, batches_rx) = sync_channel::<Batch>(threads * 2);
    let batches_rx: Arc<Mutex<Receiver<Batch>>> = Arc::new(Mutex::new(batches_rx));
    let (results_tx, results_rx) = channel::<Vec<Outcome>>();
    let mut tally = Tally::default();

    let outcome: Result<()> = std::thread::scope(|scope| {
        let reader = {
            let bar = bar.clone();
            let stop = &stop;
            scope.spawn(move || read_batches(files, options, &batches_tx, &bar, stop))
        };
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let batches_rx = batches_rx.clone();
                let results_tx = results_tx.clone();
                let stop = &stop;
                scope.spawn(move || {
                    let result = work(members, files, options, &batches_rx, &results_tx);
                    if result.is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    result
                })
            })
            .collect();
        // Only the workers hold the queue now: if they all stop, the reader's send fails.
        drop(batches_rx);
        drop(results_tx);
        for outcomes in results_rx {
            for outcome in outcomes {
                tally.add(outcome, options);
            }
            bar.set_message(format!("{} structures", tally.counts.read));
        }
        join(workers, reader)
    });
    bar.finish_and_clear();
    outcome?;
    Ok(tally.finish(options, started))
}

/// A progress bar over the files' bytes, hidden unless `shown`.
fn progress_bar(files: &[PathBuf], shown: bool) -> indicatif::ProgressBar {
    if !shown {
        return indicatif::ProgressBar::hidden();
    }
    let total_bytes: u64 = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    let bar = indicatif::ProgressBar::new(total_bytes);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg} (eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// The reading thread: streams the files' frames into batches for the
/// workers, until the files end or `stop` is set.
fn read_batches(
    files: &[PathBuf],
    options: &ScreenOptions,
    batches: &SyncSender<Batch>,
    bar: &indicatif::ProgressBar,
    stop: &AtomicBool,
) -> Result<()> {
    let batch_size = options.batch.max(1);
    let reader_options =
        ExtxyzOptions { dielectric_key: options.dielectric_key.clone(), require_dielectric: false };
    let mut done_bytes = 0u64;
    for (k, path) in files.iter().enumerate() {
        let mut batch: Batch = Vec::with_capacity(batch_size);
        let mut frame_number = 0;
        stream_structures(path, &reader_options, |frame, bytes| {
            if stop.load(Ordering::Relaxed) {
                return Err(anyhow!("stopped"));
            }
            batch.push((k, frame_number, frame));
            frame_number += 1;
            bar.set_position(done_bytes + bytes);
            if batch.len() == batch_size {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
                batches.send(full).map_err(|_| anyhow!("stopped"))?;
            }
            Ok(())
        })?;
        if !batch.is_empty() {
            batches.send(batch).map_err(|_| anyhow!("stopped"))?;
        }
        done_bytes += std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    }
    Ok(())
}

/// A worker thread: loads its own copy of the members and screens batches
/// until the queue closes or the results are no longer read.
fn work(
    members: &[Member],
    files: &[PathBuf],
    options: &ScreenOptions,
    batches: &Mutex<Receiver<Batch>>,
    results: &Sender<Vec<Outcome>>,
) -> Result<()> {
    let loaded = Loaded::load(members)?;
    loop {
        let next = batches.lock().map_err(|_| anyhow!("a worker panicked"))?.recv();
        let Ok(batch) = next else { return Ok(()) };
        let outcomes = screen_batch(&loaded, files, batch, options)?;
        if results.send(outcomes).is_err() {
            return Ok(());
        }
    }
}

/// Waits for the threads; a worker's own error explains a reader that was
/// told to stop, so it comes first.
fn join(
    workers: Vec<std::thread::ScopedJoinHandle<'_, Result<()>>>,
    reader: std::thread::ScopedJoinHandle<'_, Result<()>>,
) -> Result<()> {
    let mut first_error = None;
    for worker in workers {
        if let Err(err) = worker.join().map_err(|_| anyhow!("a screening thread panicked"))? {
            first_error.get_or_insert(err);
        }
    }
    let read = reader.join().map_err(|_| anyhow!("the reading thread panicked"))?;
    match (first_error, read) {
        (Some(err), _) => Err(err),
        (None, Err(err)) => Err(err),
        (None, Ok(())) => Ok(()),
    }
}

/// What the calling thread keeps of the workers' outcomes.
#[derive(Default)]
struct Tally {
    counts: Counts,
    /// The first few failures, with why.
    failures: Vec<String>,
    ranked: Vec<Candidate>,
    /// The structures of the best `top` so far (pruned when twice as many).
    best: Vec<(Candidate, Frame)>,
}

impl Tally {
    /// Counts one structure's outcome, and keeps it where it passes the filters.
    fn add(&mut self, outcome: Outcome, options: &ScreenOptions) {
        let counts = &mut self.counts;
        counts.read += 1;
        match outcome {
            Outcome::Skipped(Skip::TooManyAtoms) => counts.too_many_atoms += 1,
            Outcome::Skipped(Skip::OtherSystem) => counts.other_system += 1,
            Outcome::Failed(why) => {
                counts.failed += 1;
                if self.failures.len() < 10 {
                    self.failures.push(why);
                }
            }
            Outcome::Screened(screened) => {
                let (candidate, frame) = *screened;
                let filters = &options.filters;
                let s = &candidate.stats;
                if filters.min_eps_poly.is_some_and(|min| s.eps_poly < min)
                    || filters.max_eps_poly.is_some_and(|max| s.eps_poly > max)
                {
                    counts.outside_eps_poly += 1;
                } else if filters.physical_only && s.unphysical {
                    counts.unphysical += 1;
                } else {
                    counts.ranked += 1;
                    self.keep(candidate, frame, options);
                }
            }
        }
    }

    /// Ranks a candidate, and keeps its structure while it may be in the top.
    fn keep(&mut self, candidate: Candidate, frame: Frame, options: &ScreenOptions) {
        if options.top > 0 {
            self.best.push((candidate.clone(), frame));
            if self.best.len() >= 2 * options.top.max(16) {
                self.best.sort_by(|a, b| rank_order(options.by, &a.0, &b.0));
                self.best.truncate(options.top);
            }
        }
        self.ranked.push(candidate);
    }

    /// The screen: every candidate ranked, and the top structures.
    fn finish(mut self, options: &ScreenOptions, started: Instant) -> Screened {
        let by = options.by;
        self.ranked.sort_by(|a, b| rank_order(by, a, b));
        self.best.sort_by(|a, b| rank_order(by, &a.0, &b.0));
        self.best.truncate(options.top);
        Screened {
            ranked: self.ranked,
            top: self.best.into_iter().map(|(_, frame)| frame).collect(),
            counts: self.counts,
            failures: self.failures,
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_reduced_in_order_of_appearance() {
        let s = |numbers: Vec<u8>| Structure {
            lattice: [[5.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 5.0]],
            positions: (0..numbers.len()).map(|i| [i as f64, 0.0, 0.0]).collect(),
            numbers,
        };
        assert_eq!(reduced_formula(&s(vec![14, 8, 8, 14, 8, 8])), "SiO2");
        assert_eq!(reduced_formula(&s(vec![56, 22, 8, 8, 8])), "BaTiO3");
        assert_eq!(reduced_formula(&s(vec![11, 17])), "NaCl");
    }

    #[test]
    fn rank_names_parse() {
        for name in RankBy::NAMES {
            assert_eq!(name.parse::<RankBy>().unwrap().name(), name);
        }
        assert!("size".parse::<RankBy>().unwrap_err().contains("anisotropy"));
    }
}
