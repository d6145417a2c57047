//! Every report figure renders from small synthetic data to a decodable, non-blank PNG of
//! the expected size and an SVG carrying its texts; bad input is an error, and the output
//! is byte-for-byte reproducible.
//!
//! Set `ANISOSTUDY_KEEP_FIGURES=DIR` to keep the rendered figures in DIR for inspection.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anisostudy::hpo::Direction;
use anisostudy::report::figures::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A folder for one test's figures: a fresh temporary one, or the kept one if asked for.
fn out_dir() -> (Option<tempfile::TempDir>, PathBuf) {
    match std::env::var_os("ANISOSTUDY_KEEP_FIGURES") {
        Some(dir) => {
            std::fs::create_dir_all(&dir).unwrap();
            (None, PathBuf::from(dir))
        }
        None => {
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().to_path_buf();
            (Some(tmp), path)
        }
    }
}

/// Decodes the PNG and checks its size.
fn decode_png(path: &Path, width: u32, height: u32) -> image::RgbImage {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());
    let img = image::load_from_memory(&bytes).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (width, height), "{}", path.display());
    img
}

/// Decodes the PNG, checks its size and that the plot area holds a real picture.
fn assert_png(path: &Path, width: u32, height: u32) -> image::RgbImage {
    let img = decode_png(path, width, height);
    let colours: HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    assert!(colours.len() > 30, "{}: only {} distinct colours", path.display(), colours.len());
    // The central 60 % of the canvas (the plot area) is not empty.
    let (x0, x1, y0, y1) = (width / 5, width * 4 / 5, height / 5, height * 4 / 5);
    let inked = (y0..y1)
        .flat_map(|y| (x0..x1).map(move |x| (x, y)))
        .filter(|&(x, y)| img.get_pixel(x, y).0 != [255, 255, 255])
        .count();
    let area = ((x1 - x0) * (y1 - y0)) as usize;
    assert!(inked * 100 > area, "{}: only {inked} of {area} plot pixels drawn", path.display());
    img
}

