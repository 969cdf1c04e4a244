//! Every figure of a report, in one style: the accuracy-vs-compression figures with the
//! Pareto front, and the figures of method views (`wb_core::Figure`). PNG and SVG.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::pareto::{pareto_front, step_line};
use crate::render::Section;
use crate::write_atomic;
use crate::ReportError;

/// Figure size in pixels.
pub(crate) const FIG_SIZE: (u32, u32) = (1000, 700);
const LEGEND_W: u32 = 240;
const FONT: &str = "sans-serif";

/// Colour-blind friendly categorical palette (matplotlib "tab10").
const PALETTE: [RGBColor; 10] = [
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
const FRONT_COLOR: RGBColor = RGBColor(90, 90, 90);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Marker {
    Circle,
    Triangle,
    Square,
    Cross,
    TriangleDown,
    Plus,
    Diamond,
    Star,
}

const MARKERS: [Marker; 7] = [
    Marker::Circle,
    Marker::Triangle,
    Marker::Square,
    Marker::Cross,
    Marker::TriangleDown,
    Marker::Plus,
    Marker::Diamond,
];

/// One method's points in a figure.
#[derive(Debug, Clone)]
struct MethodSeries {
    method: String,
    color: RGBColor,
    marker: Marker,
    /// (compression ratio, top-1 %, params label)
    points: Vec<(f64, f64, String)>,
}

/// Everything needed to draw one figure.
#[derive(Debug, Clone)]
pub(crate) struct FigureData {
    title: String,
    series: Vec<MethodSeries>,
}

impl FigureData {
    /// Plottable points of a section (finite top-1, finite positive ratio),
    /// grouped by method in table order. `None` when nothing can be plotted.
    pub(crate) fn from_section(s: &Section, reference: &str) -> Option<Self> {
        let mut series: Vec<MethodSeries> = Vec::new();
        for r in &s.ok {
            let (Some(x), Some(y)) = (r.ratio, r.top1) else {
                continue;
            };
            if !(x.is_finite() && x > 0.0 && y.is_finite()) {
                continue;
            }
            let label = if r.candidate != "default" {
                format!("{} [{}]", r.params, r.candidate)
            } else {
                r.params.clone()
            };
            match series.iter_mut().find(|m| m.method == r.method) {
                Some(m) => m.points.push((x, y, label)),
                None => series.push(MethodSeries {
                    method: r.method.clone(),
                    color: RGBColor(0, 0, 0),
                    marker: Marker::Circle,
                    points: vec![(x, y, label)],
                }),
            }
        }
        if series.is_empty() {
            return None;
        }
        let mut k = 0;
        for m in &mut series {
            if m.method == reference {
                m.color = RGBColor(0, 0, 0);
                m.marker = Marker::Star;
            } else {
                m.color = PALETTE[k % PALETTE.len()];
                m.marker = MARKERS[k % MARKERS.len()];
                k += 1;
            }
        }
        Some(FigureData {
            title: format!("{} on {}", s.model, s.dataset),
            series,
        })
    }

    fn all_points(&self) -> Vec<(f64, f64)> {
        self.series
            .iter()
            .flat_map(|m| m.points.iter().map(|p| (p.0, p.1)))
            .collect()
    }

    fn labels(&self) -> Vec<&str> {
        self.series
            .iter()
            .flat_map(|m| m.points.iter().map(|p| p.2.as_str()))
            .collect()
    }
}

/// Tick positions on the logarithmic ratio axis: the powers of two inside
/// `[lo, hi]` (1×, 2×, 4×, …), or five log-spaced values when fewer than two
/// powers of two fall inside.
fn ratio_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    let mut e = lo.log2().ceil() as i32;
    while 2f64.powi(e) <= hi {
        ticks.push(2f64.powi(e));
        e += 1;
    }
    if ticks.len() < 2 {
        let (a, b) = (lo.ln(), hi.ln());
        ticks = (1..=5)
            .map(|k| {
                let v = (a + (b - a) * k as f64 / 6.0).exp();
                (v * 100.0).round() / 100.0
            })
            .collect();
        ticks.dedup();
    }
    ticks
}

