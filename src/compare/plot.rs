//! `livelock.svg`: the plot of a sweep, drawn with plotters' SVG backend.
//!
//! plotters is built without its `ttf` feature, so it uses its built-in
//! "naive" font metrics (an estimate from the character count) and the SVG
//! backend writes text as `<text>` elements the viewer renders with its own
//! fonts: no font files, fontconfig or freetype at build or run time.

use std::ops::Range;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::model::{Results, Run};
use super::output::human;
use super::summary::Labels;

/// Size of the whole figure, px.
const SIZE: (u32, u32) = (1800, 540);
/// Where panel (c) puts a probe point whose p99 is a timeout (more than 1 %
/// of the probes unanswered): the probe's timeout, ms.
const PROBE_TIMEOUT_MS: f64 = 1000.0;
/// Range of panel (c), log10 of ms: 10 µs to 10 s.
const RESPONSE_LOG_MS: Range<f64> = -2.0..4.0;
/// Font family of all text (resolved by the SVG viewer).
const FONT: &str = "sans-serif";
/// Okabe–Ito colour-blind-safe colours, one per mode in order.
const COLORS: [RGBColor; 7] = [
    RGBColor(213, 94, 0),
    RGBColor(0, 114, 178),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];
/// More modes than this are drawn as small multiples, a row per family.
const GROUP_ABOVE: usize = 4;
/// Height of one row of small multiples, px.
const ROW_HEIGHT: u32 = 400;
/// Panel (a)'s rate axis spans this many decades under the peak's; a
/// lower rate (0 when a mode livelocks) is drawn on the floor, labelled
/// `≤` its value.
const RATE_DECADES: f64 = 3.0;
/// Colour of the y = x reference line.
const REFERENCE: RGBColor = RGBColor(120, 120, 120);

/// The colour of the `i`-th mode.
fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// One mode's points, `(offered, value)` sorted by offered load, and the
/// error bars of those measured in trials, `(offered, min, value, max)`.
#[derive(Clone)]
struct Series {
    mode: String,
    points: Vec<(f64, f64)>,
    bars: Vec<(f64, f64, f64, f64)>,
}