/// The SVG's text elements: (y attribute, content), in document order.
fn svg_texts(svg: &str) -> Vec<(f64, String)> {
    svg.split("<text")
        .skip(1)
        .map(|element| {
            let (tag, rest) = element.split_once('>').unwrap();
            let content = rest.split("</text>").next().unwrap().trim();
            let content = content.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&");
            let y = tag.split(" y=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
            (y, content)
        })
        .collect()
}

/// Reads the SVG and checks that each text appears within one of its text elements.
fn assert_svg(path: &Path, texts: &[&str]) -> Vec<(f64, String)> {
    let svg = std::fs::read_to_string(path).unwrap();
    assert!(svg.starts_with("<svg"), "{} is not an SVG", path.display());
    let found = svg_texts(&svg);
    for text in texts {
        assert!(
            found.iter().any(|(_, t)| t.contains(text)),
            "{} lacks the text {text:?}: {found:?}",
            path.display()
        );
    }
    found
}

/// Whether some text element reads exactly `text`.
fn has_text(found: &[(f64, String)], text: &str) -> bool {
    found.iter().any(|(_, t)| t == text)
}

fn has_colour(img: &image::RgbImage, rgb: [u8; 3]) -> bool {
    img.pixels().any(|p| p.0 == rgb)
}

const EQUIVARIANT_BLUE: [u8; 3] = [0x00, 0x72, 0xb2];
const SCALAR_VERMILLION: [u8; 3] = [0xd5, 0x5e, 0x00];

fn point(x: f64, mean: f64, half_width: Option<f64>) -> ErrorPoint {
    ErrorPoint { x, mean, half_width }
}

/// Table 2 of the paper: ε_poly MAE against l_max, with made-up 95 % intervals.
fn lmax_series() -> Vec<LineSeries> {
    vec![
        LineSeries {
            label: "equivariant".into(),
            points: vec![
                point(1.0, 0.327, Some(0.012)),
                point(2.0, 0.335, Some(0.010)),
                point(3.0, 0.311, Some(0.009)),
                point(4.0, 0.340, None),
            ],
        },
        LineSeries {
            label: "scalar".into(),
            points: vec![
                point(0.0, 0.439, Some(0.015)),
                point(1.0, 0.390, Some(0.011)),
                point(2.0, 0.336, Some(0.013)),
                point(3.0, 0.345, Some(0.010)),
                point(4.0, f64::NAN, None),
            ],
        },
    ]
}

fn crystal_systems() -> Vec<String> {
    ["cubic", "hexagonal", "trigonal", "tetragonal", "orthorhombic", "monoclinic", "triclinic"]
        .map(String::from)
        .to_vec()
}

fn system_bars() -> Vec<BarSeries> {
    let equivariant = [0.0, 0.06, 0.07, 0.05, 0.09, 0.11, 0.12];
    let scalar = [0.05, 0.12, 0.13, 0.10, 0.16, 0.19, 0.21];
    let bars = |label: &str, values: &[f64]| BarSeries {
        label: label.into(),
        values: values.iter().map(|&m| Some(point(0.0, m, Some(0.01 + m * 0.1)))).collect(),
    };
    let mut series = vec![bars("equivariant", &equivariant), bars("scalar", &scalar)];
    series[1].values[6] = None; // a cell without trials
    series
}

/// Reference and predicted ε_poly: lognormal-ish references, predictions with noise.
fn parity_data(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let reference: Vec<f64> = (0..n).map(|_| 1.5 + (rng.gen::<f64>() * 2.2).exp()).collect();
    let predicted = reference.iter().map(|r| r + (rng.gen::<f64>() - 0.5) * 0.15 * r).collect();
    (reference, predicted)
}

fn history_points() -> Vec<HistoryPoint> {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    (0..60)
        .map(|t| HistoryPoint {
            trial: t,
            value: 0.3 + 0.4 * rng.gen::<f64>() / (1.0 + t as f64 / 10.0),
            phase: if t < 40 { "tpe" } else { "grid" }.into(),
        })
        .collect()
}

fn importances() -> Vec<(String, f64)> {
    [("learning_rate", 0.46), ("l_max", 0.21), ("embedding_dim", 0.14), ("num_layers", 0.11), ("mul", 0.08)]
        .map(|(n, v)| (n.to_string(), v))
        .to_vec()
}

/// Five parameters of 40 trials and their validation MAE.
fn parallel_data() -> (Vec<ParallelAxis>, Vec<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let trials = 40;
    let mut lr = Vec::new();
    let mut em = Vec::new();
    let mut layers = Vec::new();
    let mut lmax = Vec::new();
    let mut mae = Vec::new();
    for _ in 0..trials {
        let log_lr = rng.gen_range(-4.0..-0.3f64);
        let l = rng.gen_range(1..=4) as f64;
        lr.push(10f64.powf(log_lr));
        em.push(rng.gen_range(8..=96) as f64);
        layers.push(rng.gen_range(0..4) as f64);
        lmax.push(l);
        mae.push(0.3 + 0.05 * (log_lr + 2.5).abs() + 0.02 * (l - 3.0).abs() + 0.02 * rng.gen::<f64>());
    }
    let axes = vec![
        ParallelAxis { name: "learning_rate".into(), kind: AxisKind::Log, values: lr },
        ParallelAxis { name: "embedding_dim".into(), kind: AxisKind::Linear, values: em },
        ParallelAxis {
            name: "num_layers".into(),
            kind: AxisKind::Categorical(vec!["1".into(), "2".into(), "3".into(), "4".into()]),
            values: layers,
        },
        ParallelAxis { name: "l_max".into(), kind: AxisKind::Linear, values: lmax },
    ];
    (axes, mae)
}

/// Renders every figure into `dir`.
fn render_all(dir: &Path) -> Vec<FigureFiles> {
    let (reference, predicted) = parity_data(600);
    let (axes, mae) = parallel_data();
    vec![
        sweep_lines(dir, "lmax", "ε_poly MAE by l_max", "l_max", "MAE of ε_poly", &lmax_series()).unwrap(),
        grouped_bars(
            dir,
            "systems",
            "a_r MAE by crystal system",
            "MAE of a_r",
            &crystal_systems(),
            &system_bars(),
        )
        .unwrap(),
        parity_heatmap(dir, "parity", "Test set, equivariant model", "ε_poly", &reference, &predicted, 40)
            .unwrap(),
        optimisation_history(
            dir,
            "history",
            "Optimisation history",
            "validation MAE",
            Direction::Minimize,
            &history_points(),
        )
        .unwrap(),
        importance_bars(dir, "importance", "Parameter importance", &importances()).unwrap(),
        parallel_coordinates(dir, "parallel", "Trials", &axes, "validation MAE", &mae, Direction::Minimize)
            .unwrap(),
    ]
}

#[test]
fn sweep_lines_draws_both_models_in_their_colours() {
    let (_tmp, dir) = out_dir();
    let files =
        sweep_lines(&dir, "lmax", "ε_poly MAE by l_max", "l_max", "MAE of ε_poly", &lmax_series()).unwrap();
    assert_eq!(files.png, dir.join("lmax.png"));
    assert_eq!(files.svg, dir.join("lmax.svg"));
    let img = assert_png(&files.png, 1200, 800);
    assert!(has_colour(&img, EQUIVARIANT_BLUE) && has_colour(&img, SCALAR_VERMILLION));
    let texts =
        assert_svg(&files.svg, &["ε_poly MAE by l_max", "l_max", "MAE of ε_poly", "equivariant", "scalar"]);
    // Integer l_max: integer tick labels only.
    for tick in ["0", "1", "2", "3", "4"] {
        assert!(has_text(&texts, tick), "tick {tick} missing");
    }
    assert!(!has_text(&texts, "0.5") && !has_text(&texts, "1.5"));
}

#[test]
fn grouped_bars_label_every_category() {
    let (_tmp, dir) = out_dir();
    let files = grouped_bars(
        &dir,
        "systems",
        "a_r MAE by crystal system",
        "MAE of a_r",
        &crystal_systems(),
        &system_bars(),
    )
    .unwrap();
    let img = assert_png(&files.png, 1200, 800);
    assert!(has_colour(&img, EQUIVARIANT_BLUE) && has_colour(&img, SCALAR_VERMILLION));
    let mut texts = vec!["a_r MAE by crystal system", "MAE of a_r", "equivariant", "scalar"];
    let systems = crystal_systems();
    texts.extend(systems.iter().map(String::as_str));
    assert_svg(&files.svg, &texts);
}

#[test]
fn parity_heatmap_has_colour_bar_and_equal_axes() {
    let (_tmp, dir) = out_dir();
    let (reference, predicted) = parity_data(600);
    let files = parity_heatmap(&dir, "parity", "Test set", "ε_poly", &reference, &predicted, 40).unwrap();
    assert_png(&files.png, 1200, 800);
    let texts = assert_svg(
        &files.svg,
        &["Test set", "Reference ε_poly", "Predicted ε_poly", "Count", "MAE = ", "N = 600"],
    );
    assert!(has_text(&texts, "1") && has_text(&texts, "10"), "log count ticks missing");
}

#[test]
fn optimisation_history_shows_phases_and_best_so_far() {
    let (_tmp, dir) = out_dir();
    let files = optimisation_history(
        &dir,
        "history",
        "History",
        "validation MAE",
        Direction::Minimize,
        &history_points(),
    )
    .unwrap();
    assert_png(&files.png, 1200, 800);
    assert_svg(&files.svg, &["History", "Trial", "validation MAE", "tpe", "grid", "best so far"]);
}

#[test]
fn a_history_spanning_decades_gets_a_log_axis() {
    let (_tmp, dir) = out_dir();
    let points: Vec<HistoryPoint> = (0..30)
        .map(|t| HistoryPoint { trial: t, value: 10f64.powf(1.0 - t as f64 / 10.0), phase: "random".into() })
        .collect();
    let files =
        optimisation_history(&dir, "loss", "Loss", "training loss", Direction::Minimize, &points).unwrap();
    assert_png(&files.png, 1200, 800);
    let texts = assert_svg(&files.svg, &["Loss", "training loss", "random", "best so far"]);
    for tick in ["0.01", "0.1", "1", "10"] {
        assert!(has_text(&texts, tick), "decade tick {tick} missing");
    }
}

#[test]
fn importance_bars_put_the_largest_on_top_with_values() {
    let (_tmp, dir) = out_dir();
    let files = importance_bars(&dir, "importance", "Parameter importance", &importances()).unwrap();
    assert_png(&files.png, 1200, 800);
    let texts = assert_svg(
        &files.svg,
        &["Parameter importance", "Importance", "learning_rate", "mul", "0.460", "0.080"],
    );
    // SVG y grows downwards: the largest bar's label comes first from the top.
    let y_of = |name: &str| texts.iter().find(|(_, t)| t == name).unwrap().0;
    assert!(y_of("learning_rate") < y_of("l_max") && y_of("l_max") < y_of("mul"));
}

#[test]
fn parallel_coordinates_label_log_and_categorical_axes() {
    let (_tmp, dir) = out_dir();
    let (axes, mae) = parallel_data();
    let files =
        parallel_coordinates(&dir, "parallel", "Trials", &axes, "validation MAE", &mae, Direction::Minimize)
            .unwrap();
    assert_png(&files.png, 1600, 800);
    assert_svg(
        &files.svg,
        &[
            "Trials",
            "learning_rate",
            "embedding_dim",
            "num_layers",
            "l_max",
            "validation MAE",
            "0.001",
            "0.01",
        ],
    );
}

#[test]
fn rendering_is_byte_identical() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let a = render_all(first.path());
    let b = render_all(second.path());
    for (a, b) in a.iter().zip(&b) {
        assert_eq!(std::fs::read(&a.png).unwrap(), std::fs::read(&b.png).unwrap(), "{}", a.png.display());
        assert_eq!(std::fs::read(&a.svg).unwrap(), std::fs::read(&b.svg).unwrap(), "{}", a.svg.display());
    }
}

