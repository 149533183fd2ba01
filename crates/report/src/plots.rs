//! Drawing, and nothing else: line plots of per-epoch series, the label-efficiency plot, the
//! feature-space scatter and the grid of image rows, each as a PNG written atomically. Text is
//! drawn with an embedded DejaVu Sans, so no system fonts are needed.

use std::path::Path;
use std::sync::Once;

use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use tch::{Kind, Tensor};

use train::run_dir::atomic::atomic;
use train::{error::Result, error::TrainError};

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded font is valid; a failure would only lose text, never the picture.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn draw_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::file(path, format!("cannot draw: {e}"))
}

fn save_rgb(path: &Path, w: u32, h: u32, rgb: Vec<u8>) -> Result<()> {
    let img = image::RgbImage::from_raw(w, h, rgb).expect("buffer is w * h * 3");
    atomic(path, |tmp| {
        img.save_with_format(tmp, image::ImageFormat::Png)
            .map_err(|e| TrainError::file(tmp, format!("cannot write PNG: {e}")))
    })
}

/// Where a plot's legend goes: away from the curves (accuracy rises, loss falls), or, for many
/// series (a comparison of runs), under the chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Legend {
    LowerRight,
    UpperRight,
    /// Under the chart, one line per series; the picture grows to hold them.
    Below,
}

/// Height of one series' line in a [`Legend::Below`] legend.
const LEGEND_ROW: u32 = 22;

/// A line plot of per-epoch `series` (name, values for epochs 1..), titled, with labeled axes
/// and a legend, as a PNG. Series take `tab10`'s colours in turn; from the eleventh on, the
/// colours repeat with dashed lines (solid again from the twenty-first).
pub fn line_plot(
    path: &Path,
    title: &str,
    y_label: &str,
    legend: Legend,
    series: &[(&str, Vec<f64>)],
) -> Result<()> {
    register_font();
    let chart_h = 560u32;
    let legend_h = match legend {
        Legend::Below => LEGEND_ROW * series.len() as u32 + 20,
        Legend::LowerRight | Legend::UpperRight => 0,
    };
    let (w, h) = (900u32, chart_h + legend_h);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let finite = || {
        series
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .filter(|v| v.is_finite())
    };
    let (lo, hi) = finite().fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo > hi { (0.0, 1.0) } else { (lo, hi) };
    let pad = ((hi - lo) * 0.08).max(1e-3);
    let epochs = series
        .iter()
        .map(|(_, v)| v.len())
        .max()
        .unwrap_or(1)
        .max(2) as f64;
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(path, e))?;
        let (chart_area, legend_area) = if legend_h > 0 {
            let (upper, lower) = root.split_vertically(chart_h);
            (upper, Some(lower))
        } else {
            (root.clone(), None)
        };
        let mut chart = ChartBuilder::on(&chart_area)
            .caption(title, ("sans-serif", 26))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(1.0..epochs, (lo - pad)..(hi + pad))
            .map_err(|e| draw_err(path, e))?;
        chart
            .configure_mesh()
            .x_desc("epochs")
            // One label per epoch (at most 20), so short runs do not repeat rounded labels.
            .x_labels((epochs as usize).min(20))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc(y_label)
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 18))
            .draw()
            .map_err(|e| draw_err(path, e))?;
        let lines = epoch_points(series);
        let position = match legend {
            Legend::LowerRight => Some(SeriesLabelPosition::LowerRight),
            Legend::UpperRight => Some(SeriesLabelPosition::UpperRight),
            Legend::Below => None,
        };
        draw_lines(&mut chart, path, &lines, &CLASS_COLORS, 3, position)?;
        if let Some(area) = legend_area {
            let names: Vec<&str> = series.iter().map(|(name, _)| *name).collect();
            legend_below(&area, path, &names, &CLASS_COLORS)?;
        }
        root.present().map_err(|e| draw_err(path, e))?;
    }
    save_rgb(path, w, h, buf)
}

/// Each series' values as `(epoch, value)` points, epochs from 1.
fn epoch_points<'a>(series: &[(&'a str, Vec<f64>)]) -> Vec<(&'a str, Vec<(f64, f64)>)> {
    series
        .iter()
        .map(|(name, values)| {
            let points = values
                .iter()
                .enumerate()
                .map(|(e, v)| ((e + 1) as f64, *v))
                .collect();
            (*name, points)
        })
        .collect()
}

