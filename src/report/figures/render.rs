//! Draws one figure twice, on a pixel buffer and on an SVG document, and writes both files.

use std::fmt::Display;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use image::codecs::png::PngEncoder;
use image::{ColorType, ImageEncoder};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::style;
use super::FigureFiles;

/// A figure whose data is validated and ready: it only needs a canvas.
pub trait Figure {
    /// Canvas size in pixels (also the SVG's view size).
    fn size(&self) -> (u32, u32);

    /// Draws everything on `root`, which is already filled white.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>;
}

/// Plotters' errors carry the backend's error type, which need not be `'static`;
/// this turns them into `anyhow` errors by their message.
pub trait Drawn<T> {
    fn drawn(self) -> Result<T>;
}

impl<T, E: Display> Drawn<T> for std::result::Result<T, E> {
    fn drawn(self) -> Result<T> {
        self.map_err(|e| anyhow!("drawing the figure failed: {e}"))
    }
}

/// Renders `figure` to `dir/stem.png` and `dir/stem.svg`.
pub fn write_figure(dir: &Path, stem: &str, figure: &impl Figure) -> Result<FigureFiles> {
    if !dir.is_dir() {
        bail!("figure folder {} does not exist or is not a folder", dir.display());
    }
    if stem.is_empty() || stem.contains(['/', '\\']) {
        bail!("figure name {stem:?} must be a plain file stem (no folders)");
    }
    style::ensure_font()?;
    let (width, height) = figure.size();

    let mut pixels = vec![0u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        root.fill(&WHITE).drawn()?;
        figure.draw(&root)?;
        root.present().drawn()?;
    }
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(&pixels, width, height, ColorType::Rgb8)
        .context("encoding the PNG failed")?;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).drawn()?;
        figure.draw(&root)?;
        root.present().drawn()?;
    }

    let files = FigureFiles { png: dir.join(format!("{stem}.png")), svg: dir.join(format!("{stem}.svg")) };
    std::fs::write(&files.png, png).with_context(|| format!("writing {} failed", files.png.display()))?;
    std::fs::write(&files.svg, svg).with_context(|| format!("writing {} failed", files.svg.display()))?;
    Ok(files)
}
