//! Standard optimisation test functions with their search spaces, for the
//! sampler tests and benchmarks (and for trying a study without training).

use super::{Distribution, ParamValue, Params, SearchSpace};

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

/// The five-parameter mixed space of a training search: lr and
/// weight_decay log-floats, mul a log-int [8, 128], layers int [1, 4],
/// l_max categorical {1, 2, 3, 4}.
pub fn mixed5_space() -> SearchSpace {
    SearchSpace::new()
        .log_float("lr", 1e-4, 0.5)
        .log_float("weight_decay", 1e-5, 0.1)
        .with("mul", int_param(8, 128, 1, true))
        .int("layers", 1, 4)
        .categorical("l_max", [1i64, 2, 3, 4].map(ParamValue::Int))
}

/// (log10 lr − log10 3e-3)² + ½ (log10 wd − log10 3e-2)² + (log2 mul −
/// log2 48)² / 2 + 0.3 (layers − 2)² + {1: 0.8, 2: 0.3, 3: 0, 4: 0.2}[l_max]
/// on [`mixed5_space`]; minimum 0.
pub fn mixed5(params: &Params) -> f64 {
    let l_max_penalty = match params["l_max"].as_i64() {
        Some(1) => 0.8,
        Some(2) => 0.3,
        Some(3) => 0.0,
        _ => 0.2,
    };
    (num(params, "lr").log10() - 3e-3f64.log10()).powi(2)
        + 0.5 * (num(params, "weight_decay").log10() - 3e-2f64.log10()).powi(2)
        + 0.5 * (num(params, "mul").log2() - 48f64.log2()).powi(2)
        + 0.3 * (num(params, "layers") - 2.0).powi(2)
        + l_max_penalty
}

/// Four floats x0…x3 in [−5, 5].
pub fn styblinski_tang_space() -> SearchSpace {
    (0..4).fold(SearchSpace::new(), |space, i| space.float(&format!("x{i}"), -5.0, 5.0))
}

/// Styblinski–Tang in four dimensions, ½ Σ (x⁴ − 16x² + 5x) on
/// [`styblinski_tang_space`]: 2⁴ local minima, the global one −156.66 at
/// xᵢ = −2.9035. Multimodal, where TPE can beat a GP.
pub fn styblinski_tang(params: &Params) -> f64 {
    (0..4)
        .map(|i| {
            let x = num(params, &format!("x{i}"));
            x.powi(4) - 16.0 * x * x + 5.0 * x
        })
        .sum::<f64>()
        / 2.0
}

/// Six categoricals c0…c5, each one of "a"…"e".
pub fn categorical6_space() -> SearchSpace {
    let choices = ["a", "b", "c", "d", "e"].map(ParamValue::from);
    (0..6).fold(SearchSpace::new(), |space, i| space.categorical(&format!("c{i}"), choices.clone()))
}

/// Σᵢ (3i + 2kᵢ) mod 5, kᵢ the index of cᵢ's choice, plus 2 when c0 = c1,
/// on [`categorical6_space`]: a categorical-heavy space with integer values
/// (many ties); minimum 0.
pub fn categorical6(params: &Params) -> f64 {
    let k = |i: usize| -> i64 {
        let choice = params[&format!("c{i}")].as_str().expect("a choice of categorical6_space");
        "abcde".find(choice).expect("one of a…e") as i64
    };
    let table: i64 = (0..6).map(|i| (3 * i as i64 + 2 * k(i)) % 5).sum();
    (table + if k(0) == k(1) { 2 } else { 0 }) as f64
}

/// A conditional space as a training search writes it: `optimizer` adamw
/// or sgd, `lr` log-float [1e-4, 0.1], `momentum` [0.5, 0.99] only with sgd,
/// `nesterov` {true, false} only with sgd.
pub fn conditional_space() -> SearchSpace {
    SearchSpace::new()
        .categorical("optimizer", ["adamw", "sgd"].map(ParamValue::from))
        .log_float("lr", 1e-4, 0.1)
        .float("momentum", 0.5, 0.99)
        .when("momentum", "optimizer", vec!["sgd".into()])
        .categorical("nesterov", [true, false].map(ParamValue::from))
        .when("nesterov", "optimizer", vec!["sgd".into()])
}