/// Tick label for a compression ratio: `1×`, `2.5×`, `16×`.
fn ratio_tick(x: f64) -> String {
    let s = format!("{x:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}×")
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn draw_marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    marker: Marker,
    (x, y): (i32, i32),
    s: i32,
    color: RGBColor,
) -> Result<(), String> {
    let fill = color.filled();
    let stroke = color.stroke_width(3);
    let res = match marker {
        Marker::Circle => area.draw(&Circle::new((x, y), s, fill)),
        Marker::Square => area.draw(&Rectangle::new(
            [(x - s + 1, y - s + 1), (x + s - 1, y + s - 1)],
            fill,
        )),
        Marker::Diamond => area.draw(&Polygon::new(
            vec![
                (x, y - s - 2),
                (x + s + 1, y),
                (x, y + s + 2),
                (x - s - 1, y),
            ],
            fill,
        )),
        Marker::Triangle => area.draw(&Polygon::new(
            vec![
                (x, y - s - 2),
                (x + s + 1, y + s - 1),
                (x - s - 1, y + s - 1),
            ],
            fill,
        )),
        Marker::TriangleDown => area.draw(&Polygon::new(
            vec![
                (x, y + s + 2),
                (x + s + 1, y - s + 1),
                (x - s - 1, y - s + 1),
            ],
            fill,
        )),
        Marker::Star => {
            // Five-pointed star: outer radius s + 3, inner radius about 0.45 of it.
            let outer = f64::from(s + 3);
            let pts: Vec<(i32, i32)> = (0..10)
                .map(|k| {
                    let r = if k % 2 == 0 { outer } else { outer * 0.45 };
                    let a = std::f64::consts::PI * (k as f64 / 5.0 - 0.5);
                    (
                        x + (r * a.cos()).round() as i32,
                        y + (r * a.sin()).round() as i32,
                    )
                })
                .collect();
            area.draw(&Polygon::new(pts, fill))
        }
        Marker::Cross => area
            .draw(&PathElement::new(
                vec![(x - s, y - s), (x + s, y + s)],
                stroke,
            ))
            .and_then(|_| {
                area.draw(&PathElement::new(
                    vec![(x - s, y + s), (x + s, y - s)],
                    stroke,
                ))
            }),
        Marker::Plus => area
            .draw(&PathElement::new(
                vec![(x - s - 1, y), (x + s + 1, y)],
                stroke,
            ))
            .and_then(|_| {
                area.draw(&PathElement::new(
                    vec![(x, y - s - 1), (x, y + s + 1)],
                    stroke,
                ))
            }),
    };
    res.map_err(|e| e.to_string())
}

/// Approximate pixel box of a point label (15 px sans-serif).
#[derive(Debug, Clone, Copy, PartialEq)]
struct LabelBox {
    x0: i32,
    y0: i32,
    x1: i32,
    y1: i32,
}

impl LabelBox {
    fn new(x0: i32, y0: i32, text: &str) -> Self {
        let w = 8 * text.chars().count() as i32;
        LabelBox {
            x0,
            y0,
            x1: x0 + w,
            y1: y0 + 17,
        }
    }

    fn overlaps(&self, o: &LabelBox) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }
}

