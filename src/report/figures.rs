//! Publication figures of `study report`, each written as `STEM.png` and `STEM.svg`.
//!
//! The figures follow the AnisoNet paper: MAE against l_max for both models, MAE per
//! crystal system as grouped bars, parity heat maps with log-scaled counts, plus the
//! optimisation plots users know from Optuna (history, importances, parallel coordinates).
//!
//! Every figure uses one colour-blind-safe palette (Okabe–Ito; the series labelled
//! "equivariant" is always blue, "scalar" always vermillion), DejaVu Sans compiled into the
//! binary (PNGs render the same on machines without fonts), and draws its title and axis
//! labels as SVG text. Non-finite values are skipped; when nothing is left to draw the
//! function returns an error naming what is empty, and writes no file. Rendering is
//! deterministic: the same input gives the same bytes.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::hpo::Direction;

mod bars;
mod chart;
mod lines;
mod parallel;
mod parity;
mod points;
mod render;
mod scale;
mod style;

/// The two files of one figure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FigureFiles {
    pub png: PathBuf,
    pub svg: PathBuf,
}

/// A mean with an optional 95 % confidence half-width (None: a single value, no bar).
#[derive(Clone, Copy, Debug)]
pub struct ErrorPoint {
    pub x: f64,
    pub mean: f64,
    pub half_width: Option<f64>,
}

/// One line of [`sweep_lines`].
#[derive(Clone, Debug)]
pub struct LineSeries {
    pub label: String,
    pub points: Vec<ErrorPoint>,
}

/// One colour of [`grouped_bars`]: `values[i]` belongs to `categories[i]`
/// (`ErrorPoint::x` is ignored).
#[derive(Clone, Debug)]
pub struct BarSeries {
    pub label: String,
    pub values: Vec<Option<ErrorPoint>>,
}

/// One finished trial of [`optimisation_history`].
#[derive(Clone, Debug)]
pub struct HistoryPoint {
    pub trial: u64,
    pub value: f64,
    pub phase: String,
}

/// How a [`ParallelAxis`] maps its values.
#[derive(Clone, Debug)]
pub enum AxisKind {
    Linear,
    /// Log-spaced, labelled in the original units; values must be positive.
    Log,
    /// Values are indices into these labels.
    Categorical(Vec<String>),
}

/// One parameter of [`parallel_coordinates`]: one value per trial.
#[derive(Clone, Debug)]
pub struct ParallelAxis {
    pub name: String,
    pub kind: AxisKind,
    pub values: Vec<f64>,
}

/// MAE vs l_max for both models: lines with markers and error bars; x ticks at the
/// integers when every x is an integer; series may miss points (infeasible cells).
/// When every mean is ≥ 0 (errors, counts) the y axis starts at 0 and interval ends
/// below 0 are cut there, without a cap.
pub fn sweep_lines(
    dir: &Path,
    stem: &str,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[LineSeries],
) -> Result<FigureFiles> {
    let figure = lines::Sweep::new(title, x_label, y_label, series)?;
    render::write_figure(dir, stem, &figure)
}

/// Grouped bars (e.g. crystal systems × {equivariant, scalar}) with error bars;
/// `values[i]` belongs to `categories[i]`; None draws nothing for that slot. As in
/// [`sweep_lines`], intervals of non-negative quantities are cut at 0.
pub fn grouped_bars(
    dir: &Path,
    stem: &str,
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[BarSeries],
) -> Result<FigureFiles> {
    let figure = bars::Grouped::new(title, y_label, categories, series)?;
    render::write_figure(dir, stem, &figure)
}

/// Reference vs predicted as a 2-D histogram with log-scaled counts, a colour bar,
/// the y = x line and equal axis ranges (Fig. 4a/5a of the paper); `bins` per axis.
pub fn parity_heatmap(
    dir: &Path,
    stem: &str,
    title: &str,
    quantity: &str,
    reference: &[f64],
    predicted: &[f64],
    bins: usize,
) -> Result<FigureFiles> {
    let figure = parity::Parity::new(title, quantity, reference, predicted, bins)?;
    render::write_figure(dir, stem, &figure)
}

/// Objective of each finished trial (dots, coloured by phase) and the best so far (a step line).
pub fn optimisation_history(
    dir: &Path,
    stem: &str,
    title: &str,
    objective: &str,
    direction: Direction,
    points: &[HistoryPoint],
) -> Result<FigureFiles> {
    let figure = lines::History::new(title, objective, direction, points)?;
    render::write_figure(dir, stem, &figure)
}

/// Horizontal bars, largest on top, values shown.
pub fn importance_bars(
    dir: &Path,
    stem: &str,
    title: &str,
    importances: &[(String, f64)],
) -> Result<FigureFiles> {
    let figure = bars::Importance::new(title, importances)?;
    render::write_figure(dir, stem, &figure)
}

/// One vertical axis per parameter plus the objective; one polyline per trial,
/// coloured by objective (best = most saturated); categorical axes show their labels,
/// log axes are log-spaced and labelled in the original units.
pub fn parallel_coordinates(
    dir: &Path,
    stem: &str,
    title: &str,
    axes: &[ParallelAxis],
    objective: &str,
    objective_values: &[f64],
    direction: Direction,
) -> Result<FigureFiles> {
    let figure = parallel::Parallel::new(title, axes, objective, objective_values, direction)?;
    render::write_figure(dir, stem, &figure)
}

/// Counts of `values` in `bins` equal-width bins over their range (a screen's predicted a_r).
pub fn histogram(
    dir: &Path,
    stem: &str,
    title: &str,
    x_label: &str,
    values: &[f64],
    bins: usize,
) -> Result<FigureFiles> {
    let figure = points::Histogram::new(title, x_label, values, bins)?;
    render::write_figure(dir, stem, &figure)
}

/// Points `(x, y, marked)`, listed as `labels.0`: the marked ones (a
/// screen's top N, a study's Pareto set) drawn on top in the second colour
/// and listed as `labels.1`.
pub fn scatter(
    dir: &Path,
    stem: &str,
    title: &str,
    x_label: &str,
    y_label: &str,
    points: &[(f64, f64, bool)],
    labels: (&str, &str),
) -> Result<FigureFiles> {
    let figure = points::Scatter::new(title, x_label, y_label, points, labels.0, labels.1)?;
    render::write_figure(dir, stem, &figure)
}
