//! Several objectives: domination, non-dominated ranks, hypervolume and
//! hypervolume subset selection, the ground that multi-objective TPE,
//! NSGA-II and the reports stand on.
//!
//! Everything works on *losses*: each objective turned into one to
//! minimise ([`Direction::as_loss`]), so one rule serves every mix of
//! directions. A trial's losses come from [`losses`].

use super::{Direction, FrozenTrial, TrialState};

/// A small positive number standing in for zero (Optuna's `EPS`).
pub const EPS: f64 = 1e-12;

/// The losses of a COMPLETE trial of a study with several objectives, each
/// objective turned into one to minimise; NaN counts as the worst.
pub fn losses(trial: &FrozenTrial, directions: &[Direction]) -> Option<Vec<f64>> {
    (trial.values.len() == directions.len() && !directions.is_empty()).then(|| {
        trial
            .values
            .iter()
            .zip(directions)
            .map(|(&v, d)| if v.is_nan() { f64::INFINITY } else { d.as_loss(v) })
            .collect()
    })
}

/// Whether loss vector `a` dominates `b`: no worse in any objective and
/// better in one.
pub fn dominates(a: &[f64], b: &[f64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x <= y) && a.iter().zip(b).any(|(x, y)| x < y)
}

/// Domination under constraints (Deb's rule, as Optuna's NSGA-II): a
/// feasible trial dominates an infeasible one, of two infeasible ones the
/// smaller violation dominates, and two feasible ones compare their losses.
/// A trial without constraint values ranks after one with them.
pub fn constrained_dominates(a: (&[f64], Option<f64>), b: (&[f64], Option<f64>)) -> bool {
    match (a.1, b.1) {
        (None, None) => dominates(a.0, b.0),
        (Some(_), None) => true,
        (None, Some(_)) => false,
        (Some(va), Some(vb)) => match (va <= 0.0, vb <= 0.0) {
            (true, true) => dominates(a.0, b.0),
            (true, false) => true,
            (false, true) => false,
            (false, false) => va < vb,
        },
    }
}

/// The non-dominated rank of each point under `dominates` (0 for the
/// Pareto front, 1 for the front once it is removed, …): Deb's fast
/// non-dominated sort. Equal points share their rank.
pub fn non_dominated_ranks<T>(points: &[T], dominates: impl Fn(&T, &T) -> bool) -> Vec<usize> {
    let n = points.len();
    let mut dominated_by = vec![0usize; n];
    let mut dominating: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        for j in 0..n {
            if i != j && dominates(&points[i], &points[j]) {
                dominating[i].push(j);
                dominated_by[j] += 1;
            }
        }
    }
    let mut ranks = vec![usize::MAX; n];
    let mut front: Vec<usize> = (0..n).filter(|&i| dominated_by[i] == 0).collect();
    let mut rank = 0;
    while !front.is_empty() {
        let mut next = Vec::new();
        for &i in &front {
            ranks[i] = rank;
            for &j in &dominating[i] {
                dominated_by[j] -= 1;
                if dominated_by[j] == 0 {
                    next.push(j);
                }
            }
        }
        next.sort_unstable();
        front = next;
        rank += 1;
    }
    ranks
}

/// The feasible COMPLETE trials that no other feasible COMPLETE trial
/// dominates: the Pareto set of a study with several objectives, by number.
pub fn pareto_front<'a>(
    trials: impl IntoIterator<Item = &'a FrozenTrial>,
    directions: &[Direction],
) -> Vec<&'a FrozenTrial> {
    let candidates: Vec<(&FrozenTrial, Vec<f64>)> = trials
        .into_iter()
        .filter(|t| t.state == TrialState::Complete && t.is_feasible())
        .filter_map(|t| losses(t, directions).map(|l| (t, l)))
        .filter(|(_, l)| l.iter().all(|x| x.is_finite()))
        .collect();
    let mut front: Vec<&FrozenTrial> = candidates
        .iter()
        .filter(|(_, l)| !candidates.iter().any(|(_, other)| dominates(other, l)))
        .map(|(t, _)| *t)
        .collect();
    front.sort_unstable_by_key(|t| t.number);
    front
}

/// Which trial of a Pareto set stands for it where one trial is needed (a
/// grid around "the best" trial, a sweep's `best_of`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pick {
    /// The best of the set in the objective at this index.
    Objective(usize),
    /// The knee: with each objective scaled to [0, 1] over the set, the
    /// trial with the smallest sum (in two objectives, the one farthest
    /// below the line between the two extremes).
    Knee,
}