/// Axis ranges with some padding: x is logarithmic, so it is padded by a factor.
fn ranges(points: &[(f64, f64)]) -> ((f64, f64), (f64, f64)) {
    let (mut xlo, mut xhi) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut ylo, mut yhi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in points {
        xlo = xlo.min(x);
        xhi = xhi.max(x);
        ylo = ylo.min(y);
        yhi = yhi.max(y);
    }
    let pad = ((yhi - ylo) * 0.08).max(0.25);
    ((xlo / 1.35, xhi * 1.35), (ylo - pad, yhi + 1.5 * pad))
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, fig: &FigureData) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let body = root
        .titled(&fig.title, (FONT, 30).into_font().style(FontStyle::Bold))
        .map_err(e)?;
    let (w, _) = body.dim_in_pixel();
    let (plot_area, legend_area) = body.split_horizontally(w.saturating_sub(LEGEND_W));

    let points = fig.all_points();
    let labels = fig.labels();
    let ((xlo, xhi), (ylo, yhi)) = ranges(&points);
    let mut chart = ChartBuilder::on(&plot_area)
        .margin_left(10)
        .margin_right(20)
        .margin_top(10)
        .margin_bottom(10)
        .x_label_area_size(70)
        .y_label_area_size(90)
        .build_cartesian_2d(
            (xlo..xhi)
                .log_scale()
                .with_key_points(ratio_ticks(xlo, xhi)),
            ylo..yhi,
        )
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("Compression ratio (×, log scale)")
        .y_desc("Top-1 accuracy (%)")
        .label_style((FONT, 18))
        .axis_desc_style((FONT, 22))
        .x_label_formatter(&|x| ratio_tick(*x))
        .y_label_formatter(&|y| format!("{y:.1}"))
        .max_light_lines(4)
        .light_line_style(RGBColor(240, 240, 240))
        .bold_line_style(RGBColor(205, 205, 205))
        .draw()
        .map_err(e)?;

    // Pareto front: step line under the markers, labels next to the front points.
    let front = pareto_front(&points);
    let line = step_line(&points, &front);
    let has_line = line.len() > 1;
    if has_line {
        chart
            .draw_series(LineSeries::new(line, FRONT_COLOR.stroke_width(2)))
            .map_err(e)?;
    }
    // Labels that would overlap an earlier one are skipped (greedy, left to right).
    let mut taken: Vec<LabelBox> = Vec::new();
    for &i in &front {
        let label = labels[i];
        if label == "-" || label.is_empty() {
            continue;
        }
        let text = truncate(label, 20);
        let (px, py) = chart.backend_coord(&points[i]);
        let bbox = LabelBox::new(px + 9, py - 24, &text);
        if taken.iter().any(|t| t.overlaps(&bbox)) {
            continue;
        }
        root.draw(&Text::new(
            text,
            (bbox.x0, bbox.y0),
            (FONT, 15).into_font().color(&FRONT_COLOR),
        ))
        .map_err(e)?;
        taken.push(bbox);
    }
    for m in &fig.series {
        for p in &m.points {
            let c = chart.backend_coord(&(p.0, p.1));
            draw_marker(root, m.marker, c, 6, m.color)?;
        }
    }

    // Legend, outside the plot so that it never hides a point.
    let (_, lh) = legend_area.dim_in_pixel();
    let row = 30;
    let top = 40;
    legend_area
        .draw(&Text::new(
            "Method",
            (12, top - 28),
            (FONT, 20).into_font().style(FontStyle::Bold),
        ))
        .map_err(e)?;
    let mut y = top;
    for m in &fig.series {
        if y + row > lh as i32 {
            break;
        }
        draw_marker(&legend_area, m.marker, (24, y + 10), 6, m.color)?;
        legend_area
            .draw(&Text::new(truncate(&m.method, 18), (44, y), (FONT, 18)))
            .map_err(e)?;
        y += row;
    }
    if y + row <= lh as i32 && has_line {
        legend_area
            .draw(&PathElement::new(
                vec![(12, y + 10), (36, y + 10)],
                FRONT_COLOR.stroke_width(2),
            ))
            .map_err(e)?;
        legend_area
            .draw(&Text::new("Pareto front", (44, y), (FONT, 18)))
            .map_err(e)?;
    }
    Ok(())
}

/// Something this module draws: onto any plotters backend, so one drawing gives both
/// the PNG and the SVG.
pub(crate) trait Drawable {
    /// Draws the whole figure onto `root`.
    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

impl Drawable for FigureData {
    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        draw(root, self)
    }
}

impl Drawable for wb_core::Figure {
    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        draw_view(root, self)
    }
}

