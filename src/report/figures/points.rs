//! A histogram of one quantity and a scatter of two, for the report of a
//! screen: the distribution of predicted a_r, and predicted value against
//! the ensemble's spread with the top-ranked structures marked.

use anyhow::{bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::chart::{self, Frame};
use super::lines::{min_max, quiet_corner};
use super::render::{Drawn, Figure};
use super::scale::{Scale, Ticks};
use super::style::{self, Marker};

/// [`super::histogram`], validated and binned.
pub struct Histogram<'t> {
    title: &'t str,
    x_label: &'t str,
    /// (left edge, right edge, count).
    bins: Vec<(f64, f64, usize)>,
    x: Ticks,
    y: Ticks,
}

impl<'t> Histogram<'t> {
    pub fn new(title: &'t str, x_label: &'t str, values: &[f64], bins: usize) -> Result<Self> {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if finite.is_empty() {
            bail!("histogram {title:?}: no finite value, nothing to draw");
        }
        let (lo, hi) = min_max(finite.iter().copied());
        let bins = bins.max(1);
        let width = if hi > lo { (hi - lo) / bins as f64 } else { 1.0 };
        let mut counts = vec![0usize; bins];
        for v in &finite {
            let k = (((v - lo) / width) as usize).min(bins - 1);
            counts[k] += 1;
        }
        let bins: Vec<(f64, f64, usize)> = counts
            .iter()
            .enumerate()
            .map(|(k, &c)| (lo + k as f64 * width, lo + (k + 1) as f64 * width, c))
            .collect();
        let x = Scale::padded(lo, lo + width * bins.len() as f64, 0.03).ticks();
        let most = counts.iter().copied().max().unwrap_or(1) as f64;
        let y = Scale::from_zero(0.0, most, 0.06).ticks();
        Ok(Histogram { title, x_label, bins, x, y })
    }
}

impl Figure for Histogram<'_> {
    fn size(&self) -> (u32, u32) {
        style::SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let body = chart::titled(root, self.title)?;
        let frame = Frame {
            x: self.x.clone(),
            y: self.y.clone(),
            x_label: self.x_label,
            y_label: "Structures",
            x_grid: false,
            y_grid: true,
            x_tick_px: style::TICK_PX,
        };
        let mut chart = chart::frame(&body, &frame)?;
        let fill = style::series_colours(&["equivariant"])[0];
        chart
            .draw_series(
                self.bins
                    .iter()
                    .filter(|b| b.2 > 0)
                    .map(|&(l, r, c)| Rectangle::new([(l, 0.0), (r, c as f64)], fill.filled())),
            )
            .drawn()?;
        chart
            .draw_series(self.bins.iter().filter(|b| b.2 > 0).map(|&(l, r, c)| {
                Rectangle::new([(l, 0.0), (r, c as f64)], ShapeStyle::from(WHITE).stroke_width(1))
            }))
            .drawn()?;
        Ok(())
    }
}

/// [`super::scatter`], validated.
pub struct Scatter<'t> {
    title: &'t str,
    x_label: &'t str,
    y_label: &'t str,
    /// (x, y, marked).
    points: Vec<(f64, f64, bool)>,
    plain_label: &'t str,
    marked_label: &'t str,
    x: Ticks,
    y: Ticks,
}

impl<'t> Scatter<'t> {
    pub fn new(
        title: &'t str,
        x_label: &'t str,
        y_label: &'t str,
        points: &[(f64, f64, bool)],
        plain_label: &'t str,
        marked_label: &'t str,
    ) -> Result<Self> {
        let points: Vec<(f64, f64, bool)> =
            points.iter().copied().filter(|p| p.0.is_finite() && p.1.is_finite()).collect();
        if points.is_empty() {
            bail!("scatter {title:?}: no point with finite coordinates, nothing to draw");
        }
        let (x_lo, x_hi) = min_max(points.iter().map(|p| p.0));
        let (y_lo, y_hi) = min_max(points.iter().map(|p| p.1));
        let x = Scale::padded(x_lo, x_hi, 0.05).ticks();
        let y =
            if y_lo >= 0.0 { Scale::from_zero(y_lo, y_hi, 0.06) } else { Scale::padded(y_lo, y_hi, 0.06) };
        Ok(Scatter { title, x_label, y_label, points, plain_label, marked_label, x, y: y.ticks() })
    }
}

impl Figure for Scatter<'_> {
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
            x_grid: true,
            y_grid: true,
            x_tick_px: style::TICK_PX,
        };
        let mut chart = chart::frame(&body, &frame)?;
        let colours = style::series_colours(&["equivariant", "scalar"]);
        let (plain, marked) = (colours[0].mix(0.45), colours[1]);
        chart
            .draw_series(
                self.points.iter().filter(|p| !p.2).map(|&(x, y, _)| Circle::new((x, y), 4, plain.filled())),
            )
            .drawn()?
            .label(self.plain_label)
            .legend(move |(x, y)| Circle::new((x + 18, y), 6, plain.filled()));
        if self.points.iter().any(|p| p.2) {
            chart
                .draw_series(
                    self.points.iter().filter(|p| p.2).map(|&(x, y, _)| {
                        EmptyElement::at((x, y)) + Marker::nth(1).element((0, 0), 7, marked)
                    }),
                )
                .drawn()?
                .label(self.marked_label)
                .legend(move |(x, y)| EmptyElement::at((x, y)) + Marker::nth(1).element((18, 0), 7, marked));
        }
        let spots = self.points.iter().map(|p| (p.0, p.1));
        chart::legend(&mut chart, quiet_corner(&self.x, &self.y, spots))
    }
}