/// On [`conditional_space`]: (log10 lr − log10 3e-3)² plus 0.3 for adamw, or
/// for sgd 10·(momentum − 0.9)² + {true: 0, false: 0.1}[nesterov]; minimum 0
/// (sgd, lr 3e-3, momentum 0.9, nesterov).
pub fn conditional(params: &Params) -> f64 {
    let lr = (num(params, "lr").log10() - 3e-3f64.log10()).powi(2);
    match params["optimizer"].as_str() {
        Some("sgd") => {
            let nesterov = if params["nesterov"].as_bool() == Some(true) { 0.0 } else { 0.1 };
            lr + 10.0 * (num(params, "momentum") - 0.9).powi(2) + nesterov
        }
        _ => lr + 0.3,
    }
}

// Constrained problems: an objective and its constraint values, each
// feasible when ≤ 0 (Optuna's convention).

/// Gramacy et al. (2016)'s toy problem on x1, x2 ∈ [0, 1]: minimise x1 + x2.
pub fn gramacy_space() -> SearchSpace {
    SearchSpace::new().float("x1", 0.0, 1.0).float("x2", 0.0, 1.0)
}

/// On [`gramacy_space`]: x1 + x2; its constraints are [`gramacy_constraints`].
/// The feasible minimum is 0.5998 at (0.1954, 0.4044).
pub fn gramacy(params: &Params) -> f64 {
    num(params, "x1") + num(params, "x2")
}

/// 1.5 − x1 − 2·x2 − 0.5·sin(2π(x1² − 2·x2)) ≤ 0 and x1² + x2² − 1.5 ≤ 0:
/// the feasible region is disconnected, and the first constraint binds at
/// the optimum.
pub fn gramacy_constraints(params: &Params) -> Vec<f64> {
    let (x1, x2) = (num(params, "x1"), num(params, "x2"));
    let wave = (2.0 * std::f64::consts::PI * (x1 * x1 - 2.0 * x2)).sin();
    vec![1.5 - x1 - 2.0 * x2 - 0.5 * wave, x1 * x1 + x2 * x2 - 1.5]
}

/// The smooth loss over [`anisonet_rounded_space`] ([`anisonet_rounded`]
/// rounds it): the objective of the AnisoNet search under a model-size
/// budget ([`anisonet_budget_constraints`]); minimum 0 at the published
/// optimum.
pub fn anisonet_budget(params: &Params) -> f64 {
    (num(params, "lr").log10() - 3e-3f64.log10()).powi(2)
        + 0.3 * (num(params, "layers") - 2.0).powi(2)
        + ((num(params, "mul") - 48.0) / 16.0).powi(2)
        + ((num(params, "em_dim") - 48.0) / 24.0).powi(2)
        + 0.2 * (num(params, "lmax") - 3.0).abs()
}

/// The model size relative to the published optimum's, which grows with
/// layers, mul² and (l_max + 1)², at most 0.5: the unconstrained optimum
/// (size 1) is infeasible, and the search must trade accuracy for size.
pub fn anisonet_budget_constraints(params: &Params) -> Vec<f64> {
    let size = num(params, "layers") / 2.0
        * (num(params, "mul") / 48.0).powi(2)
        * ((num(params, "lmax") + 1.0) / 4.0).powi(2);
    vec![size - 0.5]
}

// Several objectives (all minimised): the ZDT and DTLZ problems of the
// multi-objective literature, Binh and Korn's constrained problem, and the
// AnisoNet trade-off of accuracy against model size.

/// x0…x(n−1) in [0, 1]: the space of the ZDT problems.
pub fn zdt_space(n: usize) -> SearchSpace {
    (0..n).fold(SearchSpace::new(), |space, i| space.float(&format!("x{i}"), 0.0, 1.0))
}