/// Per series (a mode at a point of the other axes, named by `labels`) in
/// order of first appearance, the points `(offered, f(run))` that can be
/// drawn on a log axis (offered > 0, both finite), with the error bar
/// `range(run)` where there is one.
fn series(
    runs: &[Run],
    labels: &Labels,
    f: impl Fn(&Run) -> f64,
    range: impl Fn(&Run) -> Option<[f64; 2]>,
) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    for r in runs {
        let name = labels.of_run(r);
        let i = match out.iter().position(|s| s.mode == name) {
            Some(i) => i,
            None => {
                out.push(Series {
                    mode: name,
                    points: Vec::new(),
                    bars: Vec::new(),
                });
                out.len() - 1
            }
        };
        let (x, y) = (r.offered_pps, f(r));
        if x.is_finite() && x > 0.0 && y.is_finite() {
            out[i].points.push((x, y));
            if let Some([lo, hi]) = range(r).filter(|[lo, hi]| lo.is_finite() && hi.is_finite()) {
                out[i].bars.push((x, lo, y, hi));
            }
        }
    }
    for s in &mut out {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// Upper-left or upper-right for the legend: the side with fewer points in
/// the top 40 % of the panel.
fn legend_corner(all: &[Series], x: &Range<f64>, y: &Range<f64>) -> SeriesLabelPosition {
    let mid = (x.start.ln() + x.end.ln()) / 2.0;
    let high = y.start + 0.6 * (y.end - y.start);
    let (mut left, mut right) = (0, 0);
    for &(px, py) in all.iter().flat_map(|s| &s.points) {
        if py >= high {
            if px.ln() < mid { left += 1 } else { right += 1 }
        }
    }
    if left <= right {
        SeriesLabelPosition::UpperLeft
    } else {
        SeriesLabelPosition::UpperRight
    }
}

/// An axis tick label: [`human`] without a trailing `.0` (`10k`, `2.5k`).
fn tick(v: f64) -> String {
    let h = human(v);
    for (long, short) in [(".0k", "k"), (".00M", "M"), (".0", "")] {
        if let Some(stem) = h.strip_suffix(long) {
            return format!("{stem}{short}");
        }
    }
    h
}

/// The values `m × 10^k` for the given mantissas that fall in `x`.
fn decades(x: &Range<f64>, mantissas: &[f64]) -> Vec<f64> {
    let (lo, hi) = (x.start.log10().floor(), x.end.log10().ceil());
    if !(lo.is_finite() && hi.is_finite()) || hi - lo > 12.0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut e = lo;
    while e <= hi {
        for m in mantissas {
            let v = m * 10_f64.powf(e);
            if x.contains(&v) {
                out.push(v);
            }
        }
        e += 1.0;
    }
    out
}

/// Labelled ticks of a log axis: 1-2-5 per decade, or 1..9 when that
/// gives fewer than three, or else the ends of the range.
fn log_ticks(x: &Range<f64>) -> Vec<f64> {
    let ticks = decades(x, &[1.0, 2.0, 5.0]);
    if ticks.len() >= 3 {
        return ticks;
    }
    let ticks = log_ticks_dense(x);
    if ticks.len() >= 3 {
        ticks
    } else {
        vec![x.start, x.end]
    }
}

/// Grid lines of a log axis: 1..9 per decade.
fn log_ticks_dense(x: &Range<f64>) -> Vec<f64> {
    decades(x, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// The y axis of a panel: linear, or log10 values on a linear axis whose
/// bottom is a floor (labels in the values themselves).
#[derive(Clone, Copy, PartialEq, Eq)]
enum YScale {
    Linear,
    Log,
}

/// The label of a tick at `v` on a `scale` axis whose range starts at `floor`.
fn y_tick(scale: YScale, floor: f64, v: f64) -> String {
    match scale {
        YScale::Linear => tick(v),
        // Only whole decades are labelled (the mesh also lines halves).
        YScale::Log if (v - v.round()).abs() > 1e-6 => String::new(),
        YScale::Log if (v - floor).abs() < 1e-6 => format!("\u{2264}{}", decade(v)),
        YScale::Log => decade(v),
    }
}

/// The label of the whole decade `10^v`: `0.01`, `1`, `10k`.
fn decade(v: f64) -> String {
    let x = 10_f64.powf(v.round());
    if x < 1.0 {
        #[expect(clippy::cast_sign_loss, reason = "v < 0 here, so -v > 0")]
        let places = (-v.round()) as usize;
        format!("{x:.places$}")
    } else {
        tick(x)
    }
}

/// One panel: each mode's series as a line with markers over a log x axis.
/// With [`YScale::Log`] the series and `y` are log10 of the values.
#[expect(clippy::too_many_arguments, reason = "one call per panel kind")]
fn panel(
    area: &Area<'_>,
    caption: &str,
    y_desc: &str,
    x: Range<f64>,
    y: Range<f64>,
    scale: YScale,
    all: &[Series],
    diagonal: bool,
) -> anyhow::Result<()> {
    // Labels: 8 on a linear axis; on a log one, two per decade, of which
    // the whole decades are labelled.
    let labels = match scale {
        YScale::Linear => 8,
        #[expect(clippy::cast_sign_loss, reason = "clamped to be non-negative")]
        YScale::Log => (2.0 * (y.end - y.start)).max(0.0).ceil() as usize + 1,
    };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 17))
        .margin(12)
        .margin_right(24)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(
            x.clone()
                .log_scale()
                .with_key_points(log_ticks(&x))
                .with_light_points(log_ticks_dense(&x)),
            y.clone(),
        )?;
    let floor = y.start;
    chart
        .configure_mesh()
        .x_desc("offered load (frames/s, log scale)")
        .y_desc(y_desc)
        .y_labels(labels)
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| y_tick(scale, floor, *v))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(BLACK.mix(0.04))
        .draw()?;

    if diagonal {
        // y = x, clipped to the panel: straight when both axes are log
        // (sampled when only x is).
        let (ylo, yhi) = match scale {
            YScale::Linear => (y.start, y.end),
            YScale::Log => (10_f64.powf(y.start), 10_f64.powf(y.end)),
        };
        let (start, end) = (x.start.max(ylo), x.end.min(yhi));
        if end > start {
            let n = if scale == YScale::Log { 1 } else { 96_i32 };
            let (a, b) = (start.ln(), end.ln());
            let pts = (0..=n).map(|k| {
                let v = (a + (b - a) * f64::from(k) / f64::from(n)).exp();
                (v, if scale == YScale::Log { v.log10() } else { v })
            });
            chart
                .draw_series(DashedLineSeries::new(pts, 6, 5, REFERENCE.stroke_width(1)))?
                .label("y = x (no loss)")
                .legend(|(px, py)| {
                    let dash = |a: i32| {
                        PathElement::new(vec![(a, 0), (a + 5, 0)], REFERENCE.stroke_width(1))
                    };
                    EmptyElement::at((px, py)) + dash(0) + dash(8) + dash(16)
                });
        }
    }

    for (i, s) in all.iter().enumerate() {
        let c = color(i);
        let line = c.stroke_width(2);
        let fill = c.filled();
        let pts = || s.points.iter().copied();
        // Min-max over the trials, under the line and its markers.
        chart.draw_series(
            s.bars
                .iter()
                .map(|&(x, lo, y, hi)| ErrorBar::new_vertical(x, lo, y, hi, c.stroke_width(1), 8)),
        )?;
        let anno = chart
            .draw_series(LineSeries::new(pts(), line))?
            .label(s.mode.as_str());
        // Markers differ by mode as well as colours (circle, triangle, cross),
        // in the plot and in the legend sample.
        let sample = move |(px, py): (i32, i32)| {
            EmptyElement::at((px + 10, py)) + PathElement::new(vec![(-10, 0), (10, 0)], line)
        };
        match i % 3 {
            0 => {
                anno.legend(move |p| sample(p) + Circle::new((0, 0), 4, fill));
                chart.draw_series(pts().map(|p| Circle::new(p, 4, fill)))?;
            }
            1 => {
                anno.legend(move |p| sample(p) + TriangleMarker::new((0, 0), 5, fill));
                chart.draw_series(pts().map(|p| TriangleMarker::new(p, 5, fill)))?;
            }
            _ => {
                anno.legend(move |p| sample(p) + Cross::new((0, 0), 4, line));
                chart.draw_series(pts().map(|p| Cross::new(p, 4, line)))?;
            }
        }
    }

    chart
        .configure_series_labels()
        .position(legend_corner(all, &x, &y))
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .margin(10)
        .draw()?;
    Ok(())
}

