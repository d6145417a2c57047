//! Line figures: the l_max sweep (means with 95 % intervals) and the optimisation history.

use anyhow::{bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::chart::{self, Frame};
use super::render::{Drawn, Figure};
use super::scale::{LogScale, Scale, Ticks};
use super::style::{self, Marker, INK};
use super::{ErrorPoint, HistoryPoint, LineSeries};
use crate::hpo::Direction;

/// Marker half-size in pixels.
const MARKER_PX: i32 = 8;

/// One drawn series of the sweep.
struct Line {
    label: String,
    colour: RGBColor,
    marker: Marker,
    /// Finite points sorted by x.
    points: Vec<ErrorPoint>,
}

/// [`super::sweep_lines`], validated.
pub struct Sweep<'t> {
    title: &'t str,
    x_label: &'t str,
    y_label: &'t str,
    /// Series with at least one finite point.
    series: Vec<Line>,
    x: Ticks,
    y: Ticks,
    /// Interval ends below this are cut (0 for non-negative quantities, else −∞).
    floor: f64,
}

impl<'t> Sweep<'t> {
    pub fn new(title: &'t str, x_label: &'t str, y_label: &'t str, series: &[LineSeries]) -> Result<Self> {
        if series.is_empty() {
            bail!("sweep figure {title:?}: no series given");
        }
        let labels: Vec<&str> = series.iter().map(|s| s.label.as_str()).collect();
        let colours = style::series_colours(&labels);
        let mut kept = Vec::new();
        for (i, (s, colour)) in series.iter().zip(colours).enumerate() {
            let mut points: Vec<ErrorPoint> = s
                .points
                .iter()
                .filter(|p| p.x.is_finite() && p.mean.is_finite())
                .map(|p| ErrorPoint {
                    half_width: p.half_width.filter(|h| h.is_finite()).map(f64::abs),
                    ..*p
                })
                .collect();
            points.sort_by(|a, b| a.x.total_cmp(&b.x));
            if !points.is_empty() {
                kept.push(Line { label: s.label.clone(), colour, marker: Marker::nth(i), points });
            }
        }
        let all: Vec<ErrorPoint> = kept.iter().flat_map(|s| s.points.iter().copied()).collect();
        if all.is_empty() {
            bail!("sweep figure {title:?}: every series is empty or non-finite, nothing to draw");
        }
        let (x_min, x_max) = min_max(all.iter().map(|p| p.x));
        let x = if all.iter().all(|p| p.x.fract() == 0.0) {
            Scale::integers(x_min, x_max)
        } else {
            Scale::padded(x_min, x_max, 0.05)
        };
        // Errors and counts (every mean ≥ 0) are drawn from 0; interval ends below it are cut.
        let floor = if all.iter().all(|p| p.mean >= 0.0) { 0.0 } else { f64::NEG_INFINITY };
        let (y_min, _) = min_max(all.iter().map(|p| (p.mean - p.half_width.unwrap_or(0.0)).max(floor)));
        let (_, y_max) = min_max(all.iter().map(|p| p.mean + p.half_width.unwrap_or(0.0)));
        let y = if floor == 0.0 {
            Scale::from_zero(y_min, y_max, 0.08)
        } else {
            Scale::padded(y_min, y_max, 0.08)
        };
        Ok(Sweep { title, x_label, y_label, series: kept, x: x.ticks(), y: y.ticks(), floor })
    }
}

impl Figure for Sweep<'_> {
    fn size(&self) -> (u32, u32) {
        style::SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let body = chart::titled(root, self.title)?;
        let frame = Frame {
            x: self.x.clone(),
            y: self.y.clone(),
            x_label: self.x_label,
            y_label: self.y_label,
            x_grid: false,
            y_grid: true,
            x_tick_px: style::TICK_PX,
        };
        let mut chart = chart::frame(&body, &frame)?;
        for Line { label, colour, marker, points } in &self.series {
            let (colour, marker) = (*colour, *marker);
            let bars: Vec<(f64, f64, f64)> =
                points.iter().filter_map(|p| p.half_width.map(|h| (p.x, p.mean - h, p.mean + h))).collect();
            chart::error_bars(&mut chart, &bars, MARKER_PX, colour, self.floor)?;
            let line = ShapeStyle::from(colour).stroke_width(3);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    points.iter().map(|p| (p.x, p.mean)).collect::<Vec<_>>(),
                    line,
                )))
                .drawn()?
                .label(label.as_str())
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (36, 0)], line)
                        + marker.element((18, 0), MARKER_PX, colour)
                });
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|p| EmptyElement::at((p.x, p.mean)) + marker.element((0, 0), MARKER_PX, colour)),
                )
                .drawn()?;
        }
        if self.series.len() > 1 {
            let spots = self.series.iter().flat_map(|s| s.points.iter().map(|p| (p.x, p.mean)));
            chart::legend(&mut chart, quiet_corner(&self.x, &self.y, spots))?;
        }
        Ok(())
    }
}

/// The trials of one phase (e.g. "tpe", "grid") as (trial, y) dots in one colour.
struct Phase {
    name: String,
    colour: RGBColor,
    dots: Vec<(f64, f64)>,
}

