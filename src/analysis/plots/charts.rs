//! Generic charts: line chart (curves), heatmap (confusion matrix), bars (per-class accuracy)
//! and a text table (model summary).

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{DrawResult, Figure, PALETTE};

/// Lines over a shared x axis (epochs or steps).
#[derive(Debug, Clone)]
pub struct LineChart {
    /// Title above the chart.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// `(legend, points)` per line.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// The x values are base-10 logarithms (a learning-rate sweep): ticks read `1e-3`.
    pub log10_x: bool,
    /// Shaded bands behind the lines (e.g. mean +- std over seeds); empty for none.
    pub bands: Vec<Band>,
}

/// A shaded band behind series `.0` of a [`LineChart`]: `(x, low, high)` points.
pub type Band = (usize, Vec<(f64, f64, f64)>);

/// Values beyond this size set no axis range: a hand-edited 1e308 would make the range (or its
/// padding) overflow and the tick search never end. Such points fall outside the drawn area.
const DRAWABLE: f64 = 1e15;

/// The axis range of `points` (finite values of drawable size; `0..1` when there are none).
fn bounds(points: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = points.filter(|v| v.abs() < DRAWABLE).fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    if lo > hi {
        (0.0, 1.0)
    } else if hi - lo < 1e-12 {
        (lo - 0.5 * lo.abs().max(1e-3), hi + 0.5 * hi.abs().max(1e-3))
    } else {
        (lo, hi)
    }
}

impl Figure for LineChart {
    fn size(&self) -> (u32, u32) {
        (800, 500)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let all = || self.series.iter().flat_map(|(_, p)| p.iter());
        let band_ys = || self.bands.iter().flat_map(|(_, b)| b.iter().flat_map(|&(_, lo, hi)| [lo, hi]));
        let (x0, x1) = bounds(all().map(|p| p.0));
        let (y0, y1) = bounds(all().map(|p| p.1).chain(band_ys()));
        let pad = (y1 - y0) * 0.05;
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 24))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0 - pad..y1 + pad)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_label_formatter(&|x| if self.log10_x { format!("{:.0e}", 10f64.powf(*x)) } else { tick(*x) })
            .y_label_formatter(&|y| tick(*y))
            .light_line_style(WHITE.mix(0.0)) // the major grid is enough to read values off
            .draw()?;
        for (i, band) in &self.bands {
            // The upper edge left to right, then the lower one back: one closed polygon.
            let outline: Vec<(f64, f64)> =
                band.iter().map(|&(x, _, hi)| (x, hi)).chain(band.iter().rev().map(|&(x, lo, _)| (x, lo))).collect();
            chart.draw_series([Polygon::new(outline, PALETTE[i % PALETTE.len()].mix(0.15).filled())])?;
        }
        for (i, (name, pts)) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            if pts.len() <= 60 {
                // Markers: a run of one or a few epochs still shows its points.
                chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
            }
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(legend_corner(&self.series, (y0 + y1) / 2.0))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    }
}

/// The right-hand corner away from where the curves end (accuracy ends high, loss low), so that
/// the legend does not cover them.
fn legend_corner(series: &[(String, Vec<(f64, f64)>)], mid: f64) -> SeriesLabelPosition {
    let ends: Vec<f64> = series.iter().filter_map(|(_, p)| p.last().map(|q| q.1)).collect();
    let high = !ends.is_empty() && ends.iter().sum::<f64>() / ends.len() as f64 > mid;
    if high {
        SeriesLabelPosition::LowerRight
    } else {
        SeriesLabelPosition::UpperRight
    }
}

/// An axis label: whole numbers (epochs, steps, percents) without a ".0", others with up to
/// four significant digits.
fn tick(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e9 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}").trim_end_matches('0').to_string()
    }
}

/// A labelled matrix of cells shaded by value (a confusion matrix: rows = true class).
#[derive(Debug, Clone)]
pub struct Heatmap {
    /// Title.
    pub title: String,
    /// Row and column names.
    pub labels: Vec<String>,
    /// Cell values in [0, 1] (shade).
    pub shade: Vec<Vec<f64>>,
    /// Cell texts.
    pub text: Vec<Vec<String>>,
}

/// Up to this many classes a heatmap writes every cell's value and names columns horizontally.
const HEATMAP_TEXT_CLASSES: usize = 20;

impl Heatmap {
    fn dense(&self) -> bool {
        self.labels.len() > HEATMAP_TEXT_CLASSES
    }