/// The probe's p99 of a run, ms, a timeout counting as
/// [`PROBE_TIMEOUT_MS`]: when more than 1 % of the probes went unanswered,
/// the 99th percentile is a timeout.
fn probe_p99_ms(r: &Run) -> f64 {
    let p = &r.probe_ms;
    if p.sent == 0 {
        return f64::NAN;
    }
    if u64::from(p.timeouts) * 100 > u64::from(p.sent) {
        PROBE_TIMEOUT_MS
    } else {
        p.p99.unwrap_or(PROBE_TIMEOUT_MS)
    }
}

/// Panel (c): per mode, the HTTP probe's p99 latency (solid) and the
/// interactive process's p99 lateness (dashed), in the mode's colour, on a
/// log scale of ms (log10 values on a linear axis, labelled in ms).
fn responsiveness_panel(
    area: &Area<'_>,
    x: Range<f64>,
    runs: &[Run],
    labels: &Labels,
) -> anyhow::Result<()> {
    let lg = |v: f64| v.max(10f64.powf(RESPONSE_LOG_MS.start)).log10();
    let probe = series(runs, labels, |r| lg(probe_p99_ms(r)), |_| None);
    let late = series(
        runs,
        labels,
        |r| {
            r.interactive
                .as_ref()
                .and_then(|i| i.late_p99_ms)
                .map_or(f64::NAN, lg)
        },
        |_| None,
    );
    let mut chart = ChartBuilder::on(area)
        .caption("(c) responsiveness vs offered", (FONT, 17))
        .margin(12)
        .margin_right(24)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(
            x.clone()
                .log_scale()
                .with_key_points(log_ticks(&x))
                .with_light_points(log_ticks_dense(&x)),
            RESPONSE_LOG_MS,
        )?;
    chart
        .configure_mesh()
        .x_desc("offered load (frames/s, log scale)")
        .y_desc("p99, ms (log scale; probe timeout = 1000)")
        .y_labels(7)
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| y_tick(YScale::Log, RESPONSE_LOG_MS.start, *v))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(BLACK.mix(0.04))
        .draw()?;
    for (i, s) in probe.iter().enumerate() {
        let c = color(i);
        let line = c.stroke_width(2);
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), line))?
            .label(format!("{}: probe p99", s.mode))
            .legend(move |(px, py)| PathElement::new(vec![(px, py), (px + 20, py)], line));
        chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
    }
    for (i, s) in late.iter().enumerate() {
        let c = color(probe.iter().position(|p| p.mode == s.mode).unwrap_or(i));
        let line = c.stroke_width(2);
        chart
            .draw_series(DashedLineSeries::new(s.points.iter().copied(), 6, 4, line))?
            .label(format!("{}: interactive lateness p99", s.mode))
            .legend(move |(px, py)| {
                let dash = move |a: i32| PathElement::new(vec![(a, 0), (a + 6, 0)], line);
                EmptyElement::at((px, py)) + dash(0) + dash(12)
            });
        chart.draw_series(s.points.iter().map(|&p| Cross::new(p, 4, line)))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 12))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .margin(8)
        .draw()?;
    Ok(())
}