/// [`super::optimisation_history`], validated.
pub struct History<'t> {
    title: &'t str,
    objective: &'t str,
    /// Phases in order of first appearance.
    phases: Vec<Phase>,
    /// The best-so-far step line, y in axis units.
    best: Vec<(f64, f64)>,
    x: Ticks,
    y: Ticks,
}

impl<'t> History<'t> {
    pub fn new(
        title: &'t str,
        objective: &'t str,
        direction: Direction,
        points: &[HistoryPoint],
    ) -> Result<Self> {
        let mut finite: Vec<&HistoryPoint> = points.iter().filter(|p| p.value.is_finite()).collect();
        if finite.is_empty() {
            bail!(
                "optimisation history {title:?}: no finished trial with a finite objective, nothing to draw"
            );
        }
        finite.sort_by_key(|p| p.trial);
        let values = finite.iter().map(|p| p.value);
        let (v_min, v_max) = min_max(values);
        // Objectives spanning two decades or more (losses) read better on a log axis.
        let log_y = v_min > 0.0 && v_max / v_min >= 100.0;
        let to_axis = |v: f64| if log_y { LogScale::position(v) } else { v };

        let mut phases: Vec<Phase> = Vec::new();
        let mut best: Vec<(f64, f64)> = Vec::new();
        let mut best_value: Option<f64> = None;
        for p in &finite {
            let at = (p.trial as f64, to_axis(p.value));
            match phases.iter_mut().find(|phase| phase.name == p.phase) {
                Some(phase) => phase.dots.push(at),
                None => phases.push(Phase { name: p.phase.clone(), colour: INK, dots: vec![at] }),
            }
            let improved = best_value.is_none_or(|b| direction.better(p.value, b));
            if let Some(&(_, y)) = best.last() {
                best.push((at.0, y));
            }
            if improved {
                best_value = Some(p.value);
                best.push(at);
            }
        }
        let names: Vec<String> = phases.iter().map(|p| p.name.clone()).collect();
        for (phase, colour) in phases.iter_mut().zip(style::series_colours(&names)) {
            phase.colour = colour;
        }
        let (t_min, t_max) = min_max(finite.iter().map(|p| p.trial as f64));
        let x = Scale::integers(t_min, t_max).ticks();
        let y = if log_y {
            LogScale::padded(v_min, v_max, 0.05).ticks()
        } else {
            Scale::padded(v_min, v_max, 0.06).ticks()
        };
        Ok(History { title, objective, phases, best, x, y })
    }
}

impl Figure for History<'_> {
    fn size(&self) -> (u32, u32) {
        style::SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let body = chart::titled(root, self.title)?;
        let frame = Frame {
            x: self.x.clone(),
            y: self.y.clone(),
            x_label: "Trial",
            y_label: self.objective,
            x_grid: false,
            y_grid: true,
            x_tick_px: style::TICK_PX,
        };
        let mut chart = chart::frame(&body, &frame)?;
        let line = ShapeStyle::from(INK).stroke_width(3);
        chart.draw_series(std::iter::once(PathElement::new(self.best.clone(), line))).drawn()?;
        for Phase { name, colour, dots } in &self.phases {
            let colour = *colour;
            let label = if name.is_empty() { "trials" } else { name.as_str() };
            chart
                .draw_series(
                    dots.iter().map(|&at| EmptyElement::at(at) + Marker::Circle.element((0, 0), 6, colour)),
                )
                .drawn()?
                .label(label)
                .legend(move |(x, y)| EmptyElement::at((x, y)) + Marker::Circle.element((18, 0), 6, colour));
        }
        // The step line sits under the dots but is listed after the phases.
        chart
            .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())
            .drawn()?
            .label("best so far")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 36, y)], line));
        let spots = self.phases.iter().flat_map(|p| p.dots.iter().copied());
        chart::legend(&mut chart, quiet_corner(&self.x, &self.y, spots))
    }
}

/// Smallest and largest of `values` (callers pass at least one finite value).
pub fn min_max(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
}

/// The corner of the plot whose legend-sized box covers the fewest data points.
pub fn quiet_corner(x: &Ticks, y: &Ticks, spots: impl Iterator<Item = (f64, f64)>) -> SeriesLabelPosition {
    let corners = [
        (SeriesLabelPosition::UpperRight, true, true),
        (SeriesLabelPosition::UpperLeft, false, true),
        (SeriesLabelPosition::LowerRight, true, false),
        (SeriesLabelPosition::LowerLeft, false, false),
    ];
    let mut counts = [0usize; 4];
    for (sx, sy) in spots {
        let u = (sx - x.lo) / (x.hi - x.lo);
        let v = (sy - y.lo) / (y.hi - y.lo);
        for (count, &(_, right, top)) in counts.iter_mut().zip(&corners) {
            let in_x = if right { u > 0.55 } else { u < 0.45 };
            let in_y = if top { v > 0.65 } else { v < 0.35 };
            *count += usize::from(in_x && in_y);
        }
    }
    let quietest = (0..4).min_by_key(|&i| (counts[i], i)).unwrap_or(0);
    corners[quietest].0.clone()
}
