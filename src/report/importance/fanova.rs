//! The functional-ANOVA decomposition of one regression tree (Hutter, Hoos &
//! Leyton-Brown 2014): how much of the variance of the tree's prediction,
//! over the uniform distribution on the whole domain, the marginal of each
//! single column explains.
//!
//! A tree cuts the domain into boxes (its leaves), constant inside. With a
//! leaf's volume fraction `w_l` and prediction `v_l`, the tree's mean is
//! `μ = Σ w_l v_l` and its variance `V = Σ w_l (v_l − μ)²`. The marginal of a
//! column `c` at value `t` averages the prediction over all other columns:
//! `a_c(t) = Σ_{l ∋ t} v_l · w_l / f_l`, where `f_l` is the fraction of
//! column `c`'s domain that leaf `l` covers. `a_c` is constant between
//! consecutive thresholds the tree uses on `c` (or on each single choice of a
//! categorical), so its variance `V_c` is an exact weighted sum over those
//! pieces, each weighted by its share of the domain.

use super::forest::{Column, Node, Rule, Tree};

/// A tree's total variance and the variance of each column's marginal.
#[derive(Debug, Clone, PartialEq)]
pub struct Decomposition {
    pub total_variance: f64,
    /// `V_c` for every column, in column order; each at most `total_variance`.
    pub marginal_variances: Vec<f64>,
}

/// The extent of a leaf's box along one column.
#[derive(Debug, Clone)]
enum Extent {
    Interval { low: f64, high: f64 },
    Choices(Vec<bool>),
}

impl Extent {
    /// The fraction of the column's domain this extent covers.
    fn fraction(&self, column: &Column) -> f64 {
        match (self, column) {
            (Extent::Interval { low, high }, Column::Numeric { low: lo, high: hi }) => {
                (high - low) / (hi - lo)
            }
            (Extent::Choices(set), Column::Categorical { n_choices }) => {
                set.iter().filter(|&&inside| inside).count() as f64 / *n_choices as f64
            }
            _ => unreachable!("extents are built from their columns"),
        }
    }
}

/// One leaf: its prediction, volume fraction and box.
struct Cell {
    value: f64,
    volume: f64,
    extents: Vec<Extent>,
}

/// Decomposes the variance of `tree` over the domain of `columns`.
pub fn decompose(tree: &Tree, columns: &[Column]) -> Decomposition {
    let cells = cells(tree, columns);
    let total_volume: f64 = cells.iter().map(|cell| cell.volume).sum();
    let mean = cells.iter().map(|cell| cell.volume * cell.value).sum::<f64>() / total_volume;
    let total_variance =
        cells.iter().map(|cell| cell.volume * (cell.value - mean).powi(2)).sum::<f64>() / total_volume;
    let marginal_variances = (0..columns.len())
        .map(|c| {
            let (values, weights) = marginal(tree, &cells, columns, c);
            weighted_variance(&values, &weights).min(total_variance)
        })
        .collect();
    Decomposition { total_variance, marginal_variances }
}

/// The leaves of `tree` with their boxes, by walking down from the root's
/// box (the whole domain) and narrowing it at every split. Leaves of zero
/// volume (a threshold on a domain bound) explain nothing and are left out.
fn cells(tree: &Tree, columns: &[Column]) -> Vec<Cell> {
    let domain = columns
        .iter()
        .map(|column| match *column {
            Column::Numeric { low, high } => Extent::Interval { low, high },
            Column::Categorical { n_choices } => Extent::Choices(vec![true; n_choices]),
        })
        .collect();
    let mut cells = Vec::new();
    let mut pending: Vec<(usize, Vec<Extent>)> = vec![(0, domain)];
    while let Some((node, extents)) = pending.pop() {
        match &tree.nodes[node] {
            Node::Leaf { value } => {
                let volume = extents.iter().zip(columns).map(|(e, column)| e.fraction(column)).product();
                if volume > 0.0 {
                    cells.push(Cell { value: *value, volume, extents });
                }
            }
            Node::Split { column, rule, left, right } => {
                let (mut to_left, mut to_right) = (extents.clone(), extents);
                match (rule, &mut to_left[*column], &mut to_right[*column]) {
                    (Rule::AtMost(t), Extent::Interval { high, .. }, Extent::Interval { low, .. }) => {
                        *high = high.min(*t);
                        *low = low.max(*t);
                    }
                    (Rule::InSet(set), Extent::Choices(l), Extent::Choices(r)) => {
                        for (choice, &goes_left) in set.iter().enumerate() {
                            l[choice] &= goes_left;
                            r[choice] &= !goes_left;
                        }
                    }
                    _ => unreachable!("a split's rule matches its column's kind"),
                }
                pending.push((*right, to_right));
                pending.push((*left, to_left));
            }
        }
    }
    cells
}