/// The colour of series `i` among `colors`, and whether its line is dashed: the colours in
/// turn, dashed on every other round (series 11 to 20 of ten colours).
fn line_style(i: usize, colors: &[RGBColor]) -> (RGBColor, bool) {
    (colors[i % colors.len()], (i / colors.len()) % 2 == 1)
}

/// Draws each `(name, points)` of `series` as a line with dots (radius `dot`) in `colors` (in
/// turn, see [`line_style`]), skipping points that are not finite or not on the axes, and the
/// legend at `position` (none without one).
fn draw_lines<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    path: &Path,
    series: &[(&str, Vec<(f64, f64)>)],
    colors: &[RGBColor],
    dot: i32,
    position: Option<SeriesLabelPosition>,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (i, (name, points)) in series.iter().enumerate() {
        let (color, dashed) = line_style(i, colors);
        let range = chart.x_range();
        let points: Vec<(f64, f64)> = points
            .iter()
            .copied()
            .filter(|p| p.1.is_finite() && p.0 >= range.start && p.0 <= range.end)
            .collect();
        let drawn = if dashed {
            chart.draw_series(DashedLineSeries::new(
                points.clone(),
                10,
                6,
                color.stroke_width(3),
            ))
        } else {
            chart.draw_series(LineSeries::new(points.clone(), color.stroke_width(3)))
        };
        let anno = drawn.map_err(|e| draw_err(path, e))?.label(*name);
        let style = color.stroke_width(3);
        if dashed {
            anno.legend(move |(x, y)| {
                DashedPathElement::new(vec![(x, y), (x + 24, y)], 9, 6, style)
            });
        } else {
            anno.legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        }
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, dot, color.filled())),
            )
            .map_err(|e| draw_err(path, e))?;
    }
    if let Some(position) = position {
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 16))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(position)
            .draw()
            .map_err(|e| draw_err(path, e))?;
    }
    Ok(())
}

/// The [`Legend::Below`] legend in `area`: one line per name, its sample in the style
/// [`draw_lines`] gave it, aligned with the chart's left edge.
fn legend_below<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    path: &Path,
    names: &[&str],
    colors: &[RGBColor],
) -> Result<()> {
    let font = ("sans-serif", 16)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (i, name) in names.iter().enumerate() {
        let (color, dashed) = line_style(i, colors);
        let y = 10 + (i as u32 * LEGEND_ROW + LEGEND_ROW / 2) as i32;
        let (sample, style) = (vec![(90, y), (114, y)], color.stroke_width(3));
        let drawn = if dashed {
            area.draw(&DashedPathElement::new(sample, 9, 6, style))
        } else {
            area.draw(&PathElement::new(sample, style))
        };
        drawn.map_err(|e| draw_err(path, e))?;
        area.draw(&Text::new(name.to_string(), (124, y), font.clone()))
            .map_err(|e| draw_err(path, e))?;
    }
    Ok(())
}

/// Accuracy against labels per class on a logarithmic axis, one line per method (`series`:
/// name, `(labels per class, accuracy)` points), as a PNG.
pub fn efficiency_plot(path: &Path, title: &str, series: &[(&str, Vec<(f64, f64)>)]) -> Result<()> {
    register_font();
    let (w, h) = (900u32, 560u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let all = || series.iter().flat_map(|(_, p)| p.iter().copied());
    let (x0, x1) = all()
        .map(|p| p.0)
        .filter(|x| x.is_finite() && *x > 0.0)
        .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let (x0, x1) = if x0 > x1 { (1.0, 10.0) } else { (x0, x1) };
    let (x0, x1) = (x0 / 1.25, (x1 * 1.25).max(x0 * 2.0));
    let (lo, hi) = all()
        .map(|p| p.1)
        .filter(|v| v.is_finite())
        .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo > hi { (0.0, 1.0) } else { (lo, hi) };
    let pad = ((hi - lo) * 0.08).max(1e-3);
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(path, e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 26))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d((x0..x1).log_scale(), (lo - pad)..(hi + pad))
            .map_err(|e| draw_err(path, e))?;
        chart
            .configure_mesh()
            .x_desc("labels per class (log scale)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc("test accuracy")
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 18))
            .draw()
            .map_err(|e| draw_err(path, e))?;
        draw_lines(
            &mut chart,
            path,
            series,
            &CLASS_COLORS,
            4,
            Some(SeriesLabelPosition::LowerRight),
        )?;
        root.present().map_err(|e| draw_err(path, e))?;
    }
    save_rgb(path, w, h, buf)
}

