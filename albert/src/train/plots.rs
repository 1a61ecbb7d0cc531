//! loss.png and accuracy.png from the metrics, drawn with plotters' bitmap backend and the
//! DejaVu Sans Mono font shipped in albert/assets (so no system fonts are needed).

use super::metrics::Row;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSansMono.ttf");

pub fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Registration only fails for an unparsable font, which the shipped file is not.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Draws the series legend at `position` over a white box and writes the bitmap (to the
/// temporary file the backend was opened on; the caller renames it into place).
pub fn legend_and_present<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    root: &DrawingArea<DB, plotters::coord::Shift>,
    position: SeriesLabelPosition,
    path: &Path,
) -> Result<(), String> {
    let e = |x: &dyn std::fmt::Display| format!("{}: {x}", path.display());
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))
}

type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

fn draw(path: &Path, title: &str, y_label: &str, series: &[Series]) -> Result<(), String> {
    register_font();
    let all: Vec<&(f64, f64)> = series.iter().flat_map(|s| s.2.iter()).collect();
    if all.is_empty() {
        return Ok(());
    }
    let x_max = all.iter().map(|p| p.0).fold(1.0, f64::max);
    let (y_min, y_max) = all.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let pad = ((y_max - y_min) * 0.05).max(1e-3);
    let tmp = path.with_extension("png.tmp.png");
    {
        let root = BitMapBackend::new(&tmp, (900, 540)).into_drawing_area();
        let e = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        root.fill(&WHITE).map_err(|x| e(&x))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..x_max, (y_min - pad)..(y_max + pad))
            .map_err(|x| e(&x))?;
        chart.configure_mesh().x_desc("step").y_desc(y_label).draw().map_err(|x| e(&x))?;
        for (name, color, pts) in series {
            let c = *color;
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                .map_err(|x| e(&x))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        }
        legend_and_present(&mut chart, &root, SeriesLabelPosition::MiddleRight, path)?;
    }
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Smooths a noisy per-step curve with a trailing mean over `w` points.
fn smooth(pts: &[(f64, f64)], w: usize) -> Vec<(f64, f64)> {
    (0..pts.len())
        .map(|i| {
            let lo = i.saturating_sub(w - 1);
            let s: f64 = pts[lo..=i].iter().map(|p| p.1).sum();
            (pts[i].0, s / (i - lo + 1) as f64)
        })
        .collect()
}

/// Writes loss.png and accuracy.png into `dir`.
pub fn write(dir: &Path, rows: &[Row]) -> Result<(), String> {
    let pick = |kind: &str, f: fn(&Row) -> f64| -> Vec<(f64, f64)> {
        rows.iter().filter(|r| r.kind == kind).map(|r| (r.step as f64, f(r))).collect()
    };
    let w = (rows.len() / 50).max(1);
    draw(
        &dir.join("loss.png"),
        "pretraining loss",
        "loss",
        &[
            ("train MLM (smoothed)", BLUE, smooth(&pick("train", |r| r.mlm_loss), w)),
            ("train SOP (smoothed)", RED, smooth(&pick("train", |r| r.order_loss), w)),
            ("held-out MLM", RGBColor(0, 0, 90), pick("eval", |r| r.mlm_loss)),
            ("held-out SOP", RGBColor(120, 0, 0), pick("eval", |r| r.order_loss)),
        ],
    )?;
    draw(
        &dir.join("accuracy.png"),
        "held-out accuracy",
        "accuracy",
        &[
            ("MLM", BLUE, pick("eval", |r| r.mlm_acc)),
            ("MLM most-frequent-token baseline", RGBColor(120, 120, 120), pick("eval", |r| r.mlm_baseline_acc)),
            ("SOP", RED, pick("eval", |r| r.order_acc)),
        ],
    )
}
