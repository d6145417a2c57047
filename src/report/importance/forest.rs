//! A seeded random-forest regressor whose trees partition the feature space
//! into boxes, as fANOVA needs.
//!
//! It follows the forest Optuna's fANOVA fits (scikit-learn's
//! `RandomForestRegressor` with its defaults): every tree is grown on a
//! bootstrap sample of the rows (drawn with replacement, duplicates kept as
//! weights), every split considers every column, the split maximises the
//! reduction of the weighted squared error, and trees grow until their
//! leaves are pure or too small. Numeric splits put their threshold halfway
//! between neighbouring sample values. Categorical columns are split natively
//! by a subset of their choices: sorting the choices by their mean target and
//! taking the best prefix finds the optimal subset for squared error (Fisher
//! 1958; Breiman et al. 1984, §9.4), and choices that no sample in the node
//! has are sent to a random side, so the tree still partitions the whole domain.

use rand::RngCore;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;

use crate::hpo::rng;

/// Settings of the forest. The defaults are Optuna's for fANOVA.
#[derive(Debug, Clone, PartialEq)]
pub struct ForestOptions {
    /// Number of trees; importances are averaged over them.
    pub n_trees: usize,
    /// Longest path from the root to a leaf (the root has depth 0).
    pub max_depth: usize,
    /// Fewest distinct rows a node needs to be split.
    pub min_samples_split: usize,
    /// Fewest distinct rows each child of a split must keep.
    pub min_samples_leaf: usize,
    /// Seed of the bootstrap samples and of the tie-breaking feature order.
    pub seed: u64,
}

impl Default for ForestOptions {
    fn default() -> Self {
        Self { n_trees: 64, max_depth: 64, min_samples_split: 2, min_samples_leaf: 1, seed: 0 }
    }
}

/// The kind and domain of one feature column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Column {
    /// A real number in [low, high] (internal units: logarithms for log domains).
    Numeric { low: f64, high: f64 },
    /// One of `n_choices` unordered choices, coded 0, 1, …, n_choices − 1.
    Categorical { n_choices: usize },
}

/// How a split routes a value to its left child; everything else goes right.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// Numeric: left when `x ≤ threshold`.
    AtMost(f64),
    /// Categorical: left when `left[choice]`.
    InSet(Vec<bool>),
}

impl Rule {
    pub fn sends_left(&self, x: f64) -> bool {
        match self {
            Rule::AtMost(threshold) => x <= *threshold,
            Rule::InSet(left) => left[x as usize],
        }
    }
}

/// A node of a regression tree; `left` and `right` index the tree's nodes.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Leaf { value: f64 },
    Split { column: usize, rule: Rule, left: usize, right: usize },
}

/// A regression tree; its root is `nodes[0]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    /// The prediction for one row (values coded as the columns say).
    pub fn predict(&self, row: &[f64]) -> f64 {
        let mut node = 0;
        loop {
            match &self.nodes[node] {
                Node::Leaf { value } => return *value,
                Node::Split { column, rule, left, right } => {
                    node = if rule.sends_left(row[*column]) { *left } else { *right };
                }
            }
        }
    }
}

/// Grows `options.n_trees` trees on `x` (column-major: `x[column][row]`) and
/// targets `y`. Inputs must already be checked: finite values inside their
/// columns' domains, at least one row. Trees grow in parallel, each from its
/// own seeded generator, so the forest depends only on the inputs and seed.
pub fn fit_forest(columns: &[Column], x: &[Vec<f64>], y: &[f64], options: &ForestOptions) -> Vec<Tree> {
    // Every numeric column is sorted once; each tree filters its bootstrap rows out of it.
    let sorted: Vec<Vec<usize>> = columns
        .iter()
        .zip(x)
        .map(|(column, values)| match column {
            Column::Numeric { .. } => {
                let mut order: Vec<usize> = (0..y.len()).collect();
                order.sort_by(|&a, &b| values[a].total_cmp(&values[b]).then(a.cmp(&b)));
                order
            }
            Column::Categorical { .. } => Vec::new(),
        })
        .collect();
    (0..options.n_trees)
        .into_par_iter()
        .map(|tree| {
            let mut rng = tree_rng(options.seed, tree as u64);
            let weight = bootstrap(&mut rng, y.len());
            Builder::new(columns, x, y, weight, &sorted, rng, options).grow()
        })
        .collect()
}

