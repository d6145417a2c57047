//! Bar figures: grouped vertical bars with 95 % intervals (MAE per crystal system and
//! model) and horizontal parameter-importance bars.

use anyhow::{bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::chart::{self, Frame};
use super::lines::min_max;
use super::render::{Drawn, Figure};
use super::scale::{format_fixed, Scale, Ticks};
use super::style::{self, INK};
use super::BarSeries;

/// Share of a category slot the group of bars fills.
const GROUP_WIDTH: f64 = 0.8;

/// One drawn bar of [`Grouped`]: its slot, height and optional interval half-width.
struct Bar {
    category: usize,
    mean: f64,
    half_width: Option<f64>,
}

/// One series of [`Grouped`]: its bars in one colour.
struct BarGroup {
    label: String,
    colour: RGBColor,
    bars: Vec<Bar>,
}

/// [`super::grouped_bars`], validated.
pub struct Grouped<'t> {
    title: &'t str,
    y_label: &'t str,
    /// Every series keeps its slot in the group (so bars line up across categories).
    series: Vec<BarGroup>,
    x: Ticks,
    y: Ticks,
    /// Interval ends below this are cut (0 for non-negative quantities, else −∞).
    floor: f64,
}

impl<'t> Grouped<'t> {
    pub fn new(
        title: &'t str,
        y_label: &'t str,
        categories: &[String],
        series: &[BarSeries],
    ) -> Result<Self> {
        if categories.is_empty() {
            bail!("bar figure {title:?}: no categories given");
        }
        if series.is_empty() {
            bail!("bar figure {title:?}: no series given");
        }
        for s in series {
            if s.values.len() != categories.len() {
                bail!(
                    "bar figure {title:?}: series {:?} has {} values for {} categories",
                    s.label,
                    s.values.len(),
                    categories.len()
                );
            }
        }
        let labels: Vec<&str> = series.iter().map(|s| s.label.as_str()).collect();
        let colours = style::series_colours(&labels);
        let kept: Vec<BarGroup> = series
            .iter()
            .zip(colours)
            .map(|(s, colour)| {
                let bars = s
                    .values
                    .iter()
                    .enumerate()
                    .filter_map(|(category, v)| {
                        let v = v.filter(|v| v.mean.is_finite())?;
                        let half_width = v.half_width.filter(|h| h.is_finite()).map(f64::abs);
                        Some(Bar { category, mean: v.mean, half_width })
                    })
                    .collect();
                BarGroup { label: s.label.clone(), colour, bars }
            })
            .collect();
        let all: Vec<&Bar> = kept.iter().flat_map(|s| &s.bars).collect();
        if all.is_empty() {
            bail!("bar figure {title:?}: every value is missing or non-finite, nothing to draw");
        }
        // Errors and counts (every mean ≥ 0) are drawn from 0; interval ends below it are cut.
        let floor = if all.iter().all(|b| b.mean >= 0.0) { 0.0 } else { f64::NEG_INFINITY };
        let (lo, _) = min_max(all.iter().map(|b| (b.mean - b.half_width.unwrap_or(0.0)).max(floor)));
        let (_, hi) = min_max(all.iter().map(|b| b.mean + b.half_width.unwrap_or(0.0)));
        let y = Scale::from_zero(lo, hi, 0.1).ticks();
        Ok(Grouped { title, y_label, series: kept, x: Ticks::categories(categories), y, floor })
    }
}

