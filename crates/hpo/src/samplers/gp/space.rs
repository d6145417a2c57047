//! The search space as the Gaussian process sees it, encoded as Optuna's
//! `GPSampler` encodes it (`optuna/_gp/search_space.py`):
//!
//! - a number becomes its position in [0, 1] between `low − step/2` and
//!   `high + step/2` (both logged first on a log scale; `step` 0 for a
//!   continuous float), so every point of a step grid owns an equal cell;
//! - a categorical becomes its choice index, unscaled; the kernel measures
//!   it by Hamming distance (equal or not), never by how far apart indices are;
//! - integers and stepped floats are *discrete* dimensions, searched over
//!   their grid points; continuous floats are searched by gradient.

use crate::{Distribution, Params, SearchSpace};

/// How one dimension is encoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Dim {
    /// A continuous float: normalised position in [0, 1].
    Continuous { low: f64, high: f64 },
    /// An integer or stepped float: normalised position of one of `grid`.
    Discrete { low: f64, high: f64, grid: Vec<f64> },
    /// A categorical: the choice index (0..n).
    Categorical { n: usize },
}

/// The encoded space: one [`Dim`] per parameter, in name order.
#[derive(Debug, Clone)]
pub struct EncodedSpace<'a> {
    pub names: Vec<&'a String>,
    pub dists: Vec<&'a Distribution>,
    pub dims: Vec<Dim>,
}

impl<'a> EncodedSpace<'a> {
    pub fn new(space: &'a SearchSpace) -> Self {
        let mut names = Vec::new();
        let mut dists = Vec::new();
        let mut dims = Vec::new();
        for (name, dist) in &space.params {
            names.push(name);
            dists.push(dist);
            dims.push(encode_dim(dist));
        }
        Self { names, dists, dims }
    }

    pub fn len(&self) -> usize {
        self.dims.len()
    }

    pub fn is_categorical(&self, d: usize) -> bool {
        matches!(self.dims[d], Dim::Categorical { .. })
    }

    /// Dimensions searched by gradient.
    pub fn continuous(&self) -> Vec<usize> {
        (0..self.len()).filter(|&d| matches!(self.dims[d], Dim::Continuous { .. })).collect()
    }

    /// Dimensions searched over their values: (dimension, its values).
    pub fn discrete(&self) -> Vec<(usize, Vec<f64>)> {
        (0..self.len())
            .filter_map(|d| match &self.dims[d] {
                Dim::Discrete { grid, .. } => Some((d, grid.clone())),
                Dim::Categorical { n } => Some((d, (0..*n).map(|i| i as f64).collect())),
                Dim::Continuous { .. } => None,
            })
            .collect()
    }

    /// The encoded point of `params`; `None` when a parameter is missing or
    /// outside its domain (a trial of another phase's space).
    pub fn encode(&self, params: &Params) -> Option<Vec<f64>> {
        self.names
            .iter()
            .zip(&self.dists)
            .zip(&self.dims)
            .map(|((name, dist), dim)| {
                let value = params.get(*name)?;
                if !dist.admits(value) {
                    return None;
                }
                let x = dist.to_internal(value)?;
                Some(match *dim {
                    Dim::Continuous { low, high } | Dim::Discrete { low, high, .. } => {
                        normalise(x, low, high)
                    }
                    Dim::Categorical { .. } => x,
                })
            })
            .collect()
    }

    /// The parameters of an encoded point: each value snapped onto its
    /// domain (grid, bounds, choice).
    pub fn decode(&self, point: &[f64]) -> Params {
        self.names
            .iter()
            .zip(&self.dists)
            .zip(&self.dims)
            .zip(point)
            .map(|(((name, dist), dim), &x)| {
                let internal = match *dim {
                    Dim::Continuous { low, high } | Dim::Discrete { low, high, .. } => {
                        low + x.clamp(0.0, 1.0) * (high - low)
                    }
                    Dim::Categorical { .. } => x,
                };
                ((*name).clone(), dist.from_internal(internal))
            })
            .collect()
    }

    /// A point from uniform draws `u` in [0, 1)ᵈ: continuous dimensions
    /// take them as they are, discrete ones the grid point whose cell holds
    /// them, categoricals ⌊u·n⌋ (Optuna's `sample_normalized_params`).
    pub fn point_from_uniform(&self, u: &[f64]) -> Vec<f64> {
        self.dims
            .iter()
            .zip(u)
            .map(|(dim, &u)| match dim {
                Dim::Continuous { .. } => u,
                Dim::Discrete { grid, .. } => nearest(grid, u),
                Dim::Categorical { n } => ((u * *n as f64).floor()).min(*n as f64 - 1.0),
            })
            .collect()
    }
}

/// The grid value nearest to `x` (grids are increasing).
pub fn nearest(grid: &[f64], x: f64) -> f64 {
    let i = grid.partition_point(|&g| g < x);
    match (i.checked_sub(1).map(|j| grid[j]), grid.get(i)) {
        (Some(a), Some(&b)) => {
            if x - a <= b - x {
                a
            } else {
                b
            }
        }
        (Some(a), None) => a,
        (None, Some(&b)) => b,
        (None, None) => x,
    }
}

fn normalise(x: f64, low: f64, high: f64) -> f64 {
    if high == low {
        0.5
    } else {
        (x - low) / (high - low)
    }
}

fn encode_dim(dist: &Distribution) -> Dim {
    if let Distribution::Categorical { choices } = dist {
        return Dim::Categorical { n: choices.len() };
    }
    // The cell edges low − step/2 and high + step/2, before the log.
    let (first, last) = dist.internal_bounds();
    let external = |x: f64| if dist.is_log() { x.exp() } else { x };
    let internal = |x: f64| if dist.is_log() { x.ln() } else { x };
    let half = dist.step().map_or(0.0, |s| 0.5 * s);
    let (low, high) = (internal(external(first) - half), internal(external(last) + half));
    match dist.n_values() {
        None => Dim::Continuous { low, high },
        Some(n) => {
            let grid = (0..n)
                .map(|k| {
                    let value = dist.value_at(k).expect("k below the domain's size");
                    let x = dist.to_internal(&value).expect("a value of the domain");
                    normalise(x, low, high)
                })
                .collect();
            Dim::Discrete { low, high, grid }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_optuna_does() {
        let space = SearchSpace::new()
            .log_float("lr", 1e-4, 1e-1)
            .int("mul", 16, 64)
            .categorical("act", vec!["relu".into(), "silu".into()]);
        let enc = EncodedSpace::new(&space);
        let mut params = Params::new();
        params.insert("lr".into(), 1e-4.into());
        params.insert("mul".into(), 16i64.into());
        params.insert("act".into(), "silu".into());
        let x = enc.encode(&params).unwrap();
        // act (index), lr at its low end, mul at the centre of its first cell of 49.
        assert_eq!(x[0], 1.0);
        assert!(x[1].abs() < 1e-12);
        assert!((x[2] - 0.5 / 49.0).abs() < 1e-12);
        let back = enc.decode(&x);
        assert_eq!((&back["act"], &back["mul"]), (&params["act"], &params["mul"]));
        assert!((back["lr"].as_f64().unwrap() / 1e-4 - 1.0).abs() < 1e-12);
        let Dim::Discrete { grid, .. } = &enc.dims[2] else { panic!() };
        assert_eq!(grid.len(), 49);
        assert_eq!(nearest(grid, 0.999), grid[48]);
    }
}
