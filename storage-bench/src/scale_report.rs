//! The scale run's verdicts, as Markdown (`scale.md` beside `scale.json`): for each curve
//! whose operation the design promises does not grow with the axis (a key's get and set, a
//! `keys` pattern's 100 matches, a `clear` of the namespace beside, a list's append, tail and
//! head trim), the first and last point and whether the last is within 1.5× of the first;
//! the value-size axis against the raw driver; the concurrency axis's peak and tail. Not the
//! measuring (`scale.rs`) nor the plots (`scale_plot.rs`).

use crate::scale::Curve;
use std::fmt::Write;

/// How far a flat curve may move from its first point to its last.
const FLAT: f64 = 1.5;

/// Operations whose cost the design promises does not depend on the axis.
fn promised_flat(axis: &str, op: &str) -> bool {
    matches!(
        (axis, op),
        ("namespace", "get" | "set" | "keys" | "clear")
            | ("list_length", "append" | "tail50" | "trim_head")
    )
}

fn human(x: f64) -> String {
    match x {
        x if x >= 1e6 => format!("{}M", x / 1e6),
        x if x >= 1e3 => format!("{}k", x / 1e3),
        x => format!("{x}"),
    }
}

fn bytes(x: f64) -> String {
    match x {
        x if x >= 1_048_576.0 => format!("{} MiB", x / 1_048_576.0),
        x if x >= 1024.0 => format!("{} KiB", x / 1024.0),
        x => format!("{x} B"),
    }
}

/// The Markdown tables of `curves`.
pub fn markdown(curves: &[Curve]) -> String {
    let mut md = String::new();
    md.push_str("| backend | axis | operation | first | last | last ÷ first | verdict |\n");
    md.push_str("|---|---|---|---|---|---|---|\n");
    for c in curves.iter().filter(|c| promised_flat(c.axis, c.op)) {
        let (Some(first), Some(last)) = (c.points.first(), c.points.last()) else {
            continue;
        };
        let ratio = last.2 / first.2;
        let verdict = if ratio > FLAT {
            format!("faster {ratio:.1}× (no growth)")
        } else if ratio >= 1.0 / FLAT {
            "flat (within 1.5×)".to_string()
        } else {
            format!("**slows {:.1}×**", 1.0 / ratio)
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} ops/s at {} | {:.0} ops/s at {} | {:.2} | {verdict} |",
            c.backend,
            c.axis,
            c.op,
            first.2,
            human(first.0),
            last.2,
            human(last.0),
            ratio
        );
    }
    md.push_str("\n| backend | value size | get MB/s | raw get MB/s | ratio | set MB/s | raw set MB/s | ratio |\n");
    md.push_str("|---|---|---|---|---|---|---|---|\n");
    let find = |backend: &str, axis: &str, op: &str| {
        curves
            .iter()
            .find(|c| c.backend == backend && c.axis == axis && c.op == op)
    };
    let mut backends: Vec<&str> = curves.iter().map(|c| c.backend.as_str()).collect();
    backends.dedup();
    for b in &backends {
        let lines = ["get", "raw get", "set", "raw set"].map(|op| find(b, "value_size", op));
        let [Some(get), Some(raw_get), Some(set), Some(raw_set)] = lines else {
            continue;
        };
        for i in 0..get.points.len() {
            let y = |c: &Curve| c.points.get(i).map_or(f64::NAN, |p| p.2);
            let _ = writeln!(
                md,
                "| {b} | {} | {:.1} | {:.1} | {:.2} | {:.1} | {:.1} | {:.2} |",
                bytes(get.points[i].0),
                y(get),
                y(raw_get),
                y(get) / y(raw_get),
                y(set),
                y(raw_set),
                y(set) / y(raw_set)
            );
        }
    }
    md.push_str("\n| backend | operation | 1 task | peak (tasks) | p99 at 1 task | p99 at the most tasks |\n");
    md.push_str("|---|---|---|---|---|---|\n");
    for b in &backends {
        for op in ["get", "set"] {
            let Some(c) = find(b, "concurrency", op) else {
                continue;
            };
            let (Some(first), Some(last)) = (c.points.first(), c.points.last()) else {
                continue;
            };
            let peak = c
                .points
                .iter()
                .max_by(|a, b| a.2.total_cmp(&b.2))
                .expect("a point");
            let _ = writeln!(
                md,
                "| {b} | {op} | {:.0} ops/s | {:.0} ops/s ({}) | {:.0} µs | {:.0} µs ({} tasks) |",
                first.2, peak.2, peak.0, first.1.p99_us, last.1.p99_us, last.0
            );
        }
    }
    md
}
