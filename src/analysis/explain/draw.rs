//! Pictures of explanations: maps laid over their images (the jet colormap, half and half, as
//! pytorch-grad-cam's `show_cam_on_image`) in grids, and the t-SNE scatter coloured by class.

use plotters::coord::Shift;
use plotters::prelude::*;
use tch::{Device, Kind, Tensor};

use crate::analysis::plots::{DrawResult, Figure, Tile, PALETTE};

/// The jet colormap at `v` in [0, 1] (blue, cyan, yellow, red), as OpenCV's `COLORMAP_JET`.
pub fn jet(v: f32) -> [u8; 3] {
    let v = v.clamp(0.0, 1.0);
    let ramp = |x: f32| (1.5 - (4.0 * v - x).abs()).clamp(0.0, 1.0);
    [(ramp(3.0) * 255.0).round() as u8, (ramp(2.0) * 255.0).round() as u8, (ramp(1.0) * 255.0).round() as u8]
}

/// Image `index` of uint8 `images` `(N, C, H, W)` with `map` `(H, W)` (values in [0, 1]) over it:
/// half image, half jet colour.
pub fn overlay_tile(images: &Tensor, index: i64, map: &Tensor, caption: Vec<String>, wrong: bool) -> Tile {
    let mut tile = Tile::from_images(images, index, caption, wrong);
    let values =
        Vec::<f32>::try_from(map.to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1)).unwrap_or_default();
    for (px, v) in tile.rgb.chunks_mut(3).zip(values) {
        let c = jet(v);
        for (p, c) in px.iter_mut().zip(c) {
            *p = ((*p as f32 + c as f32) / 2.0).round() as u8;
        }
    }
    tile
}

/// A map `(H, W)` in [0, 1] on its own, as a jet-coloured tile (for saliency, which reads
/// better without the image under it).
pub fn heat_tile(map: &Tensor, caption: Vec<String>) -> Tile {
    let (h, w) = map.size2().unwrap_or((0, 0));
    let values =
        Vec::<f32>::try_from(map.to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1)).unwrap_or_default();
    let rgb = values.into_iter().flat_map(jet).collect();
    Tile { rgb, width: w as u32, height: h as u32, caption, wrong: false }
}

/// Points in 2-D coloured by class, with a legend.
#[derive(Debug, Clone)]
pub struct Scatter {
    /// Title.
    pub title: String,
    /// `(x, y, class)` per point.
    pub points: Vec<(f32, f32, usize)>,
    /// Class names, in label order.
    pub classes: Vec<String>,
}

impl Figure for Scatter {
    fn size(&self) -> (u32, u32) {
        (900, 760)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let range = |f: fn(&(f32, f32, usize)) -> f32| {
            let (lo, hi) = self.points.iter().map(f).fold((f32::MAX, f32::MIN), |(a, b), v| (a.min(v), b.max(v)));
            let pad = ((hi - lo) * 0.03).max(1e-3);
            (lo - pad)..(hi + pad)
        };
        let (x, y) = if self.points.is_empty() { (0.0..1.0, 0.0..1.0) } else { (range(|p| p.0), range(|p| p.1)) };
        let (plot, legend) = root.split_horizontally(740);
        let mut chart = ChartBuilder::on(&plot)
            .caption(&self.title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(x, y)?;
        chart.configure_mesh().disable_mesh().draw()?;
        let colour = |c: usize| PALETTE[c % PALETTE.len()];
        chart.draw_series(self.points.iter().map(|&(x, y, c)| Circle::new((x, y), 2, colour(c).filled())))?;
        if self.classes.len() > PALETTE.len() * 2 {
            // Colours repeat every ten classes: a legend of them would mislead.
            let note = format!("{} classes;", self.classes.len());
            legend.draw(&Text::new(note, (6, 60), ("sans-serif", 14).into_font()))?;
            legend.draw(&Text::new("colours repeat", (6, 80), ("sans-serif", 14).into_font()))?;
            return Ok(());
        }
        for (i, name) in self.classes.iter().enumerate() {
            let y = 60 + 22 * i as i32;
            legend.draw(&Circle::new((14, y), 5, colour(i).filled()))?;
            legend.draw(&Text::new(name.clone(), (26, y - 8), ("sans-serif", 14).into_font()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jet_runs_from_blue_to_red() {
        assert_eq!(jet(0.0), [0, 0, 128]);
        assert_eq!(jet(1.0), [128, 0, 0]);
        assert_eq!(jet(0.5), [128, 255, 128]);
    }
}
