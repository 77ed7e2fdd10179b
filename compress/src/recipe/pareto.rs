//! Which steps of a recipe are worth keeping: the Pareto front over metric, tract latency and
//! size, and the best point that meets the speed and size targets. When a target is out of
//! reach, the report names these instead of only saying "missed".

use crate::recipe::plot::Point;

/// The points no other point beats: none is at least as good in metric, latency and bytes and
/// better in one. In the order given.
pub fn front(points: &[Point]) -> Vec<&Point> {
    let beats = |a: &Point, b: &Point| {
        a.metric >= b.metric
            && a.latency_ms <= b.latency_ms
            && a.bytes <= b.bytes
            && (a.metric > b.metric || a.latency_ms < b.latency_ms || a.bytes < b.bytes)
    };
    points
        .iter()
        .filter(|p| !points.iter().any(|q| beats(q, p)))
        .collect()
}

/// The report's lines: the front; of the points that pass `meets` (the speed and size targets,
/// described by `targets`) the one with the best metric, or that none passes; and, as the reason
/// a metric target is missed, the front's points with a better metric, which all miss `targets`.
/// `metric` formats a point's metric.
pub fn markdown(
    points: &[Point],
    targets: &str,
    meets: impl Fn(&Point) -> bool,
    metric: impl Fn(f64) -> String,
) -> String {
    let front = front(points);
    let names: Vec<&str> = front.iter().map(|p| p.name).collect();
    let mut out = format!(
        "- Pareto front (no other step at once as good, as fast in tract and as small): {}\n",
        names.join(", ")
    );
    let describe = |p: &Point| {
        format!(
            "{} ({}, {:.2} ms, {} bytes)",
            p.name,
            metric(p.metric),
            p.latency_ms,
            p.bytes
        )
    };
    let Some(best) = points
        .iter()
        .filter(|p| meets(p))
        .max_by(|a, b| a.metric.total_cmp(&b.metric))
    else {
        out.push_str(&format!("- no step meets {targets}\n"));
        return out;
    };
    out.push_str(&format!(
        "- best step meeting {targets}: {}\n",
        describe(best)
    ));
    let better: Vec<String> = front
        .iter()
        .filter(|p| p.metric > best.metric)
        .map(|p| describe(p))
        .collect();
    if !better.is_empty() {
        out.push_str(&format!(
            "- every step with a better metric misses {targets}: {}\n",
            better.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(name: &'static str, latency_ms: f64, bytes: u64, metric: f64) -> Point {
        Point {
            name,
            latency_ms,
            bytes,
            metric,
        }
    }

    #[test]
    fn front_drops_points_beaten_on_every_axis() {
        let points = [
            point("teacher", 10.0, 90, 0.85),
            point("prune", 2.0, 50, 0.60),
            point("vocabulary", 2.0, 30, 0.60),
            point("distill", 2.0, 30, 0.82),
            point("quantize", 2.1, 9, 0.82),
        ];
        let names: Vec<_> = front(&points).iter().map(|p| p.name).collect();
        assert_eq!(names, ["teacher", "distill", "quantize"]);
    }

    #[test]
    fn equal_points_both_stay() {
        let points = [point("a", 1.0, 1, 0.5), point("b", 1.0, 1, 0.5)];
        assert_eq!(front(&points).len(), 2);
    }

    #[test]
    fn markdown_names_the_best_step_within_the_targets() {
        let points = [
            point("teacher", 10.0, 90, 0.85),
            point("distill", 2.0, 30, 0.83),
            point("quantize", 2.1, 9, 0.82),
        ];
        let text = markdown(
            &points,
            "the speed and size targets",
            |p| p.latency_ms <= 3.0 && p.bytes <= 9,
            |m| format!("{:.2} %", m * 100.0),
        );
        assert!(text.contains("front (no other step at once as good, as fast in tract and as small): teacher, distill, quantize"), "{text}");
        assert!(
            text.contains(
                "best step meeting the speed and size targets: quantize (82.00 %, 2.10 ms, 9 bytes)"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "every step with a better metric misses the speed and size targets: \
                 teacher (85.00 %, 10.00 ms, 90 bytes), distill (83.00 %, 2.00 ms, 30 bytes)"
            ),
            "{text}"
        );
        let none = markdown(&points, "the speed target", |_| false, |m| m.to_string());
        assert!(none.contains("- no step meets the speed target"), "{none}");
        assert!(!none.contains("every step"), "{none}");
        let all = markdown(&points, "no target", |_| true, |m| m.to_string());
        assert!(
            all.contains("best step meeting no target: teacher"),
            "{all}"
        );
        assert!(!all.contains("every step"), "{all}");
    }
}
