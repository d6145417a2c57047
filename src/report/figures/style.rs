//! One look for every figure: the embedded font, text sizes, the colour-blind-safe
//! palette and the sequential colour ramps.

use std::sync::OnceLock;

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;
use plotters::style::{register_font, FontStyle};

/// DejaVu Sans, compiled in so PNGs render the same on machines without system fonts
/// (licence: `assets/fonts/LICENSE-DejaVu.txt`).
const DEJAVU_SANS: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/fonts/DejaVuSans.ttf"));

/// The family name every text style uses; SVG viewers fall back to their own sans-serif.
pub const FONT: &str = "sans-serif";

/// Canvas of the ordinary figures, in pixels (3:2, 300 dpi at 4 × 2.7 inches).
pub const SIZE: (u32, u32) = (1200, 800);
/// Canvas of the parallel-coordinates figure: wider, one axis per parameter.
pub const WIDE_SIZE: (u32, u32) = (1600, 800);

/// Text sizes on the 1200 × 800 canvas, as plotters counts them (glyphs are drawn at
/// 1/1.24 of the size: tick labels ≈ 27 px high, about 7 pt when the figure is printed
/// one column wide).
pub const TITLE_PX: u32 = 44;
pub const LABEL_PX: u32 = 40;
pub const TICK_PX: u32 = 34;
pub const LEGEND_PX: u32 = 32;

/// Registers the embedded font with plotters once per process.
pub fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let registered = REGISTERED.get_or_init(|| register_font(FONT, FontStyle::Normal, DEJAVU_SANS).is_ok());
    if !registered {
        return Err(anyhow!("the embedded figure font could not be parsed"));
    }
    Ok(())
}

/// A text style of `px` pixels in the embedded font.
pub fn text(px: u32) -> TextStyle<'static> {
    (FONT, px).into_font().color(&INK)
}

/// Near-black for text, axes and reference lines.
pub const INK: RGBColor = RGBColor(0x1a, 0x1a, 0x1a);
/// Grid lines: faint enough not to compete with the data.
pub const GRID: RGBColor = RGBColor(0xe3, 0xe3, 0xe3);

/// Okabe & Ito's colour-blind-safe palette (black, its eighth colour, is kept for
/// reference lines).
const BLUE: RGBColor = RGBColor(0x00, 0x72, 0xb2);
const VERMILLION: RGBColor = RGBColor(0xd5, 0x5e, 0x00);
const ORANGE: RGBColor = RGBColor(0xe6, 0x9f, 0x00);
const SKY_BLUE: RGBColor = RGBColor(0x56, 0xb4, 0xe9);
const BLUISH_GREEN: RGBColor = RGBColor(0x00, 0x9e, 0x73);
const REDDISH_PURPLE: RGBColor = RGBColor(0xcc, 0x79, 0xa7);
const YELLOW: RGBColor = RGBColor(0xf0, 0xe4, 0x42);

/// The order other series take colours in: the two model colours come last, so a
/// figure without models (phases, importances) does not borrow their meaning.
const OTHERS: [RGBColor; 7] = [ORANGE, SKY_BLUE, BLUISH_GREEN, REDDISH_PURPLE, YELLOW, BLUE, VERMILLION];

/// Colours for series with these labels, in order: "equivariant" (blue) and "scalar"
/// (vermillion), in any case, are the same in every figure; other labels take the next
/// unused palette colour, cycling when there are more than seven.
pub fn series_colours<S: AsRef<str>>(labels: &[S]) -> Vec<RGBColor> {
    let fixed = |label: &str| match label.trim().to_ascii_lowercase().as_str() {
        "equivariant" => Some(BLUE),
        "scalar" => Some(VERMILLION),
        _ => None,
    };
    let taken: Vec<RGBColor> = labels.iter().filter_map(|l| fixed(l.as_ref())).collect();
    let mut free = OTHERS.iter().filter(|c| !taken.contains(c)).cycle();
    labels.iter().map(|l| fixed(l.as_ref()).unwrap_or_else(|| *free.next().unwrap_or(&INK))).collect()
}

/// Marker shapes, so series stay apart in greyscale print too.
#[derive(Clone, Copy, Debug)]
pub enum Marker {
    Circle,
    Square,
    Triangle,
    Diamond,
}

impl Marker {
    pub fn nth(i: usize) -> Marker {
        [Marker::Circle, Marker::Square, Marker::Triangle, Marker::Diamond][i % 4]
    }

    /// The marker centred on pixel `(x, y)` with half-size `r` pixels.
    pub fn element(self, (x, y): (i32, i32), r: i32, colour: RGBColor) -> Polygon<(i32, i32)> {
        let corners = match self {
            Marker::Circle => (0..16)
                .map(|k| {
                    let a = k as f64 * std::f64::consts::TAU / 16.0;
                    (x + (r as f64 * a.cos()).round() as i32, y + (r as f64 * a.sin()).round() as i32)
                })
                .collect(),
            Marker::Square => {
                let s = (r as f64 * 0.9).round() as i32;
                vec![(x - s, y - s), (x + s, y - s), (x + s, y + s), (x - s, y + s)]
            }
            Marker::Triangle => {
                let h = (r as f64 * 1.15).round() as i32;
                vec![(x, y - h), (x + h, y + h * 3 / 4), (x - h, y + h * 3 / 4)]
            }
            Marker::Diamond => {
                let d = (r as f64 * 1.25).round() as i32;
                vec![(x, y - d), (x + d, y), (x, y + d), (x - d, y)]
            }
        };
        Polygon::new(corners, colour.filled())
    }
}

/// Viridis at `t` ∈ [0, 1]: perceptually uniform and colour-blind safe (heat maps).
pub fn viridis(t: f64) -> RGBColor {
    ViridisRGB::get_color_normalized(t.clamp(0.0, 1.0), 0.0, 1.0)
}

/// A single-hue ramp from pale grey-blue (`t` = 0, worst) to saturated blue (`t` = 1, best).
pub fn saturation_ramp(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let pale = (0xd4 as f64, 0xdc as f64, 0xe4 as f64);
    let deep = (0x08 as f64, 0x30 as f64, 0x6b as f64);
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    RGBColor(mix(pale.0, deep.0), mix(pale.1, deep.1), mix(pale.2, deep.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_colours_are_fixed_and_others_avoid_them() {
        assert_eq!(series_colours(&["scalar", "Equivariant"]), [VERMILLION, BLUE]);
        assert_eq!(series_colours(&["tpe", "grid"]), [ORANGE, SKY_BLUE]);
        assert_eq!(series_colours(&["equivariant", "mine"]), [BLUE, ORANGE]);
        let many: Vec<String> = (0..9).map(|i| format!("s{i}")).collect();
        let colours = series_colours(&many);
        assert_eq!(colours[0], colours[7], "the palette cycles after seven");
    }
}
