//! The recipe report's picture: the step's metric (held-out accuracy, mAP) against tract latency
//! and against file size, one point per step, as SVG.

use std::path::Path;

use plotters::prelude::*;

/// One step on the plot.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    /// The step's name.
    pub name: &'static str,
    /// tract latency, ms.
    pub latency_ms: f64,
    /// ONNX file size.
    pub bytes: u64,
    /// The metric, as a fraction.
    pub metric: f64,
}

/// Draws both panels into an SVG file at `path`, the metric in percent under `label`.
pub fn draw(steps: &[Point], label: &str, path: &Path) -> Result<(), String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (left, right) = root.split_horizontally(500);
        let point = |s: &Point, x: f64| (x, s.metric * 100.0, s.name);
        let latency: Vec<_> = steps.iter().map(|s| point(s, s.latency_ms)).collect();
        let size: Vec<_> = steps
            .iter()
            .map(|s| point(s, s.bytes as f64 / 1e6))
            .collect();
        let y = format!("{label}, %");
        panel(&left, "vs tract latency", "tract ms, batch 1", &y, &latency)?;
        panel(&right, "vs size", "ONNX file, MB", &y, &size)?;
        root.present().map_err(|e| e.to_string())?;
    }
    crate::write_atomic(path, svg.as_bytes()).map_err(|e| e.to_string())
}

fn panel(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    caption: &str,
    x_label: &str,
    y_label: &str,
    points: &[(f64, f64, &str)],
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let range = |values: Vec<f64>| {
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let pad = ((hi - lo) * 0.15).max(hi.abs() * 0.05).max(1e-3);
        (lo - pad)..(hi + pad)
    };
    let x = range(points.iter().map(|p| p.0).collect());
    let y = range(points.iter().map(|p| p.1).collect());
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(x.start.max(0.0)..x.end, y)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new(points.iter().map(|p| (p.0, p.1)), &BLUE))
        .map_err(|e| err(&e))?;
    chart
        .draw_series(points.iter().map(|&(x, y, name)| {
            EmptyElement::at((x, y))
                + Circle::new((0, 0), 4, BLUE.filled())
                + Text::new(name.to_owned(), (6, -16), ("sans-serif", 13))
        }))
        .map_err(|e| err(&e))?;
    Ok(())
}
