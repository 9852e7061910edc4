//! Image grids: sample test predictions and the most confidently wrong test images.

use plotters::coord::Shift;
use plotters::prelude::*;
use tch::Tensor;

use super::{DrawResult, Figure};

/// One image with its caption.
#[derive(Debug, Clone)]
pub struct Tile {
    /// RGB bytes, row-major `(h, w, 3)`.
    pub rgb: Vec<u8>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Caption lines under the image.
    pub caption: Vec<String>,
    /// Drawn with a red frame and red caption (a wrong prediction).
    pub wrong: bool,
}

impl Tile {
    /// The image `index` of a uint8 `(N, C, H, W)` tensor (C = 1 or 3) as RGB.
    pub fn from_images(images: &Tensor, index: i64, caption: Vec<String>, wrong: bool) -> Tile {
        let img = images.get(index).to_device(tch::Device::Cpu); // (C, H, W)
        let (c, h, w) = img.size3().unwrap_or((3, 0, 0));
        let img = if c == 1 { img.repeat([3, 1, 1]) } else { img };
        let hwc = img.permute([1, 2, 0]).contiguous();
        let rgb = Vec::<u8>::try_from(hwc.flatten(0, -1)).unwrap_or_default();
        Tile { rgb, width: w as u32, height: h as u32, caption, wrong }
    }

    /// Nearest-neighbour upscaling by `k` (small images stay crisp).
    fn scaled(&self, k: u32) -> Vec<u8> {
        let (w, h) = (self.width * k, self.height * k);
        let mut out = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let i = (((y / k) * self.width + x / k) * 3) as usize;
                out.extend_from_slice(&self.rgb[i..i + 3]);
            }
        }
        out
    }
}

/// A grid of captioned images.
#[derive(Debug, Clone)]
pub struct ImageGrid {
    /// Title.
    pub title: String,
    /// Images, row by row.
    pub tiles: Vec<Tile>,
    /// Images per row.
    pub cols: usize,
    /// Whether the tiles are predictions judged right (green) or wrong (red); else neutral.
    pub judged: bool,
}

impl ImageGrid {
    fn cell(&self) -> (u32, u32, u32) {
        let side = self.tiles.iter().map(|t| t.width.max(t.height)).max().unwrap_or(32).max(1);
        let k = (96 / side).max(1);
        (k, side * k + 16, side * k + 46)
    }
}

impl Figure for ImageGrid {
    fn size(&self) -> (u32, u32) {
        let (_, cw, ch) = self.cell();
        let rows = self.tiles.len().div_ceil(self.cols.max(1)) as u32;
        ((cw * self.cols as u32).max(400) + 20, 50 + ch * rows.max(1))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.draw(&Text::new(self.title.clone(), (12, 10), ("sans-serif", 20).into_font()))?;
        if self.tiles.is_empty() {
            root.draw(&Text::new("(none)", (12, 50), ("sans-serif", 16).into_font()))?;
        }
        let (k, cw, ch) = self.cell();
        for (i, t) in self.tiles.iter().enumerate() {
            let (col, row) = ((i % self.cols) as i32, (i / self.cols) as i32);
            let (x, y) = (10 + col * cw as i32, 44 + row * ch as i32);
            let (w, h) = (t.width * k, t.height * k);
            if let Some(bitmap) = BitMapElement::with_owned_buffer((x + 4, y + 4), (w, h), t.scaled(k)) {
                root.draw(&bitmap)?;
            }
            let color = match (self.judged, t.wrong) {
                (true, true) => RED,
                (true, false) => RGBColor(30, 130, 30),
                (false, _) => RGBColor(60, 60, 60),
            };
            let frame = [(x + 3, y + 3), (x + 5 + w as i32, y + 5 + h as i32)];
            root.draw(&Rectangle::new(frame, color.stroke_width(if t.wrong { 3 } else { 1 })))?;
            for (j, line) in t.caption.iter().enumerate() {
                let style = TextStyle::from(("sans-serif", 12).into_font()).color(&color);
                root.draw(&Text::new(line.clone(), (x + 4, y + 8 + h as i32 + 14 * j as i32), style))?;
            }
        }
        Ok(())
    }
}