/// The error message and that no file was written.
fn refused(dir: &Path, result: anyhow::Result<FigureFiles>) -> String {
    let error = result.expect_err("the figure should be refused");
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), 0, "a refused figure wrote files");
    format!("{error:#}")
}

#[test]
fn empty_or_non_finite_input_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let nan = f64::NAN;

    let no_points =
        [LineSeries { label: "scalar".into(), points: vec![point(1.0, nan, None), point(nan, 0.3, None)] }];
    assert!(refused(d, sweep_lines(d, "s", "t", "x", "y", &no_points)).contains("empty"));
    assert!(refused(d, sweep_lines(d, "s", "t", "x", "y", &[])).contains("no series"));

    let categories = vec!["cubic".to_string()];
    let none = [BarSeries { label: "scalar".into(), values: vec![None] }];
    assert!(refused(d, grouped_bars(d, "b", "t", "y", &categories, &none)).contains("nothing to draw"));
    let nan_bar = [BarSeries { label: "scalar".into(), values: vec![Some(point(0.0, nan, Some(0.1)))] }];
    assert!(refused(d, grouped_bars(d, "b", "t", "y", &categories, &nan_bar)).contains("nothing to draw"));

    assert!(refused(d, parity_heatmap(d, "p", "t", "q", &[nan, 1.0], &[1.0, f64::INFINITY], 10))
        .contains("no pair"));
    assert!(refused(d, parity_heatmap(d, "p", "t", "q", &[], &[], 10)).contains("no pair"));
    assert!(refused(d, parity_heatmap(d, "p", "t", "q", &[1.0], &[1.0], 0)).contains("bins"));
    assert!(refused(d, parity_heatmap(d, "p", "t", "q", &[1.0], &[1.0], 100_000)).contains("bins"));

    let nan_history = [HistoryPoint { trial: 0, value: nan, phase: "tpe".into() }];
    assert!(refused(d, optimisation_history(d, "h", "t", "o", Direction::Minimize, &nan_history))
        .contains("no finished trial"));
    assert!(refused(d, optimisation_history(d, "h", "t", "o", Direction::Maximize, &[]))
        .contains("no finished trial"));

    assert!(refused(d, importance_bars(d, "i", "t", &[("lr".into(), nan)])).contains("no parameter"));
    assert!(refused(d, importance_bars(d, "i", "t", &[])).contains("no parameter"));

    let axis = ParallelAxis { name: "lr".into(), kind: AxisKind::Linear, values: vec![0.1, nan] };
    assert!(refused(d, parallel_coordinates(d, "c", "t", &[axis], "mae", &[nan, 0.3], Direction::Minimize))
        .contains("no trial"));
}

