//! The row `livelock.svg` gains when a sweep covers several CPU counts
//! (`compare --cpus 1,2,4`): (d) each mode's peak delivered rate against
//! the CPUs, with the ideal line (the peak at the fewest CPUs times the
//! ratio of CPUs), and (e) how RSS shared the flood among the queues: the
//! load offered to each queue at the highest offered rate of the largest
//! CPU count, with the even share for reference.

use std::collections::BTreeMap;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;

use super::model::{Axes, Results, Run};
use super::output::human;
use super::summary::Labels;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
/// A panel's chart: linear axes of `f64`.
type Chart<'a> = ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Font family of all text (as the rest of the figure).
const FONT: &str = "sans-serif";
/// Colour of the reference lines.
const REFERENCE: RGBColor = RGBColor(120, 120, 120);

/// A whole-number tick's label; none between whole numbers.
fn whole(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-6 {
        format!("{v:.0}")
    } else {
        String::new()
    }
}

/// Whether the runs cover more than one CPU count (and get the row).
pub fn has_cpus_axis(results: &Results) -> bool {
    let mut counts = results.runs.iter().map(|r| r.axes.cpus);
    let first = counts.next();
    counts.any(|c| Some(c) != first)
}

/// A series of panel (d): a mode at a point of the other axes but the
/// CPUs, its name, and its peak per CPU count.
type Peaks = BTreeMap<(String, Axes), (String, BTreeMap<usize, f64>)>;

/// The peak delivered rate of every series (as the summary has it, the
/// MLFRR search's points included), per CPU count.
fn peaks(results: &Results) -> Peaks {
    let labels = Labels::of(results.summary.iter().map(|s| Axes { cpus: 1, ..s.axes }));
    let mut out = Peaks::new();
    for s in &results.summary {
        let a = Axes { cpus: 1, ..s.axes };
        let e = out
            .entry((s.mode.clone(), a))
            .or_insert_with(|| (labels.label(&s.mode, a), BTreeMap::new()));
        e.1.insert(s.axes.cpus, s.peak_delivered_pps);
    }
    out
}

/// The row: panels (d) and (e), side by side in `area`.
pub fn cpus_row(
    area: &Area<'_>,
    results: &Results,
    colors: &dyn Fn(usize) -> RGBColor,
) -> anyhow::Result<()> {
    let cols = area.split_evenly((1, 2));
    peak_panel(&cols[0], results, colors)?;
    queue_panel(&cols[1], results, colors)?;
    Ok(())
}

