//! Hand-written standalone SVG charts: latency CDFs (log x axis), per
//! mechanism histograms (log2 bins), and the rate ramp against coalescing
//! and loss.

use std::fmt::Write as _;

use super::{fmt_ns, xml_escape};
use crate::hist::{log2_lower_edge, log2_upper_edge, Distribution};
use crate::model::{RampResult, RunResult};

/// Chart size.
const W: f64 = 900.0;
const H: f64 = 520.0;
/// Plot area margins: left, right, top, bottom.
const ML: f64 = 80.0;
const MR: f64 = 200.0;
const MT: f64 = 50.0;
const MB: f64 = 60.0;

/// Series colours (colour-blind friendly first, then more).
pub const PALETTE: [&str; 16] = [
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#d55e00", "#56b4e9", "#f0e442", "#000000",
    "#7f3c8d", "#11a579", "#3969ac", "#f2b701", "#e73f74", "#80ba5a", "#e68310", "#008695",
];

fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// A log10 axis over `[lo, hi]`, widened to whole decades.
#[derive(Debug, Clone, Copy)]
struct LogAxis {
    lo: f64,
    hi: f64,
}

impl LogAxis {
    fn new(min: f64, max: f64) -> Self {
        let min = min.max(1.0);
        let max = max.max(min * 10.0);
        LogAxis {
            lo: 10f64.powf(min.log10().floor()),
            hi: 10f64.powf(max.log10().ceil()),
        }
    }
    fn x(&self, v: f64) -> f64 {
        let v = v.clamp(self.lo, self.hi);
        ML + (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10()) * (W - ML - MR)
    }
    fn decades(&self) -> Vec<f64> {
        let mut out = Vec::new();
        let mut d = self.lo;
        while d <= self.hi * 1.0001 {
            out.push(d);
            d *= 10.0;
        }
        out
    }
}

fn y_of(frac: f64) -> f64 {
    MT + (1.0 - frac.clamp(0.0, 1.0)) * (H - MT - MB)
}

/// Deepest percentile the CDF axis shows: 99.99 %.
const TAIL_NINES: f64 = 4.0;

/// Map a cumulative fraction to the CDF chart's height fraction on a
/// "tail" scale: `log10(1 / (1 - F)) / 4`, so 90 %, 99 %, 99.9 % and
/// 99.99 % are evenly spaced (fractions above 99.99 % sit at the top).
pub fn tail_y(f: f64) -> f64 {
    let f = f.clamp(0.0, 1.0);
    if f >= 1.0 - 10f64.powf(-TAIL_NINES) {
        return 1.0;
    }
    ((1.0 / (1.0 - f)).log10() / TAIL_NINES).clamp(0.0, 1.0)
}

fn header(o: &mut String, title: &str) {
    let _ = writeln!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" \
         font-family=\"DejaVu Sans, Arial, sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(o, "<title>{}</title>", xml_escape(title));
    let _ = writeln!(o, "<rect width=\"{W}\" height=\"{H}\" fill=\"#ffffff\"/>");
    let _ = writeln!(
        o,
        "<text x=\"{}\" y=\"28\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">{}</text>",
        (ML + W - MR) / 2.0,
        xml_escape(title)
    );
}

fn frame(o: &mut String) {
    let _ = writeln!(
        o,
        "<rect x=\"{ML}\" y=\"{MT}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333333\"/>",
        W - ML - MR,
        H - MT - MB
    );
}

fn log_x_axis(o: &mut String, ax: &LogAxis, label: &str) {
    for d in ax.decades() {
        let x = ax.x(d);
        let _ = writeln!(
            o,
            "<line x1=\"{x:.1}\" y1=\"{MT}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#dddddd\"/>",
            H - MB
        );
        let _ = writeln!(
            o,
            "<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            H - MB + 18.0,
            xml_escape(&fmt_ns(d))
        );
    }
    let _ = writeln!(
        o,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
        (ML + W - MR) / 2.0,
        H - 15.0,
        xml_escape(label)
    );
}

