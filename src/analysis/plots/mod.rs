//! The standard pictures of a run, drawn with plotters as PNG and SVG into `RUN/plots/`: loss,
//! accuracy and learning-rate curves, confusion matrices, per-class accuracy, a grid of test
//! predictions, the most confidently wrong test images and a model summary.
//!
//! Each picture is a small [`Figure`] value drawn on any plotters backend, so PNG and SVG come from
//! the same code. Text uses DejaVu Sans compiled into the binary (the `dejavu` crate), so plots look
//! the same on machines without fonts.

mod charts;
mod images;
mod points;
mod recipe;
mod run;

pub use charts::{Bars, Heatmap, LineChart, Table};
pub use images::{ImageGrid, Tile};
pub use plotters::style::RGBColor as RGB;
pub use points::Points;
pub use recipe::{augment_grid, class_grid, lr_find_chart};
pub use run::{draw_run, lr_chart, missing_plots, RunPlots, RUN_PLOTS};

use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Once;

use crate::error::{Error, Result};

/// The result of drawing on a backend.
pub type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// A picture that can be drawn on any plotters backend.
pub trait Figure {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws onto `root` (already sized).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static;
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Raster (what the HTML report embeds and TensorBoard shows).
    Png,
    /// Vector.
    Svg,
}

/// Draws `fig` into `dir/<stem>.png` and `dir/<stem>.svg`; returns both paths.
pub fn save(fig: &impl Figure, dir: &Path, stem: &str) -> Result<Vec<PathBuf>> {
    register_fonts();
    crate::error::create_dir_all(dir, "cannot create")?;
    let mut out = Vec::new();
    for format in [Format::Png, Format::Svg] {
        let ext = if format == Format::Png { "png" } else { "svg" };
        let path = dir.join(format!("{stem}.{ext}"));
        // Draw to a temporary name and rename, so a plot being redrawn is never seen half-written.
        let tmp = crate::fsio::tmp_path(&path); // keeps the extension, which the PNG encoder reads
        let drawn = match format {
            Format::Png => present(fig, BitMapBackend::new(&tmp, fig.size()).into_drawing_area()),
            Format::Svg => present(fig, SVGBackend::new(&tmp, fig.size()).into_drawing_area()),
        };
        if let Err(e) = drawn {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::Runtime(format!("cannot draw {}: {e}", path.display())));
        }
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("cannot write", &path, e))?;
        out.push(path);
    }
    Ok(out)
}

fn present<DB: DrawingBackend>(fig: &impl Figure, root: DrawingArea<DB, Shift>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    fig.draw(&root)?;
    root.present()?;
    Ok(())
}

/// Registers the embedded DejaVu Sans as plotters' sans-serif font (once per process).
fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold());
    });
}

/// A palette that stays readable for up to 10 series (Tableau 10).
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
