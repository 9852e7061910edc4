//! A scatter of labelled point groups with lines over them: a study's trials with the best so
//! far, a Pareto front, or many learning curves at once.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{DrawResult, Figure, PALETTE};

/// A line over the points: legend (empty: none), points, colour index.
pub type Line = (String, Vec<(f64, f64)>, usize);

/// Points in groups (one colour each, in the legend) and lines drawn over them.
#[derive(Debug, Clone, Default)]
pub struct Points {
    /// Title above the chart.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// `(legend, points)` per group, drawn as dots.
    pub groups: Vec<(String, Vec<(f64, f64)>)>,
    /// `(legend, points, colour index)` per line; an empty legend keeps the line out of it.
    pub lines: Vec<Line>,
    /// A logarithmic x axis (MACs, parameters).
    pub log_x: bool,
    /// Many lines (learning curves): thin and light, so that they read as a bundle.
    pub thin_lines: bool,
    /// The x values are counts (trials, epochs): ticks at whole numbers only.
    pub integer_x: bool,
}

fn range(v: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let (lo, hi) =
        v.filter(|x| x.is_finite() && (!log || *x > 0.0)).fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    if lo > hi {
        return (if log { 1.0 } else { 0.0 }, if log { 10.0 } else { 1.0 });
    }
    if log {
        return (lo / 1.3, hi * 1.3);
    }
    let pad = ((hi - lo) * 0.05).max(1e-9 + lo.abs() * 1e-3);
    (lo - pad, hi + pad)
}

impl Points {
    fn all(&self) -> impl Iterator<Item = &(f64, f64)> {
        self.groups.iter().flat_map(|g| g.1.iter()).chain(self.lines.iter().flat_map(|l| l.1.iter()))
    }
}

impl Figure for Points {
    fn size(&self) -> (u32, u32) {
        (800, 500)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let (x0, x1) = range(self.all().map(|p| p.0), self.log_x);
        let (y0, y1) = range(self.all().map(|p| p.1), false);
        let builder = |b: &mut ChartBuilder<DB>| {
            b.caption(&self.title, ("sans-serif", 22)).margin(12).x_label_area_size(40).y_label_area_size(70);
        };
        let mut b = ChartBuilder::on(root);
        builder(&mut b);
        let no_minor = WHITE.mix(0.0); // the major grid is enough to read values off
        if self.log_x {
            let mut chart = b.build_cartesian_2d((x0..x1).log_scale(), y0..y1)?;
            chart
                .configure_mesh()
                .x_desc(&self.x_label)
                .y_desc(&self.y_label)
                .x_label_formatter(&|x| si(*x))
                .light_line_style(no_minor)
                .draw()?;
            draw_all(self, &mut chart)?;
            legend(&mut chart)
        } else {
            let mut chart = b.build_cartesian_2d(x0..x1, y0..y1)?;
            // Whole-number ticks: as many as fit, never a fraction of a trial or an epoch.
            let ticks = if self.integer_x { ((x1 - x0).floor() as usize + 1).clamp(2, 12) } else { 10 };
            let whole = |x: &f64| if x.fract().abs() < 1e-9 { format!("{x:.0}") } else { String::new() };
            let plain = |x: &f64| format!("{x}");
            let fmt: &dyn Fn(&f64) -> String = if self.integer_x { &whole } else { &plain };
            chart
                .configure_mesh()
                .x_desc(&self.x_label)
                .y_desc(&self.y_label)
                .x_labels(ticks)
                .x_label_formatter(fmt)
                .light_line_style(no_minor)
                .draw()?;
            draw_all(self, &mut chart)?;
            legend(&mut chart)
        }
    }
}

/// A count in thousands or millions: `250k`, `44.6M`.
fn si(x: f64) -> String {
    let trim = |s: String| s.trim_end_matches('0').trim_end_matches('.').to_string();
    if x.abs() >= 1e6 {
        trim(format!("{:.1}", x / 1e6)) + "M"
    } else if x.abs() >= 1e3 {
        trim(format!("{:.1}", x / 1e3)) + "k"
    } else {
        trim(format!("{x:.2}"))
    }
}

fn draw_all<'a, DB: DrawingBackend + 'a, X, Y>(
    p: &Points,
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
) -> DrawResult
where
    DB::ErrorType: 'static,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (name, pts, c) in &p.lines {
        let color = PALETTE[c % PALETTE.len()];
        let style = if p.thin_lines { color.mix(0.6).stroke_width(1) } else { color.stroke_width(2) };
        if pts.len() == 1 {
            // A curve of one point (a trial stopped after its first epoch) is a dot.
            chart.draw_series(pts.iter().map(|&q| Circle::new(q, 3, color.mix(0.6).filled())))?;
        }
        let s = chart.draw_series(LineSeries::new(pts.iter().copied(), style))?;
        if !name.is_empty() {
            s.label(name).legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        }
    }
    for (i, (name, pts)) in p.groups.iter().enumerate().filter(|(_, g)| !g.1.is_empty()) {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(pts.iter().map(|&q| Circle::new(q, 4, color.filled())))?
            .label(name)
            .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
    }
    Ok(())
}

fn legend<'a, DB: DrawingBackend + 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}
