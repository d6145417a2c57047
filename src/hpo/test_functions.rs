//! Standard optimisation test functions with their search spaces, for the
//! sampler tests and benchmarks (and for trying a study without training).

use super::{ParamValue, Params, SearchSpace};

/// Branin on x ∈ [−5, 10], y ∈ [0, 15]; minimum 0.397887 (three minimisers).
pub fn branin(params: &Params) -> f64 {
    let (x, y) = (num(params, "x"), num(params, "y"));
    let b = 5.1 / (4.0 * std::f64::consts::PI.powi(2));
    let c = 5.0 / std::f64::consts::PI;
    let t = 1.0 / (8.0 * std::f64::consts::PI);
    (y - b * x * x + c * x - 6.0).powi(2) + 10.0 * (1.0 - t) * x.cos() + 10.0
}

pub fn branin_space() -> SearchSpace {
    SearchSpace::new().float("x", -5.0, 10.0).float("y", 0.0, 15.0)
}

/// Hartmann-6 on [0, 1]⁶ (parameters x0…x5); minimum −3.32237.
pub fn hartmann6(params: &Params) -> f64 {
    const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
    const A: [[f64; 6]; 4] = [
        [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ];
    const P: [[f64; 6]; 4] = [
        [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
        [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
        [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
        [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
    ];
    let x: Vec<f64> = (0..6).map(|i| num(params, &format!("x{i}"))).collect();
    -(0..4)
        .map(|i| {
            let exponent: f64 = (0..6).map(|j| A[i][j] * (x[j] - P[i][j]).powi(2)).sum();
            ALPHA[i] * (-exponent).exp()
        })
        .sum::<f64>()
}

pub fn hartmann6_space() -> SearchSpace {
    (0..6).fold(SearchSpace::new(), |space, i| space.float(&format!("x{i}"), 0.0, 1.0))
}

/// A mixed space like the AnisoNet search: lr log-float [1e-4, 0.5],
/// layers int [1, 4], mul int [16, 64], l_max categorical {1, 2, 3, 4}.
pub fn mixed_space() -> SearchSpace {
    SearchSpace::new()
        .log_float("lr", 1e-4, 0.5)
        .int("layers", 1, 4)
        .int("mul", 16, 64)
        .categorical("l_max", [1i64, 2, 3, 4].map(ParamValue::Int))
}

/// (log10 lr − log10 3e-3)² + 0.3 (layers − 2)² + ((mul − 48)/16)² +
/// {1: 0.8, 2: 0.3, 3: 0, 4: 0.2}[l_max] on [`mixed_space`]; minimum 0.
pub fn mixed(params: &Params) -> f64 {
    let lr = num(params, "lr");
    let layers = num(params, "layers");
    let mul = num(params, "mul");
    let l_max_penalty = match params["l_max"].as_i64() {
        Some(1) => 0.8,
        Some(2) => 0.3,
        Some(3) => 0.0,
        _ => 0.2,
    };
    (lr.log10() - 3e-3f64.log10()).powi(2)
        + 0.3 * (layers - 2.0).powi(2)
        + ((mul - 48.0) / 16.0).powi(2)
        + l_max_penalty
}

fn num(params: &Params, name: &str) -> f64 {
    params[name].as_f64().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, ParamValue)]) -> Params {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn known_minima() {
        let b = branin(&params(&[("x", std::f64::consts::PI.into()), ("y", 2.275.into())]));
        assert!((b - 0.397_887).abs() < 1e-5);
        let opt = [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573];
        let h = hartmann6(&opt.iter().enumerate().map(|(i, &x)| (format!("x{i}"), x.into())).collect());
        assert!((h + 3.32237).abs() < 1e-4);
        let m = mixed(&params(&[
            ("lr", 3e-3.into()),
            ("layers", 2i64.into()),
            ("mul", 48i64.into()),
            ("l_max", 3i64.into()),
        ]));
        assert!(m.abs() < 1e-12);
    }
}
