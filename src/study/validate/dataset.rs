//! `dataset`: where the structures come from, how they are cleaned and split.

use super::Checker;
use crate::error::InputError;
use crate::study::file::DatasetSpec;

impl Checker<'_> {
    pub(super) fn dataset(&self, d: &DatasetSpec) -> Result<(), InputError> {
        match (&d.synthetic, &d.path) {
            (Some(_), Some(_)) => {
                return Err(self
                    .err("dataset.synthetic", "give either `synthetic` or `path`, not both")
                    .with_hint("remove one of them"))
            }
            (None, None) => {
                return Err(self
                    .err("dataset", "no data: give `path` (an extxyz file) or `synthetic`")
                    .with_hint("e.g. `path: ../shared/data/mp_dielectric_2k.extxyz`"))
            }
            (Some(s), None) if s.size < 10 => {
                return Err(self
                    .err("dataset.synthetic.size", format!("{} structures are too few to split", s.size))
                    .with_hint("use at least 10"))
            }
            _ => {}
        }
        if d.dielectric_key.is_empty() {
            return Err(self.err("dataset.dielectric_key", "is empty"));
        }
        let c = &d.cleaning;
        if !c.min_diagonal.is_finite() || !c.max_eps_poly.is_finite() || c.max_eps_poly <= c.min_diagonal {
            return Err(self
                .err(
                    "dataset.cleaning",
                    format!(
                        "max_eps_poly {} must be a number above min_diagonal {}",
                        c.max_eps_poly, c.min_diagonal
                    ),
                )
                .with_hint("the paper uses min_diagonal 1 and max_eps_poly 15"));
        }
        if d.split.is_some() && d.split_file.is_some() {
            return Err(self
                .err("dataset.split_file", "give either `split` ratios or a `split_file`, not both")
                .with_hint("remove one of them"));
        }
        if let Some(s) = &d.split {
            let ratios = [s.train, s.valid, s.test];
            if ratios.iter().any(|r| !(r.is_finite() && *r >= 0.0)) || s.train <= 0.0 || s.valid <= 0.0 {
                return Err(self
                    .err("dataset.split", "ratios must be ≥ 0, with train and valid above 0")
                    .with_hint("e.g. {train: 0.8, valid: 0.1, test: 0.1}"));
            }
            let sum: f64 = ratios.iter().sum();
            if (sum - 1.0).abs() > 1e-6 {
                return Err(self
                    .err("dataset.split", format!("ratios add up to {sum}, not 1"))
                    .with_hint("e.g. {train: 0.8, valid: 0.1, test: 0.1}"));
            }
        }
        Ok(())
    }
}