fn linear_y_axis(o: &mut String, ticks: &[(f64, String)], label: &str, right: bool) {
    for (frac, text) in ticks {
        let y = y_of(*frac);
        if !right {
            let _ = writeln!(
                o,
                "<line x1=\"{ML}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#dddddd\"/>",
                W - MR
            );
        }
        let (x, anchor) = if right {
            (W - MR + 6.0, "start")
        } else {
            (ML - 6.0, "end")
        };
        let _ = writeln!(
            o,
            "<text x=\"{x}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
            y + 4.0,
            xml_escape(text)
        );
    }
    let (x, rot) = if right {
        (W - MR + 80.0, 90.0)
    } else {
        (20.0, -90.0)
    };
    let cy = (MT + H - MB) / 2.0;
    let _ = writeln!(
        o,
        "<text x=\"{x}\" y=\"{cy}\" text-anchor=\"middle\" transform=\"rotate({rot} {x} {cy})\">{}</text>",
        xml_escape(label)
    );
}

fn legend(o: &mut String, items: &[(String, &str, bool)]) {
    legend_at(o, items, W - MR + 20.0, MT + 10.0, false);
}

/// Legend entries `(label, colour, dashed)` from `(x, y0)`, optionally on a
/// white box (for legends inside the plot area).
fn legend_at(o: &mut String, items: &[(String, &str, bool)], x: f64, y0: f64, boxed: bool) {
    if boxed && !items.is_empty() {
        let chars = items.iter().map(|i| i.0.chars().count()).max().unwrap_or(0);
        let w = 40.0 + 7.0 * chars as f64;
        let _ = writeln!(
            o,
            "<rect x=\"{}\" y=\"{}\" width=\"{w:.0}\" height=\"{}\" fill=\"#ffffff\" \
             fill-opacity=\"0.9\" stroke=\"#cccccc\"/>",
            x - 8.0,
            y0 - 12.0,
            items.len() as f64 * 18.0 + 8.0
        );
    }
    for (i, (label, c, dashed)) in items.iter().enumerate() {
        let y = y0 + i as f64 * 18.0;
        let dash = if *dashed {
            " stroke-dasharray=\"5,3\""
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "<line x1=\"{x}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{c}\" stroke-width=\"2.5\"{dash}/>",
            x + 22.0
        );
        let _ = writeln!(
            o,
            "<text x=\"{}\" y=\"{}\">{}</text>",
            x + 28.0,
            y + 4.0,
            xml_escape(label)
        );
    }
}

fn footer(o: &mut String) {
    o.push_str("</svg>\n");
}

fn no_data(o: &mut String) {
    let _ = writeln!(
        o,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#888888\">no data</text>",
        (ML + W - MR) / 2.0,
        (MT + H - MB) / 2.0
    );
}

