//! Draws the scale curves (`scale.rs`) as SVG files, one per backend and axis
//! (`<backend>-<axis>.svg`): both axes on a log scale, one line per operation, the caption
//! naming the machine, the date and the commit the figures came from. Not the measuring.

use crate::scale::Curve;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

const COLORS: [RGBColor; 6] = [
    BLUE,
    RED,
    GREEN,
    MAGENTA,
    RGBColor(230, 140, 0),
    RGBColor(0, 150, 150),
];

/// What each axis is, for its label.
fn axis_label(axis: &str) -> &'static str {
    match axis {
        "concurrency" => "tasks",
        "value_size" => "value bytes",
        "namespace" => "keys in the namespace",
        "list_length" => "items in the list",
        _ => "x",
    }
}

/// Draws every (backend, axis) of `curves` into `dir`; the files written.
pub fn draw(curves: &[Curve], dir: &Path, caption: &str) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut groups: Vec<(&str, &str)> = curves
        .iter()
        .map(|c| (c.backend.as_str(), c.axis))
        .collect();
    groups.dedup();
    let mut written = Vec::new();
    for (backend, axis) in groups {
        let lines: Vec<&Curve> = curves
            .iter()
            .filter(|c| c.backend == backend && c.axis == axis)
            .collect();
        let file = dir.join(format!("{}-{axis}.svg", backend.replace(' ', "-")));
        draw_one(&lines, &file, &format!("{backend}: {axis} ({caption})"))
            .map_err(|e| format!("{}: {e}", file.display()))?;
        written.push(file);
    }
    Ok(written)
}

fn draw_one(lines: &[&Curve], file: &Path, title: &str) -> Result<(), Box<dyn std::error::Error>> {
    let xs = lines.iter().flat_map(|c| c.points.iter().map(|p| p.0));
    let ys = lines.iter().flat_map(|c| c.points.iter().map(|p| p.2));
    let (x_min, x_max) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    let (y_min, y_max) = ys.fold((f64::MAX, 0.0f64), |(a, b), y| (a.min(y), b.max(y)));
    // A log scale for both: growth reads as a slope, and a slow operation's line (a `clear`)
    // is not pressed flat under a fast one's.
    let (y_min, y_max) = (y_min.max(1e-6) / 1.5, y_max.max(1e-6) * 1.5);
    let x_max = if x_max > x_min { x_max } else { x_min * 10.0 };
    let root = SVGBackend::new(file, (760, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 15))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((x_min..x_max).log_scale(), (y_min..y_max).log_scale())?;
    let unit = lines.first().map_or("", |c| c.unit);
    chart
        .configure_mesh()
        .x_desc(axis_label(lines.first().map_or("", |c| c.axis)))
        .y_desc(unit)
        .draw()?;
    for (i, curve) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<(f64, f64)> = curve.points.iter().map(|p| (p.0, p.2)).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(curve.op)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
