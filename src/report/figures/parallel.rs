//! Parallel coordinates: one vertical axis per parameter plus the objective, one
//! polyline per trial, the best trials most saturated and drawn on top.

use anyhow::{bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::chart::{self, fitting_px, text_width};
use super::lines::min_max;
use super::render::{Drawn, Figure};
use super::scale::{LogScale, Scale, Ticks};
use super::style::{self, INK};
use super::{AxisKind, ParallelAxis};
use crate::hpo::Direction;

/// Room above the axes (under the title) and below them (for the axis names), in pixels.
const TOP_PX: i32 = 40;
const BOTTOM_PX: i32 = 80;
/// Largest size of the axis names under the axes.
const NAME_PX: u32 = style::LABEL_PX;

/// One drawn axis: its name, ticks (in axis units) and each kept trial's height in [0, 1].
struct Axis {
    name: String,
    ticks: Ticks,
    heights: Vec<f64>,
}

/// [`super::parallel_coordinates`], validated: the objective is the last axis.
pub struct Parallel<'t> {
    title: &'t str,
    axes: Vec<Axis>,
    /// Kept trials (indices into the axes' heights) from worst to best, with the
    /// colour position t ∈ [0, 1] (1 = best).
    order: Vec<(usize, f64)>,
}

impl<'t> Parallel<'t> {
    pub fn new(
        title: &'t str,
        axes: &[ParallelAxis],
        objective: &str,
        objective_values: &[f64],
        direction: Direction,
    ) -> Result<Self> {
        let trials = objective_values.len();
        for axis in axes {
            if axis.values.len() != trials {
                bail!(
                    "parallel coordinates {title:?}: axis {:?} has {} values for {} objective values",
                    axis.name,
                    axis.values.len(),
                    trials
                );
            }
            check_axis(title, axis)?;
        }
        let kept: Vec<usize> = (0..trials)
            .filter(|&t| objective_values[t].is_finite() && axes.iter().all(|a| a.values[t].is_finite()))
            .collect();
        if kept.is_empty() {
            bail!("parallel coordinates {title:?}: no trial with a finite objective and parameters, nothing to draw");
        }

        let mut drawn: Vec<Axis> = axes.iter().map(|a| place(a, &kept)).collect();
        let objective_axis = ParallelAxis {
            name: objective.to_string(),
            kind: AxisKind::Linear,
            values: objective_values.to_vec(),
        };
        drawn.push(place(&objective_axis, &kept));

        let values: Vec<f64> = kept.iter().map(|&t| objective_values[t]).collect();
        let (lo, hi) = min_max(values.iter().copied());
        let goodness = |v: f64| {
            if hi - lo <= 0.0 {
                1.0
            } else {
                match direction {
                    Direction::Minimize => (hi - v) / (hi - lo),
                    Direction::Maximize => (v - lo) / (hi - lo),
                }
            }
        };
        let mut order: Vec<(usize, f64)> =
            values.iter().enumerate().map(|(i, &v)| (i, goodness(v))).collect();
        order.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        Ok(Parallel { title, axes: drawn, order })
    }
}

/// Rejects values that cannot sit on the axis (finite values only; others are skipped).
fn check_axis(title: &str, axis: &ParallelAxis) -> Result<()> {
    let finite = axis.values.iter().enumerate().filter(|(_, v)| v.is_finite());
    match &axis.kind {
        AxisKind::Linear => {}
        AxisKind::Log => {
            if let Some((t, v)) = finite.clone().find(|(_, v)| **v <= 0.0) {
                bail!(
                    "parallel coordinates {title:?}: axis {:?} is logarithmic but trial {t} has value {v}",
                    axis.name
                );
            }
        }
        AxisKind::Categorical(labels) => {
            if labels.is_empty() {
                bail!("parallel coordinates {title:?}: categorical axis {:?} has no labels", axis.name);
            }
            let bad = |v: f64| v.fract() != 0.0 || v < 0.0 || v >= labels.len() as f64;
            if let Some((t, v)) = finite.clone().find(|(_, v)| bad(**v)) {
                bail!(
                    "parallel coordinates {title:?}: axis {:?} value {v} of trial {t} is not an index into its {} labels",
                    axis.name,
                    labels.len()
                );
            }
        }
    }
    Ok(())
}

