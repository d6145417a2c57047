//! The Cartesian frame shared by the line, bar, history and parity figures: title,
//! axes with our own ticks and labels, faint grid, and the legend box.

use anyhow::Result;
use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::render::Drawn;
use super::scale::Ticks;
use super::style::{self, GRID, INK};

/// A chart whose axes tick exactly where [`Ticks`] says.
pub type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<TickAxis, TickAxis>>;

/// A linear f64 axis whose grid lines and labels sit exactly at its ticks.
#[derive(Clone)]
pub struct TickAxis(Ticks);

impl Ranged for TickAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let fraction = (value - self.0.lo) / (self.0.hi - self.0.lo);
        let pixels = (limit.1 - limit.0) as f64 * fraction;
        limit.0 + (pixels + 1e-3).floor() as i32
    }

    /// The ticks for bold grid lines and labels; no light grid lines.
    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.0.marks.iter().map(|m| m.0).collect()
        }
    }

    fn range(&self) -> Range<f64> {
        self.0.lo..self.0.hi
    }
}

/// Everything a frame needs besides the data.
pub struct Frame<'t> {
    pub x: Ticks,
    pub y: Ticks,
    pub x_label: &'t str,
    pub y_label: &'t str,
    /// Vertical grid lines at the x ticks (off for categorical x).
    pub x_grid: bool,
    /// Horizontal grid lines at the y ticks.
    pub y_grid: bool,
    /// Size of the x tick labels (smaller when long category names must fit).
    pub x_tick_px: u32,
}

/// Pixels a label of `chars` characters takes at text size `px` (plotters draws a size
/// at 1/1.24 of its value; DejaVu Sans averages at most about 0.66 em per character).
pub fn text_width(chars: usize, px: u32) -> u32 {
    (chars as f64 * px as f64 * 0.66 / 1.24).ceil() as u32
}

/// The text size at most `px` at which `chars` characters fit in `room` pixels (≥ 14).
pub fn fitting_px(chars: usize, room: u32, px: u32) -> u32 {
    let fit = (room as f64 * 1.24 / (chars.max(1) as f64 * 0.66)).floor() as u32;
    fit.clamp(14, px)
}

/// Chart margins in pixels.
pub const MARGIN_TOP: i32 = 16;
pub const MARGIN_RIGHT: i32 = 40;
pub const MARGIN_BOTTOM: i32 = 10;
pub const MARGIN_LEFT: i32 = 14;

/// Height under the plot for the x tick labels and, if there is one, the x axis label.
pub fn x_label_area(x_label: &str, tick_px: u32) -> u32 {
    let ticks = tick_px + 16;
    if x_label.is_empty() {
        ticks
    } else {
        ticks + style::LABEL_PX + 8
    }
}

/// Width left of the plot for the y tick labels of `y` and, if there is one, the
/// rotated y axis label.
pub fn y_label_area(y: &Ticks, y_label: &str) -> u32 {
    let ticks = text_width(y.widest_label(), style::TICK_PX) + 20;
    if y_label.is_empty() {
        ticks
    } else {
        ticks + style::LABEL_PX + 8
    }
}

/// Draws `title` centred at the top of `root` and returns the area below it
/// (all of `root` when the title is empty).
pub fn titled<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
) -> Result<DrawingArea<DB, Shift>> {
    if title.is_empty() {
        return Ok(root.clone());
    }
    let (width, _) = root.dim_in_pixel();
    let height = style::TITLE_PX + 14;
    let (head, body) = root.split_vertically(height);
    // A long title shrinks to the canvas width rather than being cut at its edges.
    let px = fitting_px(title.chars().count(), width.saturating_sub(40), style::TITLE_PX);
    let centred = style::text(px).pos(Pos::new(HPos::Center, VPos::Center));
    head.draw(&Text::new(title.to_string(), (width as i32 / 2, height as i32 / 2 + 4), centred)).drawn()?;
    Ok(body)
}