/// CDF chart: one step line per series on a log x axis (ns values).
/// `series`: `(label, points (value_ns, count) ascending)`.
pub fn cdf_svg(title: &str, x_label: &str, series: &[(String, Vec<(u64, u64)>)]) -> String {
    let mut o = String::new();
    header(&mut o, title);
    let all = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(v, _)| *v as f64));
    let (min, max) = all.fold((f64::INFINITY, 0.0f64), |(a, b), v| {
        (a.min(v.max(1.0)), b.max(v))
    });
    let ax = LogAxis::new(if min.is_finite() { min } else { 1e3 }, max.max(1e4));
    let ticks: Vec<(f64, String)> = [
        (0.0, "0"),
        (0.5, "50%"),
        (0.9, "90%"),
        (0.99, "99%"),
        (0.999, "99.9%"),
        (0.9999, "99.99%"),
    ]
    .iter()
    .map(|(f, t)| (tail_y(*f), t.to_string()))
    .collect();
    linear_y_axis(
        &mut o,
        &ticks,
        "percentile (events <= x), tail scale",
        false,
    );
    log_x_axis(&mut o, &ax, x_label);
    frame(&mut o);
    let mut items = Vec::new();
    let mut any = false;
    for (i, (label, pts)) in series.iter().enumerate() {
        let total: u64 = pts.iter().map(|(_, c)| c).sum();
        if total == 0 {
            continue;
        }
        any = true;
        let mut cum = 0u64;
        let mut d = String::new();
        let mut prev_y = y_of(0.0);
        for (k, (v, c)) in pts.iter().enumerate() {
            cum += c;
            let x = ax.x(*v as f64);
            let y = y_of(tail_y(cum as f64 / total as f64));
            if k == 0 {
                let _ = write!(d, "M{x:.1},{prev_y:.1}");
            }
            let _ = write!(d, " L{x:.1},{prev_y:.1} L{x:.1},{y:.1}");
            prev_y = y;
        }
        let _ = writeln!(
            o,
            "<path d=\"{d}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>",
            colour(i)
        );
        items.push((label.clone(), colour(i), false));
    }
    if !any {
        no_data(&mut o);
    }
    legend(&mut o, &items);
    footer(&mut o);
    o
}

/// Histogram chart: log2 bins on a log x axis, one bar per series in each
/// bin, height = fraction of that series' events in the bin.
/// `series`: `(label, log2 counts)`.
pub fn hist_svg(title: &str, series: &[(String, Vec<u64>)]) -> String {
    let mut o = String::new();
    header(&mut o, title);
    let used: Vec<(usize, &(String, Vec<u64>))> = series
        .iter()
        .enumerate()
        .filter(|(_, (_, c))| c.iter().any(|&x| x > 0))
        .collect();
    let first = used
        .iter()
        .filter_map(|(_, (_, c))| c.iter().position(|&x| x > 0))
        .min()
        .unwrap_or(10);
    let last = used
        .iter()
        .filter_map(|(_, (_, c))| c.iter().rposition(|&x| x > 0))
        .max()
        .unwrap_or(20);
    let ax = LogAxis::new(
        log2_lower_edge(first).max(1) as f64,
        log2_upper_edge(last) as f64,
    );
    let peak = used
        .iter()
        .flat_map(|(_, (_, c))| {
            let t: u64 = c.iter().sum();
            c.iter().map(move |&x| x as f64 / t as f64)
        })
        .fold(0.0f64, f64::max);
    let top = if peak > 0.0 {
        (peak * 10.0).ceil() / 10.0
    } else {
        1.0
    };
    let ticks: Vec<(f64, String)> = (0..=5)
        .map(|k| {
            let f = k as f64 / 5.0;
            (f, format!("{:.0}%", f * top * 100.0))
        })
        .collect();
    linear_y_axis(&mut o, &ticks, "share of events in bin", false);
    log_x_axis(&mut o, &ax, "latency (log2 bins)");
    let n = used.len().max(1) as f64;
    let mut items = Vec::new();
    for (slot, (i, (label, counts))) in used.iter().enumerate() {
        let total: u64 = counts.iter().sum();
        for (b, &c) in counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let x0 = ax.x(log2_lower_edge(b).max(1) as f64);
            let x1 = ax.x(log2_upper_edge(b) as f64);
            let bw = (x1 - x0) / n;
            let x = x0 + bw * slot as f64;
            let y = y_of(c as f64 / total as f64 / top);
            let _ = writeln!(
                o,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\" fill-opacity=\"0.85\"><title>{}: {c} in [{}, {})</title></rect>",
                (bw - 0.5).max(0.5),
                (H - MB - y).max(0.0),
                colour(*i),
                xml_escape(label),
                xml_escape(&fmt_ns(log2_lower_edge(b) as f64)),
                xml_escape(&fmt_ns(log2_upper_edge(b) as f64))
            );
        }
        items.push((label.clone(), colour(*i), false));
    }
    if used.is_empty() {
        no_data(&mut o);
    }
    frame(&mut o);
    legend(&mut o, &items);
    footer(&mut o);
    o
}