#[test]
fn mismatched_lengths_and_bad_values_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let message = refused(d, grouped_bars(d, "b", "t", "y", &crystal_systems()[..3], &system_bars()));
    assert!(message.contains("7 values for 3 categories"), "{message}");

    let message = refused(d, parity_heatmap(d, "p", "t", "q", &[1.0, 2.0], &[1.0], 10));
    assert!(message.contains("2 reference values but 1 predicted"), "{message}");

    let axis = ParallelAxis { name: "lr".into(), kind: AxisKind::Log, values: vec![0.1] };
    let message =
        refused(d, parallel_coordinates(d, "c", "t", &[axis], "mae", &[0.3, 0.4], Direction::Minimize));
    assert!(message.contains("\"lr\" has 1 values for 2 objective values"), "{message}");

    let axis = ParallelAxis { name: "lr".into(), kind: AxisKind::Log, values: vec![0.1, -1.0] };
    let message =
        refused(d, parallel_coordinates(d, "c", "t", &[axis], "mae", &[0.3, 0.4], Direction::Minimize));
    assert!(message.contains("logarithmic"), "{message}");

    let axis = ParallelAxis {
        name: "layers".into(),
        kind: AxisKind::Categorical(vec!["1".into()]),
        values: vec![0.0, 1.0],
    };
    let message =
        refused(d, parallel_coordinates(d, "c", "t", &[axis], "mae", &[0.3, 0.4], Direction::Minimize));
    assert!(message.contains("not an index"), "{message}");
}

