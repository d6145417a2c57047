//! Parity heat map: reference against predicted values as a square 2-D histogram whose
//! colour is the log of the count (viridis), with the y = x line and a colour bar.

use anyhow::{bail, Result};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::chart::{self, Frame};
use super::lines::min_max;
use super::render::{Drawn, Figure};
use super::scale::{format_significant, LogScale, Scale, Ticks};
use super::style::{self, INK};

/// Width of the colour bar in pixels, and the room its labels need beside it.
const BAR_PX: i32 = 32;
const BAR_AREA_PX: u32 = 230;
/// More bins per axis than this would be finer than the plot's pixels.
const MAX_BINS: usize = 500;

/// [`super::parity_heatmap`], validated and binned.
pub struct Parity<'t> {
    title: &'t str,
    x_label: String,
    y_label: String,
    /// Both axes share this range and ticks (equal axis ranges).
    axis: Ticks,
    bins: usize,
    /// counts[i * bins + j]: reference bin i (x), predicted bin j (y).
    counts: Vec<u64>,
    /// Colour-bar scale of the counts, in log10 units.
    count_scale: LogScale,
    mae: f64,
    n: usize,
}

impl<'t> Parity<'t> {
    pub fn new(
        title: &'t str,
        quantity: &str,
        reference: &[f64],
        predicted: &[f64],
        bins: usize,
    ) -> Result<Self> {
        if reference.len() != predicted.len() {
            bail!(
                "parity figure {title:?}: {} reference values but {} predicted values",
                reference.len(),
                predicted.len()
            );
        }
        if bins == 0 || bins > MAX_BINS {
            bail!("parity figure {title:?}: {bins} bins per axis; use 1 to {MAX_BINS}");
        }
        let pairs: Vec<(f64, f64)> = reference
            .iter()
            .zip(predicted)
            .map(|(&r, &p)| (r, p))
            .filter(|(r, p)| r.is_finite() && p.is_finite())
            .collect();
        if pairs.is_empty() {
            bail!(
                "parity figure {title:?}: no pair of finite reference and predicted values, nothing to draw"
            );
        }
        let (lo, hi) = min_max(pairs.iter().flat_map(|&(r, p)| [r, p]));
        let scale = Scale::padded(lo, hi, 0.03);
        let bin_of = |v: f64| (((v - scale.lo) / (scale.hi - scale.lo) * bins as f64) as usize).min(bins - 1);
        let mut counts = vec![0u64; bins * bins];
        for &(r, p) in &pairs {
            counts[bin_of(r) * bins + bin_of(p)] += 1;
        }
        let max_count = counts.iter().copied().max().unwrap_or(1) as f64;
        let count_scale = LogScale::exact(0.0, max_count.log10().max(2f64.log10()));
        let mae = pairs.iter().map(|(r, p)| (r - p).abs()).sum::<f64>() / pairs.len() as f64;
        Ok(Parity {
            title,
            x_label: format!("Reference {quantity}"),
            y_label: format!("Predicted {quantity}"),
            axis: scale.ticks(),
            bins,
            counts,
            count_scale,
            mae,
            n: pairs.len(),
        })
    }

    /// Colour of a cell holding `count` (≥ 1) points.
    fn colour(&self, count: u64) -> RGBColor {
        let t = ((count as f64).log10() - self.count_scale.lo) / (self.count_scale.hi - self.count_scale.lo);
        style::viridis(t)
    }
}