/// The trial `pick` chooses from the Pareto set of `trials` (ties to the
/// lowest number); `None` without a feasible COMPLETE trial.
pub fn pick<'a>(
    trials: impl IntoIterator<Item = &'a FrozenTrial>,
    directions: &[Direction],
    pick: &Pick,
) -> Option<&'a FrozenTrial> {
    let front = pareto_front(trials, directions);
    let losses: Vec<Vec<f64>> =
        front.iter().map(|t| losses(t, directions).expect("front trials have values")).collect();
    let score: Vec<f64> = match *pick {
        Pick::Objective(i) => losses.iter().map(|l| l[i]).collect(),
        Pick::Knee => {
            let (lo, hi): (Vec<f64>, Vec<f64>) = (0..directions.len())
                .map(|d| {
                    let column = losses.iter().map(|l| l[d]);
                    (column.clone().fold(f64::INFINITY, f64::min), column.fold(f64::NEG_INFINITY, f64::max))
                })
                .unzip();
            let scaled = |l: &Vec<f64>| -> f64 {
                (0..l.len()).map(|d| if hi[d] > lo[d] { (l[d] - lo[d]) / (hi[d] - lo[d]) } else { 0.0 }).sum()
            };
            losses.iter().map(scaled).collect()
        }
    };
    (0..front.len())
        .min_by(|&a, &b| score[a].total_cmp(&score[b]).then(front[a].number.cmp(&front[b].number)))
        .map(|i| front[i])
}

/// The reference point for the hypervolume of `points` (Optuna's rule for
/// TPE): 10 % beyond the worst value of each objective, `EPS` where that is 0.
pub fn reference_point(points: &[Vec<f64>]) -> Vec<f64> {
    let dims = points.first().map_or(0, Vec::len);
    (0..dims)
        .map(|d| {
            let worst = points.iter().map(|p| p[d]).fold(f64::NEG_INFINITY, f64::max);
            let r = (1.1 * worst).max(0.9 * worst);
            if r == 0.0 {
                EPS
            } else {
                r
            }
        })
        .collect()
}

/// The hypervolume that `points` (losses) dominate up to `reference`:
/// exact, by slicing along the last objective down to a sweep in two.
/// Points not strictly better than the reference in every objective add
/// nothing.
pub fn hypervolume(points: &[Vec<f64>], reference: &[f64]) -> f64 {
    let inside: Vec<&[f64]> =
        points.iter().map(Vec::as_slice).filter(|p| p.iter().zip(reference).all(|(x, r)| x < r)).collect();
    volume(&inside, reference)
}

fn volume(points: &[&[f64]], reference: &[f64]) -> f64 {
    let d = reference.len();
    if points.is_empty() {
        return 0.0;
    }
    match d {
        1 => reference[0] - points.iter().map(|p| p[0]).fold(f64::INFINITY, f64::min),
        2 => {
            let mut sorted: Vec<&[f64]> = points.to_vec();
            sorted.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
            let (mut area, mut ceiling) = (0.0, reference[1]);
            for p in sorted {
                if p[1] < ceiling {
                    area += (reference[0] - p[0]) * (ceiling - p[1]);
                    ceiling = p[1];
                }
            }
            area
        }
        _ => {
            // Slices between consecutive values of the last objective, each
            // the (d−1)-volume of the points below it.
            let mut sorted: Vec<&[f64]> = points.to_vec();
            sorted.sort_by(|a, b| a[d - 1].total_cmp(&b[d - 1]));
            let mut total = 0.0;
            for i in 0..sorted.len() {
                let top = sorted.get(i + 1).map_or(reference[d - 1], |p| p[d - 1]);
                let thickness = top - sorted[i][d - 1];
                if thickness > 0.0 {
                    let below: Vec<&[f64]> = sorted[..=i].iter().map(|p| &p[..d - 1]).collect();
                    total += thickness * volume(&below, &reference[..d - 1]);
                }
            }
            total
        }
    }
}

/// Hypervolume subset selection: `k` of `points` (indices) that together
/// dominate a large hypervolume up to `reference`, chosen greedily by the
/// largest contribution to those chosen before (ties to the lower index),
/// as Optuna's MOTPE breaks ties within a non-dominated rank.
pub fn select_by_hypervolume(points: &[Vec<f64>], k: usize, reference: &[f64]) -> Vec<usize> {
    if k >= points.len() {
        return (0..points.len()).collect();
    }
    if !reference.iter().all(|r| r.is_finite()) {
        return (0..k).collect();
    }
    let mut chosen: Vec<usize> = Vec::with_capacity(k);
    let mut chosen_points: Vec<Vec<f64>> = Vec::with_capacity(k);
    let mut base = 0.0;
    while chosen.len() < k {
        let mut best: Option<(usize, f64)> = None;
        for (i, p) in points.iter().enumerate() {
            if chosen.contains(&i) {
                continue;
            }
            chosen_points.push(p.clone());
            let gain = hypervolume(&chosen_points, reference) - base;
            chosen_points.pop();
            if best.is_none_or(|(_, g)| gain > g) {
                best = Some((i, gain));
            }
        }
        let (i, gain) = best.expect("a point left to choose");
        chosen.push(i);
        chosen_points.push(points[i].clone());
        base += gain;
    }
    chosen
}