/// Rate ramp chart: offered rate (x) against coalesced % and loss % (left
/// axis), and raise->ack p99 (right axis, dashed) when measured.
pub fn ramp_svg(title: &str, ramp: &RampResult) -> String {
    let mut o = String::new();
    header(&mut o, title);
    let steps = &ramp.steps;
    let (rmin, rmax) = steps.iter().fold((f64::INFINITY, 0.0f64), |(a, b), s| {
        (a.min(s.rate_hz as f64), b.max(s.rate_hz as f64))
    });
    let log = rmin.is_finite() && rmin > 0.0 && rmax / rmin >= 10.0;
    let (lo, hi) = if rmin.is_finite() {
        (rmin, rmax.max(rmin + 1.0))
    } else {
        (0.0, 1.0)
    };
    let x_of = |r: f64| -> f64 {
        let f = if log {
            (r.max(lo).log10() - lo.log10()) / (hi.log10() - lo.log10())
        } else {
            (r - lo) / (hi - lo)
        };
        ML + 10.0 + f * (W - ML - MR - 20.0)
    };
    let peak = steps
        .iter()
        .map(|s| s.coalesced_ratio().max(s.loss_ratio()))
        .fold(0.0f64, f64::max);
    let top = if peak > 0.0 {
        ((peak * 100.0 / 5.0).ceil() * 5.0 / 100.0).min(1.0)
    } else {
        0.05
    };
    let ticks: Vec<(f64, String)> = (0..=5)
        .map(|k| {
            (
                k as f64 / 5.0,
                format!("{:.1}%", k as f64 / 5.0 * top * 100.0),
            )
        })
        .collect();
    linear_y_axis(&mut o, &ticks, "share of raised events", false);
    // x ticks at each step
    for s in steps {
        let x = x_of(s.rate_hz as f64);
        let _ = writeln!(
            o,
            "<line x1=\"{x:.1}\" y1=\"{MT}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#eeeeee\"/>",
            H - MB
        );
        let _ = writeln!(
            o,
            "<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"end\" transform=\"rotate(-35 {x:.1} {})\">{}</text>",
            H - MB + 16.0,
            H - MB + 16.0,
            s.rate_hz
        );
    }
    let _ = writeln!(
        o,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">offered rate (events/s{})</text>",
        (ML + W - MR) / 2.0,
        H - 8.0,
        if log { ", log scale" } else { "" }
    );
    frame(&mut o);
    let mut items = Vec::new();
    let line = |o: &mut String, pts: Vec<(f64, f64)>, c: &str, dashed: bool| {
        if pts.is_empty() {
            return;
        }
        let d: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let dash = if dashed {
            " stroke-dasharray=\"6,4\""
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"2.5\"{dash}/>",
            d.join(" ")
        );
        for (x, y) in &pts {
            let _ = writeln!(
                o,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3.5\" fill=\"{c}\"/>"
            );
        }
    };
    let co: Vec<(f64, f64)> = steps
        .iter()
        .map(|s| (x_of(s.rate_hz as f64), y_of(s.coalesced_ratio() / top)))
        .collect();
    let lo_pts: Vec<(f64, f64)> = steps
        .iter()
        .map(|s| (x_of(s.rate_hz as f64), y_of(s.loss_ratio() / top)))
        .collect();
    line(&mut o, co, colour(0), false);
    items.push(("coalesced / raised".to_string(), colour(0), false));
    line(&mut o, lo_pts, colour(3), false);
    items.push(("(pending+dropped) / raised".to_string(), colour(3), false));
    let p99max = steps
        .iter()
        .filter_map(|s| s.raise_to_ack_p99_ns)
        .max()
        .unwrap_or(0);
    if p99max > 0 {
        let ptop = p99max as f64 * 1.1;
        let pts: Vec<(f64, f64)> = steps
            .iter()
            .filter_map(|s| {
                s.raise_to_ack_p99_ns
                    .map(|p| (x_of(s.rate_hz as f64), y_of(p as f64 / ptop)))
            })
            .collect();
        line(&mut o, pts, colour(2), true);
        let ticks: Vec<(f64, String)> = (0..=5)
            .map(|k| (k as f64 / 5.0, fmt_ns(k as f64 / 5.0 * ptop)))
            .collect();
        linear_y_axis(&mut o, &ticks, "raise->ack p99", true);
        items.push(("raise->ack p99 (right)".to_string(), colour(2), true));
    }
    if steps.is_empty() {
        no_data(&mut o);
    }
    if let Some(r) = ramp.sustained_rate_hz {
        let x = x_of(r as f64);
        let _ = writeln!(
            o,
            "<line x1=\"{x:.1}\" y1=\"{MT}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#555555\" stroke-dasharray=\"2,3\"/>",
            H - MB
        );
        let _ = writeln!(
            o,
            "<text x=\"{:.1}\" y=\"{}\" fill=\"#555555\">sustained {r}/s</text>",
            x + 4.0,
            MT + 14.0
        );
    }
    // inside the plot, top left: the right margin holds the p99 axis
    legend_at(&mut o, &items, ML + 18.0, MT + 20.0, true);
    footer(&mut o);
    o
}