/// ZDT's f1 = x0 and g = 1 + 9·mean(x1…).
fn zdt_parts(params: &Params) -> (f64, f64) {
    let n = params.len();
    let rest: f64 = (1..n).map(|i| num(params, &format!("x{i}"))).sum();
    (num(params, "x0"), 1.0 + 9.0 * rest / (n - 1) as f64)
}

/// ZDT1 on [`zdt_space`]: a convex front f2 = 1 − √f1 where x1… = 0.
pub fn zdt1(params: &Params) -> Vec<f64> {
    let (f1, g) = zdt_parts(params);
    vec![f1, g * (1.0 - (f1 / g).sqrt())]
}

/// ZDT2: a concave front f2 = 1 − f1².
pub fn zdt2(params: &Params) -> Vec<f64> {
    let (f1, g) = zdt_parts(params);
    vec![f1, g * (1.0 - (f1 / g).powi(2))]
}

/// ZDT3: a front in five disconnected pieces.
pub fn zdt3(params: &Params) -> Vec<f64> {
    let (f1, g) = zdt_parts(params);
    let wave = (10.0 * std::f64::consts::PI * f1).sin();
    vec![f1, g * (1.0 - (f1 / g).sqrt() - f1 / g * wave)]
}

/// DTLZ2 with three objectives on [`zdt_space`]: the front is the positive
/// octant of the unit sphere, where x2… = ½.
pub fn dtlz2(params: &Params) -> Vec<f64> {
    let n = params.len();
    let g: f64 = (2..n).map(|i| (num(params, &format!("x{i}")) - 0.5).powi(2)).sum();
    let (a, b) =
        (num(params, "x0") * std::f64::consts::FRAC_PI_2, num(params, "x1") * std::f64::consts::FRAC_PI_2);
    vec![(1.0 + g) * a.cos() * b.cos(), (1.0 + g) * a.cos() * b.sin(), (1.0 + g) * a.sin()]
}

/// x ∈ [0, 5], y ∈ [0, 3].
pub fn binh_korn_space() -> SearchSpace {
    SearchSpace::new().float("x", 0.0, 5.0).float("y", 0.0, 3.0)
}

/// Binh and Korn: 4x² + 4y² and (x − 5)² + (y − 5)², under
/// [`binh_korn_constraints`].
pub fn binh_korn(params: &Params) -> Vec<f64> {
    let (x, y) = (num(params, "x"), num(params, "y"));
    vec![4.0 * x * x + 4.0 * y * y, (x - 5.0).powi(2) + (y - 5.0).powi(2)]
}

/// (x − 5)² + y² ≤ 25 and (x − 8)² + (y + 3)² ≥ 7.7, as values ≤ 0 when feasible.
pub fn binh_korn_constraints(params: &Params) -> Vec<f64> {
    let (x, y) = (num(params, "x"), num(params, "y"));
    vec![(x - 5.0).powi(2) + y * y - 25.0, 7.7 - (x - 8.0).powi(2) - (y + 3.0).powi(2)]
}

/// x, y ∈ [0, π].
pub fn tanaka_space() -> SearchSpace {
    SearchSpace::new().float("x", 0.0, std::f64::consts::PI).float("y", 0.0, std::f64::consts::PI)
}

/// Tanaka: minimise x and y under [`tanaka_constraints`]; the unconstrained
/// optimum (0, 0) is infeasible, and the front is a wavy piece of the
/// boundary.
pub fn tanaka(params: &Params) -> Vec<f64> {
    vec![num(params, "x"), num(params, "y")]
}

/// x² + y² − 1 − 0.1·cos(16·atan(x/y)) ≥ 0 and (x − ½)² + (y − ½)² ≤ ½, as
/// values ≤ 0 when feasible.
pub fn tanaka_constraints(params: &Params) -> Vec<f64> {
    let (x, y) = (num(params, "x"), num(params, "y"));
    let angle = if y == 0.0 { std::f64::consts::FRAC_PI_2 } else { (x / y).atan() };
    vec![1.0 + 0.1 * (16.0 * angle).cos() - x * x - y * y, (x - 0.5).powi(2) + (y - 0.5).powi(2) - 0.5]
}