/// The marginal of column `c` on the pieces of its domain where it is
/// constant: (values, weights), the weights being the pieces' shares of the
/// domain.
fn marginal(tree: &Tree, cells: &[Cell], columns: &[Column], c: usize) -> (Vec<f64>, Vec<f64>) {
    match columns[c] {
        Column::Numeric { low, high } => {
            // The pieces lie between consecutive cuts: the bounds and every threshold on c.
            let mut cuts: Vec<f64> = tree
                .nodes
                .iter()
                .filter_map(|node| match node {
                    Node::Split { column, rule: Rule::AtMost(t), .. } if *column == c => Some(*t),
                    _ => None,
                })
                .chain([low, high])
                .collect();
            cuts.sort_by(f64::total_cmp);
            cuts.dedup();
            let position = |x: f64| cuts.partition_point(|&cut| cut < x);
            // A leaf adds its share to the run of pieces its interval spans:
            // a difference array, summed up afterwards.
            let mut change = vec![0.0; cuts.len()];
            for cell in cells {
                let Extent::Interval { low: from, high: to } = cell.extents[c] else { unreachable!() };
                let share = cell.value * cell.volume / cell.extents[c].fraction(&columns[c]);
                change[position(from)] += share;
                change[position(to)] -= share;
            }
            let mut running = 0.0;
            let values = change[..cuts.len() - 1]
                .iter()
                .map(|delta| {
                    running += delta;
                    running
                })
                .collect();
            let weights = cuts.windows(2).map(|w| (w[1] - w[0]) / (high - low)).collect();
            (values, weights)
        }
        Column::Categorical { n_choices } => {
            let mut values = vec![0.0; n_choices];
            for cell in cells {
                let Extent::Choices(set) = &cell.extents[c] else { unreachable!() };
                let share = cell.value * cell.volume / cell.extents[c].fraction(&columns[c]);
                for (value, _) in values.iter_mut().zip(set).filter(|(_, &inside)| inside) {
                    *value += share;
                }
            }
            (values, vec![1.0 / n_choices as f64; n_choices])
        }
    }
}

/// Variance of `values` under `weights` (normalised here), in two passes.
fn weighted_variance(values: &[f64], weights: &[f64]) -> f64 {
    let total: f64 = weights.iter().sum();
    let mean = values.iter().zip(weights).map(|(v, w)| v * w).sum::<f64>() / total;
    values.iter().zip(weights).map(|(v, w)| w * (v - mean).powi(2)).sum::<f64>() / total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(value: f64) -> Node {
        Node::Leaf { value }
    }

    #[test]
    fn a_hand_built_tree_decomposes_exactly() {
        // On [0, 1]²: x0 ≤ 0.5 → 0; else x1 ≤ 0.5 → 1, else 3.
        // Volumes ½, ¼, ¼: mean 1, V = ½·1 + ¼·0 + ¼·4 = 1.5.
        // Marginal of x0: 0 then (1 + 3)/2 = 2, variance 1.
        // Marginal of x1: ½·0 + ½·1 = 0.5 then ½·0 + ½·3 = 1.5, variance 0.25.
        let tree = Tree {
            nodes: vec![
                Node::Split { column: 0, rule: Rule::AtMost(0.5), left: 1, right: 2 },
                leaf(0.0),
                Node::Split { column: 1, rule: Rule::AtMost(0.5), left: 3, right: 4 },
                leaf(1.0),
                leaf(3.0),
            ],
        };
        let columns = [Column::Numeric { low: 0.0, high: 1.0 }; 2];
        let d = decompose(&tree, &columns);
        assert!((d.total_variance - 1.5).abs() < 1e-12, "{d:?}");
        assert!((d.marginal_variances[0] - 1.0).abs() < 1e-12, "{d:?}");
        assert!((d.marginal_variances[1] - 0.25).abs() < 1e-12, "{d:?}");
    }

    #[test]
    fn uneven_pieces_are_weighted_by_their_length() {
        // x0 on [0, 4] split at 1: value 4 on a quarter, 0 elsewhere:
        // mean 1, variance ¼·9 + ¾·1 = 3, all of it x0's; x1 (categorical) explains nothing.
        let tree = Tree {
            nodes: vec![
                Node::Split { column: 0, rule: Rule::AtMost(1.0), left: 1, right: 2 },
                leaf(4.0),
                leaf(0.0),
            ],
        };
        let columns = [Column::Numeric { low: 0.0, high: 4.0 }, Column::Categorical { n_choices: 3 }];
        let d = decompose(&tree, &columns);
        assert!((d.total_variance - 3.0).abs() < 1e-12, "{d:?}");
        assert!((d.marginal_variances[0] - 3.0).abs() < 1e-12, "{d:?}");
        assert_eq!(d.marginal_variances[1], 0.0);
    }

    #[test]
    fn categorical_subsets_weigh_each_choice_equally() {
        // Choice 0 → 0, choices {1, 2} → 3 (split by x1 below, which averages out):
        // marginal of the categorical (0, 3, 3): mean 2, variance (4 + 1 + 1)/3 = 2.
        let tree = Tree {
            nodes: vec![
                Node::Split { column: 0, rule: Rule::InSet(vec![true, false, false]), left: 1, right: 2 },
                leaf(0.0),
                Node::Split { column: 1, rule: Rule::AtMost(0.5), left: 3, right: 4 },
                leaf(2.0),
                leaf(4.0),
            ],
        };
        let columns = [Column::Categorical { n_choices: 3 }, Column::Numeric { low: 0.0, high: 1.0 }];
        let d = decompose(&tree, &columns);
        // Leaves: ⅓ at 0, ⅓ at 2, ⅓ at 4: mean 2, V = (4 + 0 + 4)/3.
        assert!((d.total_variance - 8.0 / 3.0).abs() < 1e-12, "{d:?}");
        assert!((d.marginal_variances[0] - 2.0).abs() < 1e-12, "{d:?}");
        // Marginal of x1: ⅓·0 + ⅔·2 = 4/3 then ⅓·0 + ⅔·4 = 8/3: variance (2/3)² = 4/9.
        assert!((d.marginal_variances[1] - 4.0 / 9.0).abs() < 1e-12, "{d:?}");
    }
}