impl Figure for Parity<'_> {
    fn size(&self) -> (u32, u32) {
        style::SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let body = chart::titled(root, self.title)?;
        // A square plot area: the chart gets exactly the width that makes it so, and the
        // chart and colour bar together are centred.
        let (body_w, body_h) = body.dim_in_pixel();
        let x_area = chart::x_label_area(&self.x_label, style::TICK_PX) as i32;
        let side = body_h as i32 - x_area - chart::MARGIN_TOP - chart::MARGIN_BOTTOM;
        let y_area = chart::y_label_area(&self.axis, &self.y_label) as i32;
        let chart_w = side + y_area + chart::MARGIN_LEFT + chart::MARGIN_RIGHT;
        let chart_w = (chart_w.max(1) as u32).min(body_w.saturating_sub(BAR_AREA_PX));
        let indent = body_w.saturating_sub(chart_w + BAR_AREA_PX) / 2;
        let (_, rest) = body.split_horizontally(indent);
        let (left, _) = rest.split_horizontally(chart_w);

        let frame = Frame {
            x: self.axis.clone(),
            y: self.axis.clone(),
            x_label: &self.x_label,
            y_label: &self.y_label,
            x_grid: false,
            y_grid: false,
            x_tick_px: style::TICK_PX,
        };
        let mut chart = chart::frame(&left, &frame)?;
        let width = (self.axis.hi - self.axis.lo) / self.bins as f64;
        let edge = |k: usize| self.axis.lo + k as f64 * width;
        let cells = self.counts.iter().enumerate().filter(|(_, &c)| c > 0).map(|(index, &count)| {
            let (i, j) = (index / self.bins, index % self.bins);
            Rectangle::new([(edge(i), edge(j)), (edge(i + 1), edge(j + 1))], self.colour(count).filled())
        });
        chart.draw_series(cells).drawn()?;
        let diagonal = [(self.axis.lo, self.axis.lo), (self.axis.hi, self.axis.hi)];
        chart
            .draw_series(std::iter::once(DashedPathElement::new(
                diagonal,
                10,
                6,
                ShapeStyle::from(INK).stroke_width(2),
            )))
            .drawn()?;

        // The MAE and N in the lower right corner (reference high, prediction low: the
        // emptiest corner of a parity plot), on a white box so cells never hide them.
        let (px, py) = chart.plotting_area().get_pixel_range();
        let lines = [format!("MAE = {}", format_significant(self.mae)), format!("N = {}", self.n)];
        let line_px = style::LEGEND_PX as i32 + 8;
        let box_w =
            chart::text_width(lines.iter().map(|l| l.chars().count()).max().unwrap_or(0), style::LEGEND_PX)
                as i32;
        let (right, bottom) = (px.end - 12, py.end - 10);
        let top = bottom - 2 * line_px - 8;
        root.draw(&Rectangle::new([(right - box_w - 16, top), (right, bottom)], WHITE.filled())).drawn()?;
        let note = style::text(style::LEGEND_PX).pos(Pos::new(HPos::Right, VPos::Top));
        for (k, line) in lines.iter().enumerate() {
            root.draw(&Text::new(line.clone(), (right - 8, top + 6 + k as i32 * line_px), note.clone()))
                .drawn()?;
        }
        self.colour_bar(root, px.end + 48, py)
    }
}

impl Parity<'_> {
    /// The colour bar at pixel column `x`, spanning the plot's pixel rows `rows`.
    fn colour_bar<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        x: i32,
        rows: std::ops::Range<i32>,
    ) -> Result<()> {
        let (top, bottom) = (rows.start, rows.end);
        let height = (bottom - top).max(1);
        let steps = 128;
        let slices = (0..steps).map(|s| {
            let y1 = bottom - height * s / steps;
            let y0 = bottom - height * (s + 1) / steps;
            let t = (s as f64 + 0.5) / steps as f64;
            Rectangle::new([(x, y0), (x + BAR_PX, y1)], style::viridis(t).filled())
        });
        for slice in slices {
            root.draw(&slice).drawn()?;
        }
        root.draw(&Rectangle::new([(x, top), (x + BAR_PX, bottom)], ShapeStyle::from(INK).stroke_width(1)))
            .drawn()?;
        let (lo, hi) = (self.count_scale.lo, self.count_scale.hi);
        let label = style::text(style::TICK_PX).pos(Pos::new(HPos::Left, VPos::Center));
        for (at, text) in &self.count_scale.ticks {
            let y = bottom - ((at - lo) / (hi - lo) * height as f64).round() as i32;
            root.draw(&PathElement::new(
                vec![(x + BAR_PX, y), (x + BAR_PX + 6, y)],
                ShapeStyle::from(INK).stroke_width(1),
            ))
            .drawn()?;
            root.draw(&Text::new(text.clone(), (x + BAR_PX + 10, y), label.clone())).drawn()?;
        }
        // The caption runs along the bar, right of its tick labels (as a y-axis label would).
        let widest = self.count_scale.ticks.iter().map(|(_, t)| t.chars().count()).max().unwrap_or(1);
        let caption_x = x
            + BAR_PX
            + 10
            + chart::text_width(widest, style::TICK_PX) as i32
            + style::LABEL_PX as i32 / 2
            + 8;
        let caption = style::text(style::LABEL_PX)
            .transform(FontTransform::Rotate270)
            .pos(Pos::new(HPos::Center, VPos::Center));
        root.draw(&Text::new("Count", (caption_x, (top + bottom) / 2), caption)).drawn()?;
        Ok(())
    }
}