/// The sweep as an SVG figure with three panels over the offered load (log
/// scale): (a) the rate delivered to the app per mode, with the y = x line
/// of a loss-free system; (b) the user CPU share per mode; (c) how
/// responsive the machine stayed: the HTTP probe's p99 and the interactive
/// process's p99 lateness, per mode. One line with
/// markers per mode, in the same colour in both panels, and a legend in
/// each; the delivered rate of a point measured in trials has an error bar
/// from its lowest to its highest trial. The title says "(simulated)" when
/// the runs are. With more than four modes of several families, small
/// multiples: a row of the two panels per family (plain interrupts,
/// interrupts with moderation, polling, NAPI, Mogul & Ramakrishnan), on the
/// same axes, the colour-blind-safe palette restarting in each row.
pub fn livelock_svg(results: &Results) -> anyhow::Result<String> {
    let runs = &results.runs;
    let sim = if runs.is_empty() || !runs.iter().any(|r| r.simulated) {
        ""
    } else if runs.iter().all(|r| r.simulated) {
        " (simulated)"
    } else {
        " (partly simulated)"
    };
    let title = format!("Receive livelock: delivered rate and user CPU vs offered load{sim}");
    let labels = Labels::of_runs(runs);
    let delivered = series(
        runs,
        &labels,
        |r| r.delivered_pps,
        |r| r.spread.as_ref().map(|s| s.delivered_pps),
    );
    let user = series(runs, &labels, |r| r.cp_time_pct.user, |_| None);

    let groups = families(&delivered);
    let grouped = delivered.len() > GROUP_ABOVE && groups.len() > 1;
    let size = if grouped {
        (
            SIZE.0,
            50 + ROW_HEIGHT * u32::try_from(groups.len()).unwrap_or(1),
        )
    } else {
        SIZE
    };
    // A sweep over CPUs gets a row more: peak vs CPUs, load per queue.
    let cpus_row = super::plot_cpus::has_cpus_axis(results);
    let size = (size.0, size.1 + if cpus_row { ROW_HEIGHT } else { 0 });
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(&title, (FONT, 22))?;
        let (root, cpus_area) = if cpus_row {
            let h = root.dim_in_pixel().1.saturating_sub(ROW_HEIGHT);
            let (top, bottom) = root.split_vertically(h);
            (top, Some(bottom))
        } else {
            (root, None)
        };

        let xs = || delivered.iter().flat_map(|s| &s.points).map(|p| p.0);
        let (lo, hi) = (xs().reduce(f64::min), xs().reduce(f64::max));
        if let (Some(lo), Some(hi)) = (lo, hi) {
            // Pad the log axis by a fraction of a decade on each side.
            let x = lo / 1.25..hi * 1.25;
            let peak = delivered
                .iter()
                .flat_map(|s| {
                    s.points
                        .iter()
                        .map(|p| p.1)
                        .chain(s.bars.iter().map(|b| b.3))
                })
                .fold(0.0_f64, f64::max);
            // Log–log: rates as log10, floored RATE_DECADES under the peak's
            // decade, so a livelocked 0 sits on a labelled floor.
            let top = if peak > 0.0 {
                (peak * 1.12).log10()
            } else {
                1.0
            };
            let bottom = if peak > 0.0 {
                peak.log10().floor()
            } else {
                1.0
            } - RATE_DECADES;
            let y_rate = bottom..top;
            let lg = |v: f64| v.max(10_f64.powf(bottom)).log10();
            let delivered: Vec<Series> = delivered
                .iter()
                .map(|s| Series {
                    mode: s.mode.clone(),
                    points: s.points.iter().map(|&(o, v)| (o, lg(v))).collect(),
                    bars: s
                        .bars
                        .iter()
                        .map(|&(o, lo, v, hi)| (o, lg(lo), lg(v), lg(hi)))
                        .collect(),
                })
                .collect();
            if grouped {
                // Small multiples: one row per family, same axes in every
                // row, colours restart in each row.
                let rows = root.split_evenly((groups.len(), 1));
                for (row, (name, members)) in rows.iter().zip(&groups) {
                    let pick = |all: &[Series]| -> Vec<Series> {
                        all.iter()
                            .filter(|s| members.contains(&s.mode))
                            .map(Series::clone)
                            .collect()
                    };
                    let mine: Vec<Run> = runs
                        .iter()
                        .filter(|r| members.contains(&labels.of_run(r)))
                        .cloned()
                        .collect();
                    let cols = row.split_evenly((1, 3));
                    panel(
                        &cols[0],
                        &format!("{name}: delivered vs offered"),
                        "delivered to app (datagrams/s, log scale)",
                        x.clone(),
                        y_rate.clone(),
                        YScale::Log,
                        &pick(&delivered),
                        true,
                    )?;
                    panel(
                        &cols[1],
                        &format!("{name}: user CPU share"),
                        "user CPU share (%)",
                        x.clone(),
                        0.0..105.0,
                        YScale::Linear,
                        &pick(&user),
                        false,
                    )?;
                    responsiveness_panel(&cols[2], x.clone(), &mine, &labels)?;
                }
            } else {
                let cols = root.split_evenly((1, 3));
                let (left, right) = (&cols[0], &cols[1]);
                panel(
                    left,
                    "(a) delivered to the app vs offered",
                    "delivered to app (datagrams/s, log scale)",
                    x.clone(),
                    y_rate,
                    YScale::Log,
                    &delivered,
                    true,
                )?;
                panel(
                    right,
                    "(b) user CPU share vs offered",
                    "user CPU share (%)",
                    x.clone(),
                    0.0..105.0,
                    YScale::Linear,
                    &user,
                    false,
                )?;
                responsiveness_panel(&cols[2], x, runs, &labels)?;
            }
        } else {
            root.draw(&Text::new("no data", (40, 60), (FONT, 18)))?;
        }
        if let Some(area) = &cpus_area {
            super::plot_cpus::cpus_row(area, results, &color)?;
        }
        root.present()?;
    }
    Ok(buf)
}