/// The crowding distance of each point (NSGA-II): the sum over objectives
/// of the normalised gap between its neighbours; the extremes of each
/// objective get infinity.
pub fn crowding_distances(points: &[Vec<f64>]) -> Vec<f64> {
    let n = points.len();
    let mut distance = vec![0.0; n];
    if n <= 2 {
        return vec![f64::INFINITY; n];
    }
    let columns = (0..points[0].len()).map(|d| points.iter().map(|p| p[d]).collect::<Vec<f64>>());
    for column in columns {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| column[a].total_cmp(&column[b]).then(a.cmp(&b)));
        let (lo, hi) = (column[order[0]], column[order[n - 1]]);
        distance[order[0]] = f64::INFINITY;
        distance[order[n - 1]] = f64::INFINITY;
        let width = hi - lo;
        if width <= 0.0 || !width.is_finite() {
            continue;
        }
        for w in order.windows(3) {
            distance[w[1]] += (column[w[2]] - column[w[0]]) / width;
        }
    }
    distance
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_peel_fronts() {
        let points = vec![
            vec![1.0, 4.0],
            vec![2.0, 2.0],
            vec![4.0, 1.0],
            vec![3.0, 3.0],
            vec![5.0, 5.0],
            vec![2.0, 2.0],
        ];
        let ranks = non_dominated_ranks(&points, |a, b| dominates(a, b));
        assert_eq!(ranks, vec![0, 0, 0, 1, 2, 0]);
    }

    #[test]
    fn hypervolume_is_exact_in_two_and_three_objectives() {
        let points = vec![vec![1.0, 3.0], vec![2.0, 2.0], vec![3.0, 1.0], vec![3.5, 3.5]];
        // Staircase under (4, 4): 3·1 + 2·1 + 1·1.
        assert_eq!(hypervolume(&points, &[4.0, 4.0]), 6.0);
        // One point in three objectives is a box; two overlapping boxes.
        assert_eq!(hypervolume(&[vec![0.0, 0.0, 0.0]], &[1.0, 2.0, 3.0]), 6.0);
        let two = vec![vec![0.0, 1.0, 0.0], vec![1.0, 0.0, 0.0]];
        // Boxes of 4 each, overlapping in 2.
        assert_eq!(hypervolume(&two, &[2.0, 2.0, 2.0]), 6.0);
        // The same slicing in four objectives: a unit box.
        assert_eq!(hypervolume(&[vec![0.0; 4]], &[1.0; 4]), 1.0);
    }

    #[test]
    fn subset_selection_keeps_the_spread_points() {
        let points = vec![vec![0.0, 10.0], vec![5.0, 5.0], vec![5.1, 4.9], vec![10.0, 0.0]];
        let reference = reference_point(&points);
        let chosen = select_by_hypervolume(&points, 3, &reference);
        assert_eq!(chosen.len(), 3);
        assert!(chosen.contains(&0) && chosen.contains(&3), "{chosen:?}");
    }

    #[test]
    fn constrained_domination_puts_feasible_first() {
        let (good, bad) = ([1.0, 1.0], [0.0, 0.0]);
        assert!(constrained_dominates((&good, Some(0.0)), (&bad, Some(1.0))));
        assert!(constrained_dominates((&good, Some(0.5)), (&bad, Some(1.0))));
        assert!(constrained_dominates((&bad, Some(-1.0)), (&good, Some(0.0))));
        assert!(!constrained_dominates((&good, None), (&bad, None)));
    }

    #[test]
    fn a_pick_chooses_one_trial_of_the_front() {
        let trial = |number: u64, values: Vec<f64>| FrozenTrial {
            number,
            phase: 0,
            state: TrialState::Complete,
            params: Default::default(),
            value: Some(values[0]),
            values,
            intermediate: Default::default(),
            constraints: None,
        };
        let trials = vec![
            trial(0, vec![0.0, 10.0]),
            trial(1, vec![2.0, 3.0]),
            trial(2, vec![6.0, 2.5]),
            trial(3, vec![10.0, 0.0]),
            trial(4, vec![9.0, 9.0]),
        ];
        let directions = [Direction::Minimize; 2];
        let pick_of = |p: Pick| pick(&trials, &directions, &p).map(|t| t.number);
        assert_eq!(pick_of(Pick::Objective(0)), Some(0));
        assert_eq!(pick_of(Pick::Objective(1)), Some(3));
        assert_eq!(pick_of(Pick::Knee), Some(1), "0.2 + 0.3 is the smallest scaled sum");
        let maximise = [Direction::Minimize, Direction::Maximize];
        assert_eq!(pick(&trials, &maximise, &Pick::Objective(1)).map(|t| t.number), Some(0));
    }

    #[test]
    fn crowding_marks_the_extremes() {
        let points = vec![vec![0.0, 3.0], vec![1.0, 2.0], vec![2.5, 0.5], vec![3.0, 0.0]];
        let d = crowding_distances(&points);
        assert!(d[0].is_infinite() && d[3].is_infinite());
        assert!((d[1] - 5.0 / 3.0).abs() < 1e-12 && (d[2] - 4.0 / 3.0).abs() < 1e-12, "{d:?}");
    }
}