    /// Cell side in pixels: 56 with values written in; smaller for many classes, so that e.g. a
    /// 100-class confusion matrix stays a readable ~1,200 px image rather than 5,800 px.
    fn cell(&self) -> u32 {
        let n = self.labels.len().max(1) as u32;
        if self.dense() {
            (1200 / n).clamp(10, 56)
        } else {
            56
        }
    }
}

impl Figure for Heatmap {
    fn size(&self) -> (u32, u32) {
        let n = self.labels.len() as u32;
        let bottom = if self.dense() { 220 } else { 160 }; // room for the vertical column names
        (220 + self.cell() * n, bottom + self.cell() * n)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let (n, dense) = (self.labels.len(), self.dense());
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 22))
            .margin(12)
            .margin_left(120)
            .margin_bottom(if dense { 130 } else { 70 })
            .build_cartesian_2d(0..n, 0..n)?;
        self.draw_labels(root, &chart)?;
        let (x_mid, y_bottom) = chart.backend_coord(&(n / 2, 0));
        let below = y_bottom + if dense { 110 } else { 44 };
        root.draw(&Text::new("predicted class", (x_mid - 50, below), ("sans-serif", 15).into_font()))?;
        root.draw(&Text::new("rows: true class", (8, below), ("sans-serif", 15).into_font()))?;
        for (r, row) in self.shade.iter().enumerate() {
            for (c, &v) in row.iter().enumerate() {
                let y = n - 1 - r; // row 0 at the top
                let v = v.clamp(0.0, 1.0);
                let fill = RGBColor((247.0 - 239.0 * v) as u8, (251.0 - 203.0 * v) as u8, (255.0 - 148.0 * v) as u8);
                chart.draw_series([Rectangle::new([(c, y), (c + 1, y + 1)], fill.filled())])?;
                if dense {
                    continue; // the shade alone: the numbers are in eval.json
                }
                let color = if v > 0.5 { WHITE } else { BLACK };
                let style = TextStyle::from(("sans-serif", 13).into_font()).color(&color);
                let text = self.text[r][c].clone();
                let (px, py) = chart.backend_coord(&(c, y + 1));
                let (qx, qy) = chart.backend_coord(&(c + 1, y));
                let w = root.estimate_text_size(&text, &style)?.0 as i32;
                root.draw(&Text::new(text, ((px + qx) / 2 - w / 2, (py + qy) / 2 - 7), style))?;
            }
        }
        Ok(())
    }
}

impl Heatmap {
    /// Class names centred on rows and columns (drawn by hand: mesh labels sit on cell edges);
    /// columns staggered when few, vertical when many.
    fn draw_labels<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        chart: &ChartContext<
            DB,
            Cartesian2d<plotters::coord::types::RangedCoordusize, plotters::coord::types::RangedCoordusize>,
        >,
    ) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let n = self.labels.len();
        let size = if self.dense() { (self.cell() as f64 - 1.0).clamp(8.0, 13.0) } else { 13.0 };
        let font = TextStyle::from(("sans-serif", size).into_font());
        let vertical = font.transform(FontTransform::Rotate90);
        for (i, name) in self.labels.iter().enumerate() {
            let (x0, y0) = chart.backend_coord(&(i, 0));
            let (x1, _) = chart.backend_coord(&(i + 1, 0));
            let (w, h) = root.estimate_text_size(name, &font)?;
            if self.dense() {
                root.draw(&Text::new(name.clone(), ((x0 + x1) / 2 + h as i32 / 2, y0 + 4), vertical.clone()))?;
            } else {
                let dy = if i % 2 == 0 { 6 } else { 24 }; // staggered so long names do not collide
                root.draw(&Text::new(name.clone(), ((x0 + x1) / 2 - w as i32 / 2, y0 + dy), font.clone()))?;
            }
            let (_, ya) = chart.backend_coord(&(0, n - i));
            let (xa, yb) = chart.backend_coord(&(0, n - 1 - i));
            root.draw(&Text::new(name.clone(), (xa - w as i32 - 8, (ya + yb) / 2 - h as i32 / 2), font.clone()))?;
        }
        Ok(())
    }
}

/// Horizontal bars with their value written at the end (per-class accuracy).
#[derive(Debug, Clone)]
pub struct Bars {
    /// Title.
    pub title: String,
    /// Bar names, top to bottom.
    pub labels: Vec<String>,
    /// Values in [0, max].
    pub values: Vec<f64>,
    /// Axis maximum.
    pub max: f64,
    /// Axis label.
    pub x_label: String,
}