/// The families of the modes (see `compare::modes::family`), in order of
/// first appearance, each with its modes.
fn families(all: &[Series]) -> Vec<(&'static str, Vec<String>)> {
    let mut out: Vec<(&'static str, Vec<String>)> = Vec::new();
    for s in all {
        let f = super::modes::family(&s.mode);
        match out.iter_mut().find(|(name, _)| *name == f) {
            Some((_, v)) => v.push(s.mode.clone()),
            None => out.push((f, vec![s.mode.clone()])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::output::tests::sample;

    #[test]
    fn svg_is_valid_with_a_series_per_mode() {
        let res = sample(true);
        let svg = livelock_svg(&res).unwrap();
        std::fs::write(std::env::temp_dir().join("livelock-example.svg"), &svg).unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        let texts: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .map(str::trim)
            .collect();
        assert!(texts.iter().any(|t| t.contains("(simulated)")));
        assert!(texts.contains(&"offered load (frames/s, log scale)"));
        assert!(texts.contains(&"delivered to app (datagrams/s, log scale)"));
        assert!(texts.contains(&"user CPU share (%)"));
        assert_eq!(texts.iter().filter(|t| **t == "y = x (no loss)").count(), 1);
        // One line per mode in each panel, in the mode's colour, and its legend entry.
        for (i, s) in res.summary.iter().enumerate() {
            let RGBColor(r, g, b) = color(i);
            let stroke = format!("#{r:02X}{g:02X}{b:02X}");
            let lines = doc
                .descendants()
                .filter(|n| n.has_tag_name("polyline"))
                .filter(|n| {
                    n.attribute("stroke")
                        .is_some_and(|c| c.eq_ignore_ascii_case(&stroke))
                })
                .filter(|n| {
                    n.attribute("points")
                        .is_some_and(|p| p.split_whitespace().count() == 6)
                })
                .count();
            // Delivered, user share, and the probe's p99 in panel (c) (the
            // interactive lateness there is dashed: no polyline).
            assert_eq!(lines, 3, "{}: {stroke}", s.mode);
            assert_eq!(
                texts.iter().filter(|t| **t == s.mode).count(),
                2,
                "{}",
                s.mode
            );
        }
    }

    #[test]
    fn the_identity_is_straight_and_zero_sits_on_a_labelled_floor() {
        let mut res = sample(true);
        // A livelocked point: nothing delivered.
        res.runs[0].delivered_pps = 0.0;
        let svg = livelock_svg(&res).unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let RGBColor(r, g, b) = REFERENCE;
        let stroke = format!("#{r:02X}{g:02X}{b:02X}");
        // Every dash of y = x (the legend's sample aside) on one line.
        let pts: Vec<(f64, f64)> = doc
            .descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .filter(|n| {
                n.attribute("stroke")
                    .is_some_and(|c| c.eq_ignore_ascii_case(&stroke))
            })
            .flat_map(|n| {
                n.attribute("points")
                    .unwrap_or("")
                    .split_whitespace()
                    .filter_map(|p| {
                        let (x, y) = p.split_once(',')?;
                        Some((x.parse().ok()?, y.parse().ok()?))
                    })
                    .collect::<Vec<(f64, f64)>>()
            })
            .collect();
        let dashes: Vec<_> = pts
            .windows(2)
            .step_by(2)
            .filter(|w| w[0].1 != w[1].1)
            .collect();
        assert!(dashes.len() >= 5, "{pts:?}");
        let (a, z) = (dashes[0][0], dashes[dashes.len() - 1][1]);
        let slope = (z.1 - a.1) / (z.0 - a.0);
        for w in &dashes {
            for p in w.iter() {
                let off = a.1 + slope * (p.0 - a.0) - p.1;
                assert!(
                    off.abs() <= 2.0,
                    "{p:?} is {off} px off the line {a:?}-{z:?}"
                );
            }
        }
        let texts: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .map(str::trim)
            .collect();
        // Panel (a)'s floor and panel (c)'s, labelled as floors.
        assert!(
            texts
                .iter()
                .any(|t| t.starts_with('\u{2264}') && t.ends_with('0')),
            "{texts:?}"
        );
        assert!(texts.contains(&"\u{2264}0.01"), "{texts:?}");
    }

    #[test]
    fn points_measured_in_trials_have_error_bars() {
        let lines = |res: &Results| {
            let svg = livelock_svg(res).unwrap();
            let doc = roxmltree::Document::parse(&svg).unwrap();
            let RGBColor(r, g, b) = color(0);
            let stroke = format!("#{r:02X}{g:02X}{b:02X}");
            doc.descendants()
                .filter(|n| n.has_tag_name("line"))
                .filter(|n| {
                    n.attribute("stroke")
                        .is_some_and(|c| c.eq_ignore_ascii_case(&stroke))
                })
                .count()
        };
        let plain = lines(&crate::compare::output::tests::sample(false));
        let bars = lines(&crate::compare::output::tests::sample_in_trials());
        // An error bar is three lines (the bar and its two caps), six points.
        assert_eq!(bars - plain, 3 * 6, "{plain} -> {bars}");
    }

    #[test]
    fn many_modes_are_drawn_as_a_row_per_family() {
        let mut res = sample(false);
        let base = res.runs.clone();
        res.runs.clear();
        for mode in crate::compare::modes::ALL {
            for r in &base {
                let mut r = r.clone();
                r.mode = mode.to_string();
                res.runs.push(r);
            }
        }
        let svg = livelock_svg(&res).unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let texts: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .map(str::trim)
            .collect();
        for family in [
            "NAPI (Linux)",
            "Mogul & Ramakrishnan",
            "interrupt + moderation",
        ] {
            assert!(
                texts.contains(&format!("{family}: delivered vs offered").as_str()),
                "{family}"
            );
        }
        for mode in crate::compare::modes::ALL {
            assert_eq!(texts.iter().filter(|t| **t == mode).count(), 2, "{mode}");
        }
    }

    #[test]
    fn svg_edge_cases() {
        // No runs: still a valid SVG.
        let svg = livelock_svg(&Results::default()).unwrap();
        assert!(roxmltree::Document::parse(&svg).is_ok());
        assert!(svg.contains("no data") && !svg.contains("simulated"));
        // One point, zero delivered, a zero offered rate (not drawable on a log axis).
        let mut res = sample(false);
        res.runs.truncate(1);
        res.runs[0].delivered_pps = 0.0;
        let mut zero = res.runs[0].clone();
        zero.offered_pps = 0.0;
        res.runs.push(zero);
        let svg = livelock_svg(&res).unwrap();
        assert!(roxmltree::Document::parse(&svg).is_ok());
        assert!(!svg.contains("simulated"));
    }
}