/// Draws a one-row legend of colour swatches centred at the top of `area` and returns
/// the area below it: outside the plot, so it never hides a bar.
pub fn legend_row<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(&str, RGBColor)],
) -> Result<DrawingArea<DB, Shift>> {
    const SWATCH: i32 = 26;
    const GAP: i32 = 10;
    const SPACING: i32 = 36;
    let height = style::LEGEND_PX as i32 + 12;
    let widths: Vec<i32> = entries
        .iter()
        .map(|(label, _)| SWATCH + GAP + text_width(label.chars().count(), style::LEGEND_PX) as i32)
        .collect();
    let total = widths.iter().sum::<i32>() + SPACING * (entries.len() as i32 - 1).max(0);
    let (width, _) = area.dim_in_pixel();
    let (row, rest) = area.split_vertically(height);
    let label = style::text(style::LEGEND_PX).pos(Pos::new(HPos::Left, VPos::Center));
    let middle = height / 2;
    let mut x = (width as i32 - total).max(0) / 2;
    for ((text, colour), w) in entries.iter().zip(&widths) {
        let swatch = [(x, middle - SWATCH / 2), (x + SWATCH, middle + SWATCH / 2)];
        row.draw(&Rectangle::new(swatch, colour.filled())).drawn()?;
        row.draw(&Text::new(text.to_string(), (x + SWATCH + GAP, middle), label.clone())).drawn()?;
        x += w + SPACING;
    }
    Ok(rest)
}

/// Builds the chart on `area` and draws its axes, ticks, labels and grid.
pub fn frame<'a, DB: DrawingBackend>(area: &'a DrawingArea<DB, Shift>, f: &Frame) -> Result<Chart<'a, DB>> {
    let mut chart = ChartBuilder::on(area)
        .margin_top(MARGIN_TOP)
        .margin_right(MARGIN_RIGHT)
        .margin_left(MARGIN_LEFT)
        .margin_bottom(MARGIN_BOTTOM)
        .x_label_area_size(x_label_area(f.x_label, f.x_tick_px))
        .y_label_area_size(y_label_area(&f.y, f.y_label))
        .build_cartesian_2d(TickAxis(f.x.clone()), TickAxis(f.y.clone()))
        .drawn()?;

    let x_label = |v: &f64| f.x.label_at(*v);
    let y_label = |v: &f64| f.y.label_at(*v);
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(f.x_label)
        .y_desc(f.y_label)
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .x_label_style(style::text(f.x_tick_px))
        .y_label_style(style::text(style::TICK_PX))
        .axis_desc_style(style::text(style::LABEL_PX))
        .axis_style(ShapeStyle::from(INK).stroke_width(2))
        .bold_line_style(ShapeStyle::from(GRID).stroke_width(1))
        .light_line_style(TRANSPARENT)
        .set_all_tick_mark_size(6);
    if !f.x_grid {
        mesh.disable_x_mesh();
    }
    if !f.y_grid {
        mesh.disable_y_mesh();
    }
    mesh.draw().drawn()?;
    Ok(chart)
}

/// Draws the series legend in the upper `position` corner.
pub fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    position: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .margin(14)
        .legend_area_size(44)
        .label_font(style::text(style::LEGEND_PX))
        .background_style(WHITE.mix(0.9))
        .border_style(ShapeStyle::from(RGBColor(0xbb, 0xbb, 0xbb)).stroke_width(1))
        .draw()
        .drawn()
}

/// Vertical error bars `(x, lo, hi)` in data units, with caps `cap` pixels wide either side.
/// Ends below `floor` are cut there and drawn without a cap, so a cut interval does not
/// look like one that ends at the floor.
pub fn error_bars<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    bars: &[(f64, f64, f64)],
    cap: i32,
    colour: RGBColor,
    floor: f64,
) -> Result<()> {
    let line = ShapeStyle::from(colour).stroke_width(2);
    chart
        .draw_series(
            bars.iter().map(|&(x, lo, hi)| PathElement::new(vec![(x, lo.max(floor)), (x, hi)], line)),
        )
        .drawn()?;
    let caps =
        bars.iter().flat_map(|&(x, lo, hi)| [(lo >= floor).then_some((x, lo)), Some((x, hi))]).flatten();
    chart
        .draw_series(caps.map(|at| EmptyElement::at(at) + PathElement::new(vec![(-cap, 0), (cap, 0)], line)))
        .drawn()?;
    Ok(())
}