/// The generator of tree `tree`: ChaCha20 keyed by the seed, the tree's index
/// and a tag, so it shares no draws with the samplers' streams.
fn tree_rng(seed: u64, tree: u64) -> ChaCha20Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&tree.to_le_bytes());
    key[16..22].copy_from_slice(b"fanova");
    ChaCha20Rng::from_seed(key)
}

/// How often each of `n` rows is drawn in `n` draws with replacement.
fn bootstrap(rng: &mut impl RngCore, n: usize) -> Vec<f64> {
    let mut counts = vec![0.0; n];
    for _ in 0..n {
        counts[rng::index(rng, n)] += 1.0;
    }
    counts
}

/// The best split found so far in a node.
struct Candidate {
    column: usize,
    /// Σ_left s²/w + Σ_right s²/w of the centred targets: larger is better.
    score: f64,
    split: CandidateSplit,
}

enum CandidateSplit {
    Threshold(f64),
    /// The choices (sorted by mean target) whose first `n_left` go left.
    Prefix {
        order: Vec<usize>,
        n_left: usize,
    },
}

/// Grows one tree. The rows of a node are the range `start..end` of
/// `members` and of every numeric column's `sorted` list; a split partitions
/// each list's range stably, so the lists stay sorted inside every node.
struct Builder<'a> {
    columns: &'a [Column],
    x: &'a [Vec<f64>],
    y: &'a [f64],
    /// Bootstrap multiplicity of every row (0 for rows left out).
    weight: Vec<f64>,
    members: Vec<usize>,
    sorted: Vec<Vec<usize>>,
    goes_left: Vec<bool>,
    scratch: Vec<usize>,
    rng: ChaCha20Rng,
    options: &'a ForestOptions,
    nodes: Vec<Node>,
}

impl<'a> Builder<'a> {
    fn new(
        columns: &'a [Column],
        x: &'a [Vec<f64>],
        y: &'a [f64],
        weight: Vec<f64>,
        sorted_all: &[Vec<usize>],
        rng: ChaCha20Rng,
        options: &'a ForestOptions,
    ) -> Self {
        let drawn = |&i: &usize| weight[i] > 0.0;
        let members: Vec<usize> = (0..y.len()).filter(drawn).collect();
        let sorted = sorted_all.iter().map(|order| order.iter().copied().filter(drawn).collect()).collect();
        Self {
            columns,
            x,
            y,
            goes_left: vec![false; y.len()],
            scratch: Vec::with_capacity(members.len()),
            members,
            sorted,
            weight,
            rng,
            options,
            nodes: Vec::new(),
        }
    }

    fn grow(mut self) -> Tree {
        // Work list of (node index, start, end, depth); children are filled in later.
        self.nodes.push(Node::Leaf { value: 0.0 });
        let mut pending = vec![(0, 0, self.members.len(), 0)];
        while let Some((node, start, end, depth)) = pending.pop() {
            let rows = &self.members[start..end];
            let total_weight: f64 = rows.iter().map(|&i| self.weight[i]).sum();
            let mean = rows.iter().map(|&i| self.weight[i] * self.y[i]).sum::<f64>() / total_weight;
            let first = self.y[rows[0]];
            let pure = rows.iter().all(|&i| self.y[i] == first);
            let n = end - start;
            let min_leaf = self.options.min_samples_leaf.max(1);
            let splittable = !pure
                && depth < self.options.max_depth
                && n >= self.options.min_samples_split.max(2)
                && n >= 2 * min_leaf;
            let best = if splittable { self.best_split(start, end, mean, total_weight) } else { None };
            let Some(best) = best else {
                self.nodes[node] = Node::Leaf { value: mean };
                continue;
            };
            let column = best.column;
            let rule = self.rule(best);
            let n_left = self.partition(start, end, column, &rule);
            let (left, right) = (self.nodes.len(), self.nodes.len() + 1);
            self.nodes.push(Node::Leaf { value: 0.0 });
            self.nodes.push(Node::Leaf { value: 0.0 });
            self.nodes[node] = Node::Split { column, rule, left, right };
            pending.push((right, start + n_left, end, depth + 1));
            pending.push((left, start, start + n_left, depth + 1));
        }
        Tree { nodes: self.nodes }
    }

