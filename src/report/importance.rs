//! Hyperparameter importance by functional ANOVA (fANOVA; Hutter, Hoos &
//! Leyton-Brown 2014, "An efficient approach for assessing hyperparameter
//! importance"), the method behind Optuna's default importance evaluator.
//!
//! A seeded random forest learns the objective from the trials' parameters
//! ([`forest`]). Each tree is a piecewise-constant function on boxes of the
//! search space, so its variance over the uniformly weighted space, and the
//! variance of each parameter's marginal (the prediction averaged over all
//! other parameters), are exact sums over its leaves ([`fanova`]). A
//! parameter's importance is its marginal's share of the tree's variance,
//! averaged over the trees and normalised so the importances sum to 1.
//!
//! Encoding, as the samplers see the space ([`Distribution::to_internal`]):
//! numbers on a log scale by their logarithm, so a log domain is weighted
//! uniformly in log space. (Optuna's evaluator keeps raw values instead.)
//! Categoricals stay unordered: trees split them by subsets of their choices,
//! and their marginal weighs each choice equally, over the choices that
//! occur in the trials (Optuna one-hot encodes them, which weighs the
//! impossible all-zero and multi-hot corners of the one-hot cube too).

pub mod fanova;
pub mod forest;

use anyhow::{bail, ensure, Context};
use rayon::prelude::*;
use serde::Serialize;

use crate::hpo::{Distribution, Params, SearchSpace};

pub use fanova::{decompose, Decomposition};
pub use forest::{fit_forest, Column, ForestOptions, Tree};

/// Importance of one hyperparameter: its share (0…1) of the objective's variance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamImportance {
    pub name: String,
    pub importance: f64,
}

/// fANOVA importances of the parameters of `space` over `trials` (params,
/// objective), sorted by importance descending (ties by name).
///
/// Trials missing a parameter of the space, with a value outside its kind
/// (a categorical value that is not a choice, a non-positive value on a log
/// scale) or with a non-finite objective are left out. Numeric bounds are the
/// space's, widened to any trial values outside them. A parameter that takes
/// a single value in every trial gets 0; when the objective never varies (or
/// varies only through interactions), every parameter gets 0. Errors for an
/// empty or invalid space and for fewer than 2 usable trials.
pub fn fanova_importances(
    space: &SearchSpace,
    trials: &[(Params, f64)],
    options: &ForestOptions,
) -> anyhow::Result<Vec<ParamImportance>> {
    ensure!(!space.is_empty(), "cannot assess hyperparameter importance: the search space has no parameters");
    space.validate().context("cannot assess hyperparameter importance")?;
    let encode = |params: &Params| -> Option<Vec<f64>> {
        space
            .params
            .iter()
            .map(|(name, dist)| dist.to_internal(params.get(name)?).filter(|x| x.is_finite()))
            .collect()
    };
    let (mut rows, mut targets) = (Vec::new(), Vec::new());
    for (params, objective) in trials {
        if let (Some(row), true) = (encode(params), objective.is_finite()) {
            rows.push(row);
            targets.push(*objective);
        }
    }
    ensure!(
        rows.len() >= 2,
        "cannot assess hyperparameter importance: it needs at least 2 finished trials with a finite \
         objective and a value for every parameter of the search space ({}), but {} of {} trials qualify",
        space.params.keys().cloned().collect::<Vec<_>>().join(", "),
        rows.len(),
        trials.len()
    );
    let columns: Vec<Column> =
        space.params.values().enumerate().map(|(c, dist)| encode_column(dist, &mut rows, c)).collect();
    let importances = matrix_importances(&columns, &rows, &targets, options)?;
    let mut result: Vec<ParamImportance> = space
        .params
        .keys()
        .zip(importances)
        .map(|(name, importance)| ParamImportance { name: name.clone(), importance })
        .collect();
    result.sort_by(|a, b| b.importance.total_cmp(&a.importance).then_with(|| a.name.cmp(&b.name)));
    Ok(result)
}