impl Figure for Grouped<'_> {
    fn size(&self) -> (u32, u32) {
        style::SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let mut body = chart::titled(root, self.title)?;
        if self.series.len() > 1 {
            let entries: Vec<(&str, RGBColor)> =
                self.series.iter().map(|s| (s.label.as_str(), s.colour)).collect();
            body = chart::legend_row(&body, &entries)?;
        }
        // Category names shrink until the widest fits its slot.
        let (width, _) = body.dim_in_pixel();
        let margins = (chart::MARGIN_LEFT + chart::MARGIN_RIGHT) as u32;
        let plot_width = width.saturating_sub(chart::y_label_area(&self.y, self.y_label) + margins);
        let slot = plot_width / self.x.marks.len().max(1) as u32;
        let x_tick_px = chart::fitting_px(self.x.widest_label(), slot * 92 / 100, style::TICK_PX);
        let frame = Frame {
            x: self.x.clone(),
            y: self.y.clone(),
            x_label: "",
            y_label: self.y_label,
            x_grid: false,
            y_grid: true,
            x_tick_px,
        };
        let mut chart = chart::frame(&body, &frame)?;
        let width = GROUP_WIDTH / self.series.len() as f64;
        let gap = width * 0.08;
        for (j, BarGroup { colour, bars, .. }) in self.series.iter().enumerate() {
            let colour = *colour;
            let left = |b: &Bar| b.category as f64 - GROUP_WIDTH / 2.0 + j as f64 * width;
            chart
                .draw_series(bars.iter().map(|b| {
                    Rectangle::new([(left(b) + gap, 0.0), (left(b) + width - gap, b.mean)], colour.filled())
                }))
                .drawn()?;
            let intervals: Vec<(f64, f64, f64)> = bars
                .iter()
                .filter_map(|b| b.half_width.map(|h| (left(b) + width / 2.0, b.mean - h, b.mean + h)))
                .collect();
            chart::error_bars(&mut chart, &intervals, 7, INK, self.floor)?;
        }
        Ok(())
    }
}

/// [`super::importance_bars`], validated: largest importance on top.
pub struct Importance<'t> {
    title: &'t str,
    /// (name, importance) from the bottom bar (index 0) to the top one.
    bars: Vec<(String, f64)>,
    x: Ticks,
    y: Ticks,
}

impl<'t> Importance<'t> {
    pub fn new(title: &'t str, importances: &[(String, f64)]) -> Result<Self> {
        let mut bars: Vec<(String, f64)> =
            importances.iter().filter(|(_, v)| v.is_finite()).cloned().collect();
        if bars.is_empty() {
            bail!("importance figure {title:?}: no parameter with a finite importance, nothing to draw");
        }
        // Ascending, so the largest ends on top; ties keep the caller's order from the top.
        bars.reverse();
        bars.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (lo, hi) = min_max(bars.iter().map(|b| b.1));
        // Extra room on the right for the printed values.
        let x = Scale::from_zero(lo, hi, 0.18).ticks();
        let names: Vec<&str> = bars.iter().map(|b| b.0.as_str()).collect();
        Ok(Importance { title, y: Ticks::categories(&names), x, bars })
    }
}

impl Figure for Importance<'_> {
    fn size(&self) -> (u32, u32) {
        let (width, height) = style::SIZE;
        (width, height.max(200 + 48 * self.bars.len() as u32))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let body = chart::titled(root, self.title)?;
        let frame = Frame {
            x: self.x.clone(),
            y: self.y.clone(),
            x_label: "Importance",
            y_label: "",
            x_grid: true,
            y_grid: false,
            x_tick_px: style::TICK_PX,
        };
        let mut chart = chart::frame(&body, &frame)?;
        let colour = style::series_colours(&["importance"])[0];
        let half = 0.36;
        chart
            .draw_series(self.bars.iter().enumerate().map(|(k, (_, v))| {
                Rectangle::new([(0.0, k as f64 - half), (*v, k as f64 + half)], colour.filled())
            }))
            .drawn()?;
        // Three significant digits of the largest value, the same decimals for all.
        let largest = self.bars.iter().map(|b| b.1.abs()).fold(0.0, f64::max);
        let decimals = if largest > 0.0 { (2 - largest.log10().floor() as i32).max(0) as usize } else { 2 };
        let value_style = |anchor| style::text(style::TICK_PX).pos(Pos::new(anchor, VPos::Center));
        chart
            .draw_series(self.bars.iter().enumerate().map(|(k, (_, v))| {
                let (anchor, dx) = if *v >= 0.0 { (HPos::Left, 8) } else { (HPos::Right, -8) };
                EmptyElement::at((*v, k as f64))
                    + Text::new(format_fixed(*v, decimals), (dx, 0), value_style(anchor))
            }))
            .drawn()?;
        Ok(())
    }
}