/// The axis's ticks and the kept trials' heights on it.
fn place(axis: &ParallelAxis, kept: &[usize]) -> Axis {
    let raw: Vec<f64> = kept.iter().map(|&t| axis.values[t]).collect();
    let (ticks, units): (Ticks, Vec<f64>) = match &axis.kind {
        AxisKind::Linear => {
            let (lo, hi) = min_max(raw.iter().copied());
            (Scale::padded(lo, hi, 0.04).ticks(), raw)
        }
        AxisKind::Log => {
            let (lo, hi) = min_max(raw.iter().copied());
            (LogScale::padded(lo, hi, 0.04).ticks(), raw.iter().map(|&v| LogScale::position(v)).collect())
        }
        AxisKind::Categorical(labels) => (Ticks::categories(labels), raw),
    };
    let heights = units.iter().map(|u| (u - ticks.lo) / (ticks.hi - ticks.lo)).collect();
    Axis { name: axis.name.clone(), ticks, heights }
}

impl Figure for Parallel<'_> {
    fn size(&self) -> (u32, u32) {
        style::WIDE_SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let body = chart::titled(root, self.title)?;
        let (offset_x, offset_y) = body.get_base_pixel();
        let (width, height) = body.dim_in_pixel();
        let (width, height) = (width as i32, height as i32);
        let top = offset_y + TOP_PX;
        let bottom = offset_y + height - BOTTOM_PX;
        let n = self.axes.len();
        // Room at the sides for half the outer axis names and the objective's tick labels.
        let half_name =
            |a: Option<&Axis>| a.map_or(0, |a| text_width(a.name.chars().count(), NAME_PX) as i32 / 2);
        let objective_ticks =
            self.axes.last().map_or(0, |a| text_width(a.ticks.widest_label(), style::TICK_PX) as i32);
        let left = offset_x + 24 + half_name(self.axes.first()).max(40);
        let right = offset_x + width - 24 - half_name(self.axes.last()).max(objective_ticks + 16);
        let column = |k: usize| {
            if n == 1 {
                (left + right) / 2
            } else {
                left + (right - left) * k as i32 / (n as i32 - 1)
            }
        };
        let row = |h: f64| bottom - (h * (bottom - top) as f64).round() as i32;

        for &(trial, t) in &self.order {
            let points: Vec<(i32, i32)> =
                self.axes.iter().enumerate().map(|(k, a)| (column(k), row(a.heights[trial]))).collect();
            let width = if t >= 1.0 { 3 } else { 2 };
            root.draw(&PathElement::new(
                points,
                ShapeStyle::from(style::saturation_ramp(t)).stroke_width(width),
            ))
            .drawn()?;
        }

        let tick_style = style::text(style::TICK_PX).pos(Pos::new(HPos::Left, VPos::Center));
        let spacing = if n > 1 { (right - left) / (n as i32 - 1) } else { width / 2 };
        for (k, axis) in self.axes.iter().enumerate() {
            let x = column(k);
            root.draw(&PathElement::new(vec![(x, top), (x, bottom)], ShapeStyle::from(INK).stroke_width(2)))
                .drawn()?;
            for (at, label) in &axis.ticks.marks {
                let y = row((at - axis.ticks.lo) / (axis.ticks.hi - axis.ticks.lo));
                root.draw(&PathElement::new(vec![(x - 6, y), (x, y)], ShapeStyle::from(INK).stroke_width(2)))
                    .drawn()?;
                let w = text_width(label.chars().count(), style::TICK_PX) as i32;
                let half = style::TICK_PX as i32 / 2 + 2;
                root.draw(&Rectangle::new(
                    [(x + 6, y - half), (x + 10 + w, y + half)],
                    WHITE.mix(0.75).filled(),
                ))
                .drawn()?;
                root.draw(&Text::new(label.clone(), (x + 8, y), tick_style.clone())).drawn()?;
            }
            // Names shrink to fit between neighbouring axes.
            let name_px = fitting_px(axis.name.chars().count(), (spacing as f64 * 0.95) as u32, NAME_PX);
            let name_style = style::text(name_px).pos(Pos::new(HPos::Center, VPos::Top));
            root.draw(&Text::new(axis.name.clone(), (x, bottom + 20), name_style)).drawn()?;
        }
        Ok(())
    }
}