    /// The best split of the node `start..end` over all columns, visited in
    /// a random order so that exact ties go to a random column; `None` when
    /// no split leaves `min_samples_leaf` rows on both sides.
    fn best_split(&mut self, start: usize, end: usize, mean: f64, total_weight: f64) -> Option<Candidate> {
        let mut order: Vec<usize> = (0..self.columns.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng::index(&mut self.rng, i + 1));
        }
        let mut best: Option<Candidate> = None;
        for column in order {
            let found = match self.columns[column] {
                Column::Numeric { .. } => self.best_threshold(column, start, end, mean, total_weight),
                Column::Categorical { n_choices } => {
                    self.best_subset(column, n_choices, start, end, mean, total_weight)
                }
            };
            if let Some(found) = found {
                if best.as_ref().is_none_or(|b| found.score > b.score) {
                    best = Some(found);
                }
            }
        }
        best
    }

    /// Scans the node's rows in the column's order: each gap between two
    /// different values is a candidate threshold.
    fn best_threshold(
        &self,
        column: usize,
        start: usize,
        end: usize,
        mean: f64,
        total_weight: f64,
    ) -> Option<Candidate> {
        let rows = &self.sorted[column][start..end];
        let values = &self.x[column];
        let min_leaf = self.options.min_samples_leaf.max(1);
        let total_sum: f64 = rows.iter().map(|&i| self.weight[i] * (self.y[i] - mean)).sum();
        let (mut left_weight, mut left_sum) = (0.0, 0.0);
        let mut best: Option<(f64, f64)> = None;
        for (k, pair) in rows.windows(2).enumerate() {
            let (i, next) = (pair[0], pair[1]);
            left_weight += self.weight[i];
            left_sum += self.weight[i] * (self.y[i] - mean);
            let n_left = k + 1;
            if values[next] <= values[i] || n_left < min_leaf || rows.len() - n_left < min_leaf {
                continue;
            }
            let right_sum = total_sum - left_sum;
            let score =
                left_sum * left_sum / left_weight + right_sum * right_sum / (total_weight - left_weight);
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, midpoint(values[i], values[next])));
            }
        }
        best.map(|(score, threshold)| Candidate {
            column,
            score,
            split: CandidateSplit::Threshold(threshold),
        })
    }

    /// Sorts the choices present in the node by mean target and scans the
    /// splits between consecutive ones: the best of these is the best subset.
    fn best_subset(
        &self,
        column: usize,
        n_choices: usize,
        start: usize,
        end: usize,
        mean: f64,
        total_weight: f64,
    ) -> Option<Candidate> {
        let values = &self.x[column];
        let (mut weight, mut sum, mut count) =
            (vec![0.0; n_choices], vec![0.0; n_choices], vec![0; n_choices]);
        for &i in &self.members[start..end] {
            let choice = values[i] as usize;
            weight[choice] += self.weight[i];
            sum[choice] += self.weight[i] * (self.y[i] - mean);
            count[choice] += 1;
        }
        let mut order: Vec<usize> = (0..n_choices).filter(|&c| count[c] > 0).collect();
        if order.len() < 2 {
            return None;
        }
        order.sort_by(|&a, &b| (sum[a] / weight[a]).total_cmp(&(sum[b] / weight[b])).then(a.cmp(&b)));
        let min_leaf = self.options.min_samples_leaf.max(1);
        let n = end - start;
        let total_sum: f64 = order.iter().map(|&c| sum[c]).sum();
        let (mut left_weight, mut left_sum, mut left_count) = (0.0, 0.0, 0);
        let mut best: Option<(f64, usize)> = None;
        for (k, &choice) in order[..order.len() - 1].iter().enumerate() {
            left_weight += weight[choice];
            left_sum += sum[choice];
            left_count += count[choice];
            if left_count < min_leaf || n - left_count < min_leaf {
                continue;
            }
            let right_sum = total_sum - left_sum;
            let score =
                left_sum * left_sum / left_weight + right_sum * right_sum / (total_weight - left_weight);
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, k + 1));
            }
        }
        best.map(|(score, n_left)| Candidate {
            column,
            score,
            split: CandidateSplit::Prefix { order, n_left },
        })
    }

    /// The routing rule of a chosen split; choices absent from the node go
    /// to a random side.
    fn rule(&mut self, candidate: Candidate) -> Rule {
        match candidate.split {
            CandidateSplit::Threshold(threshold) => Rule::AtMost(threshold),
            CandidateSplit::Prefix { order, n_left } => {
                let Column::Categorical { n_choices } = self.columns[candidate.column] else {
                    unreachable!("a subset split is only found on a categorical column")
                };
                let mut left: Vec<bool> = (0..n_choices).map(|_| self.rng.next_u64() >> 63 == 1).collect();
                for (k, &choice) in order.iter().enumerate() {
                    left[choice] = k < n_left;
                }
                Rule::InSet(left)
            }
        }
    }

    /// Moves the node's left rows before its right rows in `members` and in
    /// every sorted list, keeping their order; returns how many go left.
    fn partition(&mut self, start: usize, end: usize, column: usize, rule: &Rule) -> usize {
        let values = &self.x[column];
        for &i in &self.members[start..end] {
            self.goes_left[i] = rule.sends_left(values[i]);
        }
        let goes_left = &self.goes_left;
        let scratch = &mut self.scratch;
        let mut n_left = 0;
        for list in std::iter::once(&mut self.members).chain(self.sorted.iter_mut()) {
            if list.is_empty() {
                continue;
            }
            let range = &mut list[start..end];
            scratch.clear();
            scratch.extend(range.iter().copied().filter(|&i| goes_left[i]));
            n_left = scratch.len();
            scratch.extend(range.iter().copied().filter(|&i| !goes_left[i]));
            range.copy_from_slice(scratch);
        }
        n_left
    }
}