/// The column of one parameter, recoding column `c` of `rows` where needed:
/// numeric bounds cover every value; categorical choices are renumbered
/// over the choices that occur, in the space's order. A numeric parameter
/// on a one-point domain becomes a one-choice categorical (a constant).
fn encode_column(dist: &Distribution, rows: &mut [Vec<f64>], c: usize) -> Column {
    match dist {
        Distribution::Categorical { choices } => {
            let mut seen = vec![false; choices.len()];
            for row in rows.iter() {
                seen[row[c] as usize] = true;
            }
            let mut renumbered = vec![0.0; choices.len()];
            let mut n_choices = 0;
            for (choice, _) in seen.iter().enumerate().filter(|(_, &seen)| seen) {
                renumbered[choice] = n_choices as f64;
                n_choices += 1;
            }
            for row in rows.iter_mut() {
                row[c] = renumbered[row[c] as usize];
            }
            Column::Categorical { n_choices }
        }
        _ => {
            let (mut low, mut high) = dist.internal_bounds();
            for row in rows.iter() {
                low = low.min(row[c]);
                high = high.max(row[c]);
            }
            if low < high {
                Column::Numeric { low, high }
            } else {
                rows.iter_mut().for_each(|row| row[c] = 0.0);
                Column::Categorical { n_choices: 1 }
            }
        }
    }
}

/// fANOVA importances of the columns of a feature matrix: `rows[i][c]` is
/// row `i`'s value of column `c` (a number inside a numeric column's bounds,
/// or a choice index 0…n_choices − 1), `targets[i]` its objective. Returns
/// one importance per column, in column order, summing to 1 (or all 0 when
/// no tree's prediction varies along any single column).
pub fn matrix_importances(
    columns: &[Column],
    rows: &[Vec<f64>],
    targets: &[f64],
    options: &ForestOptions,
) -> anyhow::Result<Vec<f64>> {
    check_inputs(columns, rows, targets, options)?;
    let x: Vec<Vec<f64>> = (0..columns.len()).map(|c| rows.iter().map(|row| row[c]).collect()).collect();
    let trees = fit_forest(columns, &x, targets, options);
    let decompositions: Vec<Decomposition> = trees.par_iter().map(|tree| decompose(tree, columns)).collect();
    // Each tree whose prediction varies contributes the fraction of its variance per column.
    let varying: Vec<&Decomposition> = decompositions.iter().filter(|d| d.total_variance > 0.0).collect();
    let mut importances = vec![0.0; columns.len()];
    for d in &varying {
        for (importance, marginal) in importances.iter_mut().zip(&d.marginal_variances) {
            *importance += marginal / d.total_variance;
        }
    }
    let total: f64 = importances.iter().sum();
    if total > 0.0 {
        importances.iter_mut().for_each(|importance| *importance /= total);
    }
    Ok(importances)
}

/// Rejects inputs the forest cannot use, naming the offending row and column.
fn check_inputs(
    columns: &[Column],
    rows: &[Vec<f64>],
    targets: &[f64],
    options: &ForestOptions,
) -> anyhow::Result<()> {
    ensure!(!columns.is_empty(), "fANOVA needs at least one column");
    ensure!(options.n_trees > 0, "fANOVA needs at least one tree (n_trees is 0)");
    ensure!(rows.len() == targets.len(), "{} rows but {} targets", rows.len(), targets.len());
    ensure!(rows.len() >= 2, "fANOVA needs at least 2 rows, got {}", rows.len());
    for (c, column) in columns.iter().enumerate() {
        match *column {
            Column::Numeric { low, high } => ensure!(
                low.is_finite() && high.is_finite() && low < high,
                "column {c}: numeric bounds [{low}, {high}] must be finite with low < high"
            ),
            Column::Categorical { n_choices } => ensure!(n_choices > 0, "column {c}: no choices"),
        }
    }
    for (i, (row, target)) in rows.iter().zip(targets).enumerate() {
        ensure!(target.is_finite(), "row {i}: target {target} is not finite");
        ensure!(row.len() == columns.len(), "row {i}: {} values for {} columns", row.len(), columns.len());
        for (c, (&x, column)) in row.iter().zip(columns).enumerate() {
            match *column {
                Column::Numeric { low, high } => {
                    if !(x >= low && x <= high) {
                        bail!("row {i}, column {c}: {x} is outside the bounds [{low}, {high}]");
                    }
                }
                Column::Categorical { n_choices } => {
                    if !(x >= 0.0 && x < n_choices as f64 && x.fract() == 0.0) {
                        bail!("row {i}, column {c}: {x} is not a choice index below {n_choices}");
                    }
                }
            }
        }
    }
    Ok(())
}
