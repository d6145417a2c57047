//! Means and Student-t confidence intervals over repeated trials (seeds),
//! the Mann–Whitney test that compares two sets of seeds' results, and
//! Holm's correction for a table of such tests (at α = 0.05 one test in
//! twenty comes out "significant" by chance, so a table of sixteen rows
//! needs it before any row is called worse).

use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// Confidence level of every interval in reports.
pub const CONFIDENCE: f64 = 0.95;

/// The mean of `n` values and the half-width of its confidence interval:
/// `t(1 − α/2; n − 1) · s / √n` with the sample standard deviation `s`.
/// One value has no interval (`half_width: None`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub n: usize,
    pub mean: f64,
    pub half_width: Option<f64>,
}

impl Estimate {
    /// The estimate of `values` at confidence `level` (e.g. 0.95); `None`
    /// without values. Non-finite values are the caller's to drop.
    pub fn of(values: &[f64], level: f64) -> Option<Estimate> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let half_width = (n > 1).then(|| {
            let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            t_quantile(1.0 - (1.0 - level) / 2.0, (n - 1) as f64) * (variance / n as f64).sqrt()
        });
        Some(Estimate { n, mean, half_width })
    }

    /// [`Estimate::of`] at the report's [`CONFIDENCE`].
    pub fn at_95(values: &[f64]) -> Option<Estimate> {
        Estimate::of(values, CONFIDENCE)
    }
}

/// Quantile `p` of Student's t distribution with `dof` degrees of freedom.
pub fn t_quantile(p: f64, dof: f64) -> f64 {
    StudentsT::new(0.0, 1.0, dof).expect("dof > 0 and unit scale").inverse_cdf(p)
}

/// The Mann–Whitney U test of `a` against `b` (e.g. one sampler's best
/// values over seeds against another's, lower is better).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// P(a < b) + ½ P(a = b) over all pairs: 0.5 when neither is better.
    pub a_lower: f64,
    /// One-sided p-value of "a is larger than b" (normal approximation
    /// with tie and continuity corrections): small when `a` is worse.
    pub p_a_larger: f64,
}

impl MannWhitney {
    pub fn of(a: &[f64], b: &[f64]) -> MannWhitney {
        let (n, m) = (a.len() as f64, b.len() as f64);
        // Midranks of the pooled sample.
        let mut pooled: Vec<(f64, bool)> =
            a.iter().map(|&v| (v, true)).chain(b.iter().map(|&v| (v, false))).collect();
        pooled.sort_by(|x, y| x.0.total_cmp(&y.0));
        let (mut rank_sum_a, mut tie_term, mut i) = (0.0, 0.0, 0);
        while i < pooled.len() {
            let j = i + pooled[i..].iter().take_while(|p| p.0 == pooled[i].0).count();
            let midrank = (i + j + 1) as f64 / 2.0;
            rank_sum_a += midrank * pooled[i..j].iter().filter(|p| p.1).count() as f64;
            let t = (j - i) as f64;
            tie_term += t * t * t - t;
            i = j;
        }
        let u_a = rank_sum_a - n * (n + 1.0) / 2.0; // pairs with a > b, ties counting ½
        let total = n + m;
        let variance = n * m / 12.0 * ((total + 1.0) - tie_term / (total * (total - 1.0)));
        let z = (u_a - n * m / 2.0 - 0.5) / variance.sqrt();
        let p_a_larger = if variance > 0.0 { 1.0 - Normal::standard().cdf(z) } else { 0.5 };
        MannWhitney { a_lower: 1.0 - u_a / (n * m), p_a_larger }
    }
}

/// Holm–Bonferroni adjusted p-values, in the order given: the k-th
/// smallest of m is multiplied by m − k + 1, made non-decreasing in that
/// order and capped at 1. A test is significant at level α for the whole
/// family when its adjusted p is below α.
pub fn holm_adjusted(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut adjusted = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (k, &i) in order.iter().enumerate() {
        running = running.max(((m - k) as f64 * p[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holm_adjusts_by_rank_and_keeps_the_order() {
        // Sorted 0.005, 0.01, 0.03, 0.04, 0.5 times 5, 4, 3, 2, 1: 0.025, 0.04,
        // 0.09, 0.08 → 0.09 (never below the one before), 0.5.
        let p = [0.01, 0.04, 0.03, 0.005, 0.5];
        let expected = [0.04, 0.09, 0.09, 0.025, 0.5];
        for (a, e) in holm_adjusted(&p).iter().zip(expected) {
            assert!((a - e).abs() < 1e-12, "{a} vs {e}");
        }
        assert!(holm_adjusted(&[]).is_empty());
    }

    #[test]
    fn mann_whitney_matches_scipy() {
        // scipy.stats.mannwhitneyu(a, b, alternative="greater",
        // method="asymptotic", use_continuity=True): U = 19, p = 0.25654.
        let a = [3.0, 4.0, 4.0, 5.0, 2.0, 6.0];
        let b = [3.0, 3.0, 2.0, 5.0, 4.0];
        let test = MannWhitney::of(&a, &b);
        assert!((test.a_lower - (1.0 - 19.0 / 30.0)).abs() < 1e-12, "{test:?}");
        assert!((test.p_a_larger - 0.256_541).abs() < 1e-5, "{test:?}");
        let same = MannWhitney::of(&a, &a);
        assert!((same.a_lower - 0.5).abs() < 1e-12 && same.p_a_larger > 0.5);
    }

    #[test]
    fn t_quantiles_match_the_tables() {
        // Two-sided 95 %: t(0.975; 1) = 12.706, t(0.975; 2) = 4.303, t(0.975; 9) = 2.262.
        for (dof, want) in [(1.0, 12.7062), (2.0, 4.3027), (9.0, 2.2622)] {
            assert!((t_quantile(0.975, dof) - want).abs() < 1e-3, "dof {dof}");
        }
    }

    #[test]
    fn interval_of_three_seeds() {
        let e = Estimate::at_95(&[1.0, 2.0, 3.0]).unwrap();
        assert_eq!((e.n, e.mean), (3, 2.0));
        // s = 1, t(0.975; 2) = 4.3027: half-width 4.3027 / √3.
        assert!((e.half_width.unwrap() - 4.302_653 / 3f64.sqrt()).abs() < 1e-4);
        let one = Estimate::at_95(&[0.5]).unwrap();
        assert_eq!((one.n, one.mean, one.half_width), (1, 0.5, None));
        assert_eq!(Estimate::at_95(&[]), None);
    }
}