#[test]
fn a_missing_folder_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-folder");
    let error = importance_bars(&missing, "i", "t", &importances()).unwrap_err();
    assert!(format!("{error:#}").contains("no-such-folder"), "{error:#}");
}

#[test]
fn single_values_and_constant_data_still_render() {
    let (_tmp, dir) = out_dir();
    let one = [LineSeries { label: "run".into(), points: vec![point(2.5, 0.3, None)] }];
    let img = decode_png(&sweep_lines(&dir, "one", "One point", "x", "y", &one).unwrap().png, 1200, 800);
    assert!(has_colour(&img, [0xe6, 0x9f, 0x00]), "a series other than the models starts at orange");
    assert!(!has_colour(&img, EQUIVARIANT_BLUE), "the model colours are kept for the models");
    let files = parity_heatmap(&dir, "same", "Constant", "q", &[2.0; 5], &[2.0; 5], 8).unwrap();
    assert_svg(&files.svg, &["Constant", "N = 5"]);
    let flat = [HistoryPoint { trial: 3, value: 1.0, phase: String::new() }];
    optimisation_history(&dir, "flat", "Flat", "loss", Direction::Maximize, &flat).unwrap();
}

/// Errors (all means ≥ 0) are drawn from 0: an interval reaching below 0 is cut there
/// rather than stretching the axis to negative errors; a signed quantity keeps its range.
#[test]
fn non_negative_quantities_start_at_zero() {
    let (_tmp, dir) = out_dir();
    let wide = vec![LineSeries {
        label: "scalar".into(),
        points: vec![point(1.0, 0.5, Some(2.0)), point(2.0, 1.0, Some(0.2))],
    }];
    let files = sweep_lines(&dir, "mae", "MAE", "l_max", "MAE", &wide).unwrap();
    let negative =
        |texts: &[(f64, String)]| texts.iter().any(|(_, t)| t.starts_with('-') || t.starts_with('−'));
    assert!(!negative(&assert_svg(&files.svg, &["MAE"])), "negative tick on an error axis");
    let bars = vec![BarSeries { label: "scalar".into(), values: vec![Some(point(0.0, 0.5, Some(2.0)))] }];
    let files = grouped_bars(&dir, "bars", "MAE", "MAE", &["cubic".to_string()], &bars).unwrap();
    assert!(!negative(&assert_svg(&files.svg, &["MAE"])), "negative tick on an error axis");
    let signed = vec![LineSeries {
        label: "scalar".into(),
        points: vec![point(1.0, -0.5, Some(0.2)), point(2.0, 1.0, None)],
    }];
    let files = sweep_lines(&dir, "signed", "signed", "l_max", "value", &signed).unwrap();
    assert!(negative(&assert_svg(&files.svg, &["signed"])), "a signed quantity lost its negative range");
}
