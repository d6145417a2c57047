//! Means and Student-t confidence intervals over repeated trials (seeds).

use statrs::distribution::{ContinuousCDF, StudentsT};

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

#[cfg(test)]
mod tests {
    use super::*;

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