/// Latency metrics plotted as CDFs, with file stems and axis labels.
const CDF_METRICS: [(&str, &str); 4] = [
    ("raise_to_ack", "host raise -> ack"),
    ("hardirq_to_bh", "guest hardirq -> bh start"),
    ("bh_run", "guest bh run time"),
    ("raise_to_hardirq", "raise -> hardirq (one-way est.)"),
];

fn metric<'a>(r: &'a crate::model::MechanismResult, name: &str) -> Option<&'a Distribution> {
    match name {
        "raise_to_ack" => r.raise_to_ack.as_ref(),
        "hardirq_to_bh" => r.hardirq_to_bh.as_ref(),
        "bh_run" => r.bh_run.as_ref(),
        _ => r.raise_to_hardirq.as_ref().map(|o| &o.distribution),
    }
}

/// File-name-safe form of a label.
pub fn file_stem(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Every plot of a run: `(file name, SVG text)`.
/// `cdf-<metric>.svg` (all mechanisms in one chart, per metric with data),
/// `hist-<mechanism>.svg` (per mechanism), and `ramp.svg`.
pub fn plots(result: &RunResult) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let rows = &result.mechanisms;
    for (name, label) in CDF_METRICS {
        let series: Vec<(String, Vec<(u64, u64)>)> = rows
            .iter()
            .filter_map(|r| metric(r, name).map(|d| (r.mechanism.clone(), d.points())))
            .filter(|(_, p)| !p.is_empty())
            .collect();
        if series.is_empty() {
            continue;
        }
        let title = format!("{} — {label} CDF", result.meta.scenario);
        out.push((format!("cdf-{name}.svg"), cdf_svg(&title, label, &series)));
    }
    for r in rows {
        let mut series: Vec<(String, Vec<u64>)> = Vec::new();
        for (name, label) in &CDF_METRICS[..3] {
            if let Some(d) = metric(r, name) {
                series.push((label.to_string(), d.log2_counts()));
            }
        }
        if let Some(d) = r.reference.as_ref().and_then(|x| x.hardirq_to_bh.as_ref()) {
            series.push(("ref hrtimer hardirq -> bh".into(), d.log2_counts()));
        }
        let title = format!("{} — {}", result.meta.scenario, r.mechanism);
        out.push((
            format!("hist-{}.svg", file_stem(&r.mechanism)),
            hist_svg(&title, &series),
        ));
    }
    if let Some(ramp) = &result.ramp {
        let title = format!(
            "{} — rate ramp vs coalescing and loss",
            result.meta.scenario
        );
        out.push(("ramp.svg".into(), ramp_svg(&title, ramp)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::tests::sample_result;

    fn parse(s: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(s).unwrap_or_else(|e| panic!("{e}\n{s}"))
    }

    #[test]
    fn every_plot_is_well_formed_svg() {
        let r = sample_result();
        let p = plots(&r);
        let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"cdf-raise_to_ack.svg"));
        assert!(names.contains(&"cdf-raise_to_hardirq.svg"));
        assert!(names.contains(&"hist-wq_system.svg"));
        assert!(names.contains(&"ramp.svg"));
        for (name, text) in &p {
            let doc = parse(text);
            let root = doc.root_element();
            assert_eq!(root.tag_name().name(), "svg", "{name}");
            assert_eq!(
                root.tag_name().namespace(),
                Some("http://www.w3.org/2000/svg")
            );
            // title escaped: scenario is `demo<&>`
            let t = root.children().find(|n| n.has_tag_name("title")).unwrap();
            assert!(t.text().unwrap().starts_with("demo<&>"), "{name}");
        }
    }

    #[test]
    fn cdf_has_one_path_per_series_ending_at_one() {
        let s = vec![
            ("a".to_string(), vec![(1_000, 50), (10_000, 50)]),
            ("b".to_string(), vec![(5_000, 1)]),
            ("empty".to_string(), vec![]),
        ];
        let text = cdf_svg("t", "x", &s);
        let doc = parse(&text);
        let paths: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("path"))
            .collect();
        assert_eq!(paths.len(), 2);
        let top = format!("{:.1}", y_of(1.0));
        for p in &paths {
            let d = p.attribute("d").unwrap();
            assert!(d.ends_with(&top), "{d}");
        }
        let nodata = cdf_svg("t", "x", &[]);
        assert!(nodata.contains("no data"));
        parse(&nodata);
    }

    #[test]
    fn hist_bars_and_ramp_lines() {
        let text = hist_svg(
            "h",
            &[("s".into(), vec![0, 0, 0, 4, 4]), ("z".into(), vec![0])],
        );
        let doc = parse(&text);
        // background + frame + 2 bars
        let bars = doc
            .descendants()
            .filter(|n| n.has_tag_name("rect") && n.attribute("fill-opacity").is_some())
            .count();
        assert_eq!(bars, 2);
        let r = sample_result();
        let text = ramp_svg("r", r.ramp.as_ref().unwrap());
        let doc = parse(&text);
        assert_eq!(
            doc.descendants()
                .filter(|n| n.has_tag_name("polyline"))
                .count(),
            3
        );
        assert!(text.contains("sustained 4000/s"));
        parse(&ramp_svg("empty", &RampResult::default()));
    }

    #[test]
    fn tail_scale_spaces_nines_evenly() {
        assert_eq!(tail_y(0.0), 0.0);
        assert!((tail_y(0.9) - 0.25).abs() < 1e-12);
        assert!((tail_y(0.99) - 0.5).abs() < 1e-12);
        assert!((tail_y(0.999) - 0.75).abs() < 1e-9);
        assert_eq!(tail_y(1.0), 1.0);
        assert_eq!(tail_y(0.99999), 1.0);
    }

    #[test]
    fn log_axis_decades() {
        let ax = LogAxis::new(3_000.0, 2_000_000.0);
        assert_eq!(ax.decades(), vec![1e3, 1e4, 1e5, 1e6, 1e7]);
        assert!((ax.x(1e3) - ML).abs() < 1e-9);
        assert!((ax.x(1e7) - (W - MR)).abs() < 1e-9);
        assert_eq!(file_stem("a b/c"), "a_b_c");
    }
}