/// (d): peak delivered against CPUs, and each series' ideal line.
fn peak_panel(
    area: &Area<'_>,
    results: &Results,
    colors: &dyn Fn(usize) -> RGBColor,
) -> anyhow::Result<()> {
    let all = peaks(results);
    let most = results.runs.iter().map(|r| r.axes.cpus).max().unwrap_or(1);
    let max_cpus = most as f64;
    let ideal = |p: &BTreeMap<usize, f64>| -> Vec<(f64, f64)> {
        let Some((&c0, &v0)) = p.iter().next() else {
            return Vec::new();
        };
        p.keys()
            .map(|&c| (c as f64, v0 * c as f64 / c0 as f64))
            .collect()
    };
    let top = all
        .values()
        .flat_map(|(_, p)| p.values().copied().chain(ideal(p).into_iter().map(|q| q.1)))
        .fold(0.0_f64, f64::max)
        * 1.12;
    let mut chart = frame(
        area,
        "(d) peak delivered vs CPUs (dashed: linear from the fewest)",
        0.5..max_cpus + 0.5,
        top,
        (
            "simulated CPUs (one receive queue each)",
            "peak delivered to app (datagrams/s)",
        ),
        most + 2,
    )?;
    for (i, (name, p)) in all.values().enumerate() {
        let c = colors(i);
        let pts: Vec<(f64, f64)> = p.iter().map(|(&k, &v)| (k as f64, v)).collect();
        line(&mut chart, pts, c, name)?;
        chart.draw_series(DashedLineSeries::new(
            ideal(p),
            6,
            5,
            c.mix(0.6).stroke_width(1),
        ))?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

/// The rows of each mode at the largest CPU count and its highest
/// offered rate that carry a load per queue.
fn busiest(results: &Results) -> Vec<&Run> {
    let max_cpus = results.runs.iter().map(|r| r.axes.cpus).max().unwrap_or(1);
    let mut out: Vec<&Run> = Vec::new();
    for r in results
        .runs
        .iter()
        .filter(|r| r.axes.cpus == max_cpus && !r.queues.is_empty())
    {
        match out
            .iter_mut()
            .find(|o| o.mode == r.mode && o.axes == r.axes)
        {
            Some(o) if o.offered_pps < r.offered_pps => *o = r,
            Some(_) => {}
            None => out.push(r),
        }
    }
    out
}

/// (e): the load offered to each queue, per mode, and the even share.
fn queue_panel(
    area: &Area<'_>,
    results: &Results,
    colors: &dyn Fn(usize) -> RGBColor,
) -> anyhow::Result<()> {
    let rows = busiest(results);
    let n = rows.iter().map(|r| r.queues.len()).max().unwrap_or(1);
    let top = rows
        .iter()
        .flat_map(|r| r.queues.iter().map(|q| q.offered_pps))
        .fold(0.0_f64, f64::max)
        * 1.12;
    let flows = results
        .meta
        .get("flows")
        .and_then(serde_json::Value::as_u64)
        .map_or(String::new(), |f| match f {
            1 => ", 1 flow".to_string(),
            f => format!(", {f} flows"),
        });
    let mut chart = frame(
        area,
        &format!("(e) load per queue at the highest offered rate, {n} CPUs{flows}"),
        -0.5..n as f64 - 0.5,
        top,
        (
            "receive queue (served by CPU queue % cpus)",
            "offered to the queue (frames/s)",
        ),
        n.min(16) + 1,
    )?;
    if let Some(r) = rows.first() {
        let even = r.queues.iter().map(|q| q.offered_pps).sum::<f64>() / n as f64;
        chart
            .draw_series(DashedLineSeries::new(
                [(-0.5, even), (n as f64 - 0.5, even)],
                6,
                5,
                REFERENCE.stroke_width(1),
            ))?
            .label("even share")
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], REFERENCE.stroke_width(1))
            });
    }
    for (i, r) in rows.iter().enumerate() {
        let pts: Vec<(f64, f64)> = r
            .queues
            .iter()
            .map(|q| (q.queue as f64, q.offered_pps))
            .collect();
        let label = format!("{} at {}", r.mode, human(r.offered_pps));
        line(&mut chart, pts, colors(i), &label)?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}

/// A panel of this row: its caption, linear axes over `x` and 0..`top`
/// (padded), described by `desc` (x, y), `x_labels` whole-number labels
/// on x and rates on y.
fn frame<'a>(
    area: &Area<'a>,
    caption: &str,
    x: std::ops::Range<f64>,
    top: f64,
    desc: (&str, &str),
    x_labels: usize,
) -> anyhow::Result<Chart<'a>> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 17))
        .margin(12)
        .margin_right(24)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x, 0.0..top.max(1.0))?;
    chart
        .configure_mesh()
        .x_desc(desc.0)
        .y_desc(desc.1)
        .x_labels(x_labels)
        .x_label_formatter(&whole)
        .y_label_formatter(&|v| human(*v))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(BLACK.mix(0.04))
        .draw()?;
    Ok(chart)
}

/// One series of `pts` in colour `c`, a line with round markers, and its
/// legend entry `label`.
fn line(
    chart: &mut Chart<'_>,
    pts: Vec<(f64, f64)>,
    c: RGBColor,
    label: &str,
) -> anyhow::Result<()> {
    chart
        .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    chart.draw_series(pts.iter().map(|&q| Circle::new(q, 4, c.filled())))?;
    Ok(())
}

/// The legend of a panel of this row, at `pos`.
fn legend<'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    pos: SeriesLabelPosition,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(pos)
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .margin(10)
        .draw()?;
    Ok(())
}