/// The AnisoNet search's trade-off on [`anisonet_rounded_space`]: the
/// error of [`anisonet_budget`] against the model size of
/// [`anisonet_budget_constraints`] (relative to the published model's):
/// a mixed integer and log-float space with a front from small, coarse
/// models to the published optimum.
pub fn anisonet_tradeoff(params: &Params) -> Vec<f64> {
    vec![anisonet_budget(params), anisonet_budget_constraints(params)[0] + 0.5]
}

// Integer spaces with tied objective values, the kind most of a network
// search is made of (layers, multiplicities, embedding sizes, grids). Each
// is written term for term as in `benches/optuna/tpe_reference.py`, so the
// two samplers are compared on the same functions.

fn int_param(low: i64, high: i64, step: i64, log: bool) -> Distribution {
    Distribution::Int { low, high, log, step }
}

/// Five integers x0…x4 in [0, 20].
pub fn int5_space() -> SearchSpace {
    (0..5).fold(SearchSpace::new(), |space, i| space.int(&format!("x{i}"), 0, 20))
}

/// L1 distance of x0…x4 to (3, 17, 10, 6, 13) on [`int5_space`]: integer
/// values, so many trials tie; minimum 0.
pub fn int5_l1(params: &Params) -> f64 {
    [3.0, 17.0, 10.0, 6.0, 13.0]
        .iter()
        .enumerate()
        .map(|(i, c)| (num(params, &format!("x{i}")) - c).abs())
        .sum()
}

/// a int [0, 100] step 5, b int [1, 1024] log, c int [−10, 10], d int [0, 20] step 2.
pub fn int_steps_space() -> SearchSpace {
    SearchSpace::new()
        .with("a", int_param(0, 100, 5, false))
        .with("b", int_param(1, 1024, 1, true))
        .with("c", int_param(-10, 10, 1, false))
        .with("d", int_param(0, 20, 2, false))
}

/// |a − 35|/5 + |round(log2 b) − 6| + |c − 3| + |d − 14|/2 on
/// [`int_steps_space`]: steps, a log integer whose rounding makes plateaus
/// (b in 46…90 all score 0 there); minimum 0.
pub fn int_steps(params: &Params) -> f64 {
    let (a, b, c, d) = (num(params, "a"), num(params, "b"), num(params, "c"), num(params, "d"));
    (a - 35.0).abs() / 5.0 + ((b.log2() + 0.5).floor() - 6.0).abs() + (c - 3.0).abs() + (d - 14.0).abs() / 2.0
}

/// Four integers x0…x3 in [0, 30].
pub fn int_plateau_space() -> SearchSpace {
    (0..4).fold(SearchSpace::new(), |space, i| space.int(&format!("x{i}"), 0, 30))
}

/// ⌊‖x − (12, 25, 4, 18)‖₂ / 2⌋ on [`int_plateau_space`]: wide plateaus of
/// equal value; minimum 0.
pub fn int_plateau(params: &Params) -> f64 {
    let squares: f64 = [12.0, 25.0, 4.0, 18.0]
        .iter()
        .enumerate()
        .map(|(i, c)| (num(params, &format!("x{i}")) - c).powi(2))
        .sum();
    (squares.sqrt() / 2.0).floor()
}

/// The AnisoNet search with its integer axes on steps: em_dim [8, 96] step 8,
/// layers [1, 4], l_max [1, 4], mul [16, 64] step 8, lr log-float [1e-4, 0.5].
pub fn anisonet_rounded_space() -> SearchSpace {
    SearchSpace::new()
        .with("em_dim", int_param(8, 96, 8, false))
        .int("layers", 1, 4)
        .int("lmax", 1, 4)
        .log_float("lr", 1e-4, 0.5)
        .with("mul", int_param(16, 64, 8, false))
}