/// An axis label without a spurious `.0` on whole numbers.
fn tick(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A padded range of `v` (`0..1` when empty).
fn padded(v: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = v.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo { (hi - lo) * 0.08 } else { 0.5 };
    (lo - pad, hi + pad)
}

/// A method view's figure: linear axes, each series in the palette's colour and marker
/// (joined by a line where asked), an optional dashed reference line, and the legend
/// beside the plot as in the accuracy figures.
fn draw_view<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &wb_core::Figure,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let body = root
        .titled(&fig.title, (FONT, 26).into_font().style(FontStyle::Bold))
        .map_err(e)?;
    let (w, _) = body.dim_in_pixel();
    let (plot_area, legend_area) = body.split_horizontally(w.saturating_sub(LEGEND_W));
    let all = || fig.series.iter().flat_map(|s| s.points.iter().copied());
    let (xlo, xhi) = padded(all().map(|p| p.0));
    let (ylo, yhi) = padded(all().map(|p| p.1).chain(fig.hline));
    let mut chart = ChartBuilder::on(&plot_area)
        .margin(10)
        .margin_right(20)
        .x_label_area_size(70)
        .y_label_area_size(90)
        .build_cartesian_2d(xlo..xhi, ylo..yhi)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(fig.x_desc.as_str())
        .y_desc(fig.y_desc.as_str())
        .label_style((FONT, 18))
        .axis_desc_style((FONT, 22))
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .max_light_lines(4)
        .light_line_style(RGBColor(240, 240, 240))
        .bold_line_style(RGBColor(205, 205, 205))
        .draw()
        .map_err(e)?;
    if let Some(h) = fig.hline {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(xlo, h), (xhi, h)],
                6,
                4,
                FRONT_COLOR.stroke_width(1),
            ))
            .map_err(e)?;
    }
    let style = |i: usize| (PALETTE[i % PALETTE.len()], MARKERS[i % MARKERS.len()]);
    for (i, s) in fig.series.iter().enumerate() {
        let (color, marker) = style(i);
        if s.joined {
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(e)?;
        }
        for p in &s.points {
            draw_marker(root, marker, chart.backend_coord(p), 6, color)?;
        }
    }
    let (_, lh) = legend_area.dim_in_pixel();
    let (row, mut y) = (30, 12);
    for (i, s) in fig.series.iter().enumerate() {
        if y + row > lh as i32 {
            break;
        }
        let (color, marker) = style(i);
        draw_marker(&legend_area, marker, (24, y + 10), 6, color)?;
        legend_area
            .draw(&Text::new(truncate(&s.label, 24), (40, y + 2), (FONT, 15)))
            .map_err(e)?;
        y += row;
    }
    Ok(())
}

/// Write `fig` as PNG at `png` and as SVG at `svg`, each atomically.
pub(crate) fn write_figure(fig: &impl Drawable, png: &Path, svg: &Path) -> Result<(), ReportError> {
    let plot_err = |path: &Path, message: String| ReportError::Plot {
        path: path.to_path_buf(),
        message,
    };
    // PNG: the bitmap backend picks the encoder from the extension, so the
    // temporary keeps `.png` last.
    let drawn = wb_core::io::atomic_write_with(png, true, |tmp| {
        let root = BitMapBackend::new(tmp, FIG_SIZE).into_drawing_area();
        fig.draw_on(&root)?;
        root.present().map_err(|e| e.to_string())
    });
    drawn.map_err(|e| plot_err(png, e.to_string()))?;

    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, FIG_SIZE).into_drawing_area();
        fig.draw_on(&root).map_err(|m| plot_err(svg, m))?;
        root.present().map_err(|e| plot_err(svg, e.to_string()))?;
    }
    write_atomic(svg, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks() {
        assert_eq!(ratio_tick(1.0), "1×");
        assert_eq!(ratio_tick(2.5), "2.5×");
        assert_eq!(ratio_tick(16.0), "16×");
        assert_eq!(ratio_tick(0.8), "0.8×");
    }

    #[test]
    fn tick_positions() {
        assert_eq!(ratio_ticks(0.74, 21.6), vec![1.0, 2.0, 4.0, 8.0, 16.0]);
        assert_eq!(ratio_ticks(0.5, 2.0), vec![0.5, 1.0, 2.0]);
        let t = ratio_ticks(0.74, 1.35);
        assert_eq!(t.len(), 5);
        assert!(t.windows(2).all(|w| w[0] < w[1]) && t[0] > 0.74 && t[4] < 1.35);
    }

    #[test]
    fn label_boxes() {
        let a = LabelBox::new(0, 0, "k=16");
        assert!(a.overlaps(&LabelBox::new(20, 5, "k=4")));
        assert!(!a.overlaps(&LabelBox::new(40, 0, "k=4")));
        assert!(!a.overlaps(&LabelBox::new(0, 20, "k=4")));
    }

    #[test]
    fn truncation() {
        assert_eq!(truncate("kmeans", 18), "kmeans");
        assert_eq!(truncate("abcdefghij", 5), "abcd…");
    }

    #[test]
    fn ranges_are_padded() {
        let ((xlo, xhi), (ylo, yhi)) = ranges(&[(1.0, 76.0), (16.0, 70.0)]);
        assert!(xlo < 1.0 && xhi > 16.0);
        assert!(ylo < 70.0 && yhi > 76.0);
        // A single point still gives a non-empty range.
        let ((xlo, xhi), (ylo, yhi)) = ranges(&[(1.0, 76.0)]);
        assert!(xlo < xhi && ylo < yhi);
    }
}