impl Figure for Bars {
    fn size(&self) -> (u32, u32) {
        (800, 120 + 34 * self.labels.len() as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let n = self.labels.len();
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 22))
            .margin(12)
            .margin_left(120)
            .x_label_area_size(40)
            .build_cartesian_2d(0.0..self.max * 1.12, 0..n)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .disable_y_axis()
            .x_desc(&self.x_label)
            .x_label_formatter(&|x| tick(*x))
            .light_line_style(WHITE.mix(0.0)) // as the line charts: the major grid only
            .draw()?;
        let font = TextStyle::from(("sans-serif", 14).into_font());
        for (i, name) in self.labels.iter().enumerate() {
            let (x, top) = chart.backend_coord(&(0.0, n - i));
            let (_, bottom) = chart.backend_coord(&(0.0, n - 1 - i));
            let w = root.estimate_text_size(name, &font)?.0 as i32;
            root.draw(&Text::new(name.clone(), (x - w - 8, (top + bottom) / 2 - 7), font.clone()))?;
        }
        for (i, &v) in self.values.iter().enumerate() {
            let y = n - 1 - i;
            let mut bar = Rectangle::new([(0.0, y), (v, y + 1)], PALETTE[0].filled());
            bar.set_margin(4, 4, 0, 0);
            chart.draw_series([bar])?;
            let (x, top) = chart.backend_coord(&(v, y + 1));
            let (_, bottom) = chart.backend_coord(&(v, y));
            let style = ("sans-serif", 14).into_font();
            root.draw(&Text::new(format!("{:.1}", v), (x + 6, (top + bottom) / 2 - 7), style))?;
        }
        Ok(())
    }
}

/// A text table (the model summary): header plus rows, columns left-aligned.
#[derive(Debug, Clone)]
pub struct Table {
    /// Title.
    pub title: String,
    /// Column names.
    pub header: Vec<String>,
    /// Rows of cells.
    pub rows: Vec<Vec<String>>,
}

const ROW_PX: i32 = 20;

impl Table {
    fn col_widths(&self) -> Vec<i32> {
        (0..self.header.len())
            .map(|c| {
                let longest = std::iter::once(&self.header).chain(&self.rows).map(|r| r[c].chars().count()).max();
                8 * longest.unwrap_or(0) as i32 + 24
            })
            .collect()
    }
}

impl Figure for Table {
    fn size(&self) -> (u32, u32) {
        let w: i32 = self.col_widths().iter().sum();
        ((w + 40).max(400) as u32, (70 + ROW_PX * (self.rows.len() as i32 + 1)) as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.draw(&Text::new(self.title.clone(), (20, 12), ("sans-serif", 22).into_font()))?;
        let widths = self.col_widths();
        let bold = ("sans-serif", 14).into_font().style(FontStyle::Bold);
        let mut x = 20;
        for (c, h) in self.header.iter().enumerate() {
            root.draw(&Text::new(h.clone(), (x, 48), bold.clone()))?;
            x += widths[c];
        }
        for (r, row) in self.rows.iter().enumerate() {
            let y = 48 + ROW_PX * (r as i32 + 1);
            if r % 2 == 0 {
                root.draw(&Rectangle::new([(16, y - 2), (x, y + ROW_PX - 4)], RGBColor(240, 244, 250).filled()))?;
            }
            let mut cx = 20;
            for (c, cell) in row.iter().enumerate() {
                root.draw(&Text::new(cell.clone(), (cx, y), ("sans-serif", 14).into_font()))?;
                cx += widths[c];
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_drop_the_point_of_whole_numbers_only() {
        assert_eq!(tick(3.0), "3");
        assert_eq!(tick(0.05), "0.05");
        assert_eq!(tick(1.25), "1.25");
        assert_eq!(tick(0.00012), "0.0001");
    }

    #[test]
    fn axis_ranges_ignore_values_too_large_to_draw() {
        let v = [0.5, 2.0, f64::NAN, f64::INFINITY, 1.7e308, -1.7e308];
        assert_eq!(bounds(v.into_iter()), (0.5, 2.0));
        assert_eq!(bounds([1.7e308].into_iter()), (0.0, 1.0), "nothing drawable: a unit range");
    }

    #[test]
    fn the_legend_goes_where_the_curves_do_not_end() {
        let up = vec![("acc".to_string(), vec![(1.0, 10.0), (2.0, 90.0)])];
        let down = vec![("loss".to_string(), vec![(1.0, 2.0), (2.0, 0.5)])];
        assert!(matches!(legend_corner(&up, 50.0), SeriesLabelPosition::LowerRight));
        assert!(matches!(legend_corner(&down, 1.25), SeriesLabelPosition::UpperRight));
    }
}