/// A smooth loss over [`anisonet_rounded_space`] rounded to 0.1, as a
/// validation metric printed with one decimal is; minimum 0.
pub fn anisonet_rounded(params: &Params) -> f64 {
    (10.0 * anisonet_budget(params) + 0.5).floor() / 10.0
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

    /// The published AnisoNet optimum on [`anisonet_rounded_space`].
    fn published() -> Params {
        params(&[
            ("em_dim", 48i64.into()),
            ("layers", 2i64.into()),
            ("lmax", 3i64.into()),
            ("lr", 3e-3.into()),
            ("mul", 48i64.into()),
        ])
    }

    #[test]
    fn constrained_optima() {
        let at = params(&[("x1", 0.1954.into()), ("x2", 0.4044.into())]);
        assert!((gramacy(&at) - 0.5998).abs() < 1e-9);
        assert!(gramacy_constraints(&at).iter().all(|&c| c <= 1e-3), "{:?}", gramacy_constraints(&at));
        let published = published();
        assert_eq!(anisonet_budget(&published), 0.0);
        assert_eq!(
            anisonet_budget_constraints(&published),
            vec![0.5],
            "the unconstrained optimum is infeasible"
        );
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
        let m5 = mixed5(&params(&[
            ("lr", 3e-3.into()),
            ("weight_decay", 3e-2.into()),
            ("mul", 48i64.into()),
            ("layers", 2i64.into()),
            ("l_max", 3i64.into()),
        ]));
        assert!(m5.abs() < 1e-12);
        mixed5_space().validate().unwrap();
    }

    #[test]
    fn the_integer_family_has_its_minima_and_ties() {
        let xs = |v: &[i64]| -> Params {
            v.iter().enumerate().map(|(i, &x)| (format!("x{i}"), x.into())).collect()
        };
        assert_eq!(int5_l1(&xs(&[3, 17, 10, 6, 13])), 0.0);
        assert_eq!(
            (int5_l1(&xs(&[4, 17, 10, 6, 13])), int5_l1(&xs(&[3, 16, 10, 6, 13]))),
            (1.0, 1.0),
            "a tie"
        );
        assert_eq!(int_plateau(&xs(&[12, 25, 4, 18])), 0.0);
        assert_eq!(int_plateau(&xs(&[13, 25, 4, 18])), 0.0, "a plateau around the minimum");
        let steps = |b: i64| {
            int_steps(&params(&[
                ("a", 35i64.into()),
                ("b", b.into()),
                ("c", 3i64.into()),
                ("d", 14i64.into()),
            ]))
        };
        assert_eq!((steps(46), steps(64), steps(90), steps(91)), (0.0, 0.0, 0.0, 1.0));
        assert_eq!(anisonet_rounded(&published()), 0.0);
        for space in [int5_space(), int_steps_space(), int_plateau_space(), anisonet_rounded_space()] {
            space.validate().unwrap();
        }
    }

    /// The values `benches/optuna/tpe_reference.py` gives at the same points.
    #[test]
    fn styblinski_tang_and_categorical6_are_the_python_twins() {
        let letters: Vec<(String, ParamValue)> = ["a", "b", "c", "d", "e", "a"]
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("c{i}"), (*c).into()))
            .collect();
        let refs: Vec<(&str, ParamValue)> = letters.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
        assert_eq!(categorical6(&params(&refs)), 0.0);
        let mut same = refs.clone();
        same[1].1 = "a".into();
        assert_eq!(categorical6(&params(&same)), 2.0 + 3.0, "c0 = c1 costs 2, and c1's table value 3");
        let x =
            params(&[("x0", (-2.9035).into()), ("x1", 1.0.into()), ("x2", 0.0.into()), ("x3", 4.0.into())]);
        assert!((styblinski_tang(&x) - (-34.16616568374997)).abs() < 1e-12);
        categorical6_space().validate().unwrap();
        styblinski_tang_space().validate().unwrap();
    }
}