/// A threshold strictly below `high` and at least `low` (low < high), halfway
/// when floating point allows.
fn midpoint(low: f64, high: f64) -> f64 {
    let mid = low / 2.0 + high / 2.0;
    if mid >= high || mid < low {
        low
    } else {
        mid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_fit_their_data_and_forests_average_it() {
        let n = 200;
        let x: Vec<f64> = (0..n).map(|i| i as f64 / n as f64).collect();
        let y: Vec<f64> = x.iter().map(|x| (6.0 * x).sin()).collect();
        let columns = [Column::Numeric { low: 0.0, high: 1.0 }];
        let trees = fit_forest(&columns, std::slice::from_ref(&x), &y, &ForestOptions::default());
        assert_eq!(trees.len(), 64);
        let mean_error = x
            .iter()
            .zip(&y)
            .map(|(&x, &y)| (trees.iter().map(|t| t.predict(&[x])).sum::<f64>() / 64.0 - y).abs())
            .sum::<f64>()
            / n as f64;
        assert!(mean_error < 0.01, "mean error {mean_error}");
    }

    #[test]
    fn a_categorical_is_split_by_the_best_subset() {
        // y is 1 for choices 0 and 2, 0 for choices 1 and 3: one split separates them.
        let x: Vec<f64> = (0..40).map(|i| (i % 4) as f64).collect();
        let y: Vec<f64> = x.iter().map(|&c| if c == 0.0 || c == 2.0 { 1.0 } else { 0.0 }).collect();
        let columns = [Column::Categorical { n_choices: 4 }];
        let options = ForestOptions { n_trees: 8, ..ForestOptions::default() };
        for tree in fit_forest(&columns, &[x], &y, &options) {
            assert_eq!(tree.nodes.len(), 3, "{tree:?}");
            let Node::Split { rule: Rule::InSet(left), .. } = &tree.nodes[0] else { panic!("{tree:?}") };
            assert!(left[0] == left[2] && left[1] == left[3] && left[0] != left[1], "{left:?}");
        }
    }

    #[test]
    fn depth_and_leaf_size_limits_hold() {
        let x: Vec<f64> = (0..100).map(|i| i as f64).collect();
        let y = x.clone();
        let columns = [Column::Numeric { low: 0.0, high: 99.0 }];
        let stump = ForestOptions { n_trees: 2, max_depth: 1, ..ForestOptions::default() };
        assert!(fit_forest(&columns, std::slice::from_ref(&x), &y, &stump)
            .iter()
            .all(|t| t.nodes.len() == 3));
        let coarse = ForestOptions { n_trees: 2, min_samples_leaf: 30, ..ForestOptions::default() };
        for tree in fit_forest(&columns, std::slice::from_ref(&x), &y, &coarse) {
            // Leaves keep ≥ 30 distinct rows of the ≈ 63 drawn, so the root splits once.
            assert_eq!(tree.nodes.len(), 3, "{tree:?}");
        }
        let same = fit_forest(&columns, std::slice::from_ref(&x), &y, &ForestOptions::default());
        assert_eq!(same, fit_forest(&columns, &[x], &y, &ForestOptions::default()));
    }
}
