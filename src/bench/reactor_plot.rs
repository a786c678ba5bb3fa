//! `reactor.svg`: the classic select-vs-epoll plot, cost per delivered
//! event against registered sockets, both axes on a log scale. Drawn as
//! `compare/plot.rs` draws livelock.svg: plotters' SVG backend without the
//! `ttf` feature, so no font files are needed.

use plotters::prelude::*;

use super::reactor::Point;

const SIZE: (u32, u32) = (800, 540);
const FONT: &str = "sans-serif";
/// Okabe–Ito: vermillion for scan (user polling), blue for ready.
const SCAN: RGBColor = RGBColor(213, 94, 0);
const READY: RGBColor = RGBColor(0, 114, 178);

fn series(points: &[Point], backend: &str) -> Vec<(f64, f64)> {
    let mut v: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.backend == backend && p.ns_per_event > 0.0)
        .map(|p| (p.sockets as f64, p.ns_per_event))
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

/// How many sockets were ready per poll: `1% ready` or `K ready per poll`.
fn ready_label(points: &[Point]) -> String {
    let first = points.first().map_or(1, |p| p.ready_per_poll);
    if points
        .iter()
        .all(|p| p.ready_per_poll == super::reactor::ready_for(p.sockets))
    {
        format!("{}% ready", super::reactor::READY_PCT)
    } else if points.iter().all(|p| p.ready_per_poll == first) {
        format!("{first} ready per poll")
    } else {
        "ready per poll varies".to_string()
    }
}

/// The figure as SVG text.
pub fn reactor_svg(points: &[Point]) -> anyhow::Result<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let all: Vec<&Point> = points.iter().filter(|p| p.ns_per_event > 0.0).collect();
        let xs = || all.iter().map(|p| p.sockets as f64);
        let ys = || all.iter().map(|p| p.ns_per_event);
        let (Some(x0), Some(x1), Some(y0), Some(y1)) = (
            xs().reduce(f64::min),
            xs().reduce(f64::max),
            ys().reduce(f64::min),
            ys().reduce(f64::max),
        ) else {
            root.draw(&Text::new("no data", (40, 60), (FONT, 18)))?;
            root.present()?;
            drop(root);
            return Ok(buf);
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "Reactor: cost per delivered event vs registered sockets ({})",
                    ready_label(points)
                ),
                (FONT, 18),
            )
            .margin(14)
            .margin_right(28)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(
                (x0 / 1.5..x1 * 1.5).log_scale(),
                (y0 / 1.5..y1 * 1.5).log_scale(),
            )?;
        chart
            .configure_mesh()
            .x_desc("registered sockets (log scale)")
            .y_desc("ns per delivered event (log scale)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .bold_line_style(BLACK.mix(0.12))
            .light_line_style(BLACK.mix(0.04))
            .draw()?;
        for (name, label, c) in [
            ("scan", "scan (user polling, select/poll)", SCAN),
            ("ready", "ready (kernel polling, epoll/kqueue)", READY),
        ] {
            let pts = series(points, name);
            let line = c.stroke_width(2);
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), line))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], line));
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()?;
        root.present()?;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(backend: &'static str, n: usize, ns: f64) -> Point {
        Point {
            backend,
            sockets: n,
            ready_per_poll: (n / 100).max(1),
            polls: 1,
            events: 1,
            ns_per_event: ns,
            rearm_ns_per_event: 0.0,
            ns_per_call: 0.0,
            scanned_per_event: 1.0,
        }
    }

    #[test]
    fn svg_has_a_line_per_backend() {
        let pts: Vec<Point> = [10, 100, 1000, 10_000]
            .iter()
            .flat_map(|&n| [pt("ready", n, 50.0), pt("scan", n, n as f64)])
            .collect();
        let svg = reactor_svg(&pts).unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let lines = doc
            .descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .filter(|n| {
                n.attribute("points")
                    .is_some_and(|p| p.split_whitespace().count() == 4)
            })
            .count();
        assert_eq!(lines, 2);
        assert!(svg.contains("registered sockets (log scale)"));
        assert!(svg.contains("(1% ready)"));
        let fixed: Vec<Point> = [10, 1000]
            .iter()
            .map(|&n| Point {
                ready_per_poll: 1,
                ..pt("scan", n, 5.0)
            })
            .collect();
        assert!(reactor_svg(&fixed).unwrap().contains("(1 ready per poll)"));
        assert!(reactor_svg(&[]).unwrap().contains("no data"));
    }
}