/// Matplotlib's `tab10`, one colour per class (repeating after ten).
const CLASS_COLORS: [RGBColor; 10] = [
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

/// A scatter plot of `points`, each coloured by its class in `labels`, with a legend of
/// `class_names` on the right, as a PNG.
pub fn scatter_plot(
    path: &Path,
    title: &str,
    (x_label, y_label): (&str, &str),
    points: &[(f64, f64)],
    labels: &[usize],
    class_names: &[String],
) -> Result<()> {
    register_font();
    let (w, h) = (1000u32, 760u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let range = |f: fn(&(f64, f64)) -> f64| {
        let (lo, hi) = points
            .iter()
            .map(f)
            .filter(|v| v.is_finite())
            .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
        let (lo, hi) = if lo > hi { (-1.0, 1.0) } else { (lo, hi) };
        let pad = ((hi - lo) * 0.05).max(1e-6);
        (lo - pad)..(hi + pad)
    };
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(path, e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 26))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(range(|p| p.0), range(|p| p.1))
            .map_err(|e| draw_err(path, e))?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 18))
            .draw()
            .map_err(|e| draw_err(path, e))?;
        for (class, name) in class_names.iter().enumerate() {
            let color = CLASS_COLORS[class % CLASS_COLORS.len()];
            let mine = points
                .iter()
                .zip(labels)
                .filter(|(p, l)| **l == class && p.0.is_finite() && p.1.is_finite())
                .map(|(p, _)| Circle::new(*p, 2, color.mix(0.7).filled()));
            chart
                .draw_series(mine)
                .map_err(|e| draw_err(path, e))?
                .label(name.as_str())
                .legend(move |(x, y)| Circle::new((x + 8, y), 5, color.filled()));
        }
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| draw_err(path, e))?;
        root.present().map_err(|e| draw_err(path, e))?;
    }
    save_rgb(path, w, h, buf)
}

/// The seed's figure: one titled row per `(title, images)`, images float `[N,3,S,S]` in [0, 1],
/// small images scaled up (nearest neighbour) to at least 96 pixels.
pub fn image_grid(path: &Path, rows: &[(&str, Tensor)]) -> Result<()> {
    register_font();
    // As wide as the longest row; shorter rows leave blank tiles.
    let (n, s) = match rows.first() {
        Some((_, t)) => (
            rows.iter().map(|(_, r)| r.size()[0]).max().unwrap_or(0) as u32,
            t.size()[2] as u32,
        ),
        None => return Err(TrainError::file(path, "no rows to draw")),
    };
    let scale = 96u32.div_ceil(s.max(1)).max(1);
    let tile = s * scale;
    let (pad, title_h) = (8u32, 30u32);
    // The bitmap backend indexes with u32; refuse what it cannot address.
    let w = u64::from(pad) + u64::from(n) * u64::from(tile + pad);
    let h = rows.len() as u64 * u64::from(title_h + tile + pad) + u64::from(pad);
    if w * h * 3 > u64::from(u32::MAX) {
        return Err(TrainError::file(
            path,
            format!("a {w} x {h} picture is too large"),
        ));
    }
    let (w, h) = (w as u32, h as u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        for (r, (title, _)) in rows.iter().enumerate() {
            let y = pad as i32 + r as i32 * (title_h + tile + pad) as i32;
            root.draw(&Text::new(
                title.to_string(),
                (pad as i32, y + 4),
                ("sans-serif", 20).into_font().color(&BLACK),
            ))
            .map_err(|e| draw_err(path, e))?;
        }
        root.present().map_err(|e| draw_err(path, e))?;
    }
    for (r, (_, images)) in rows.iter().enumerate() {
        // [N, S, S, 3] bytes.
        let bytes = (images.to_device(tch::Device::Cpu).clamp(0.0, 1.0) * 255.0)
            .round()
            .to_kind(Kind::Uint8)
            .permute([0, 2, 3, 1])
            .contiguous();
        let bytes: Vec<u8> = Vec::try_from(bytes.flatten(0, -1)).map_err(|e| draw_err(path, e))?;
        let top = pad + r as u32 * (title_h + tile + pad) + title_h;
        for i in 0..n.min(images.size()[0] as u32) {
            let left = pad + i * (tile + pad);
            for y in 0..tile {
                for x in 0..tile {
                    let src = (((i * s + y / scale) * s + x / scale) * 3) as usize;
                    let dst = (((top + y) * w + left + x) * 3) as usize;
                    buf[dst..dst + 3].copy_from_slice(&bytes[src..src + 3]);
                }
            }
        }
    }
    save_rgb(path, w, h, buf)
}
