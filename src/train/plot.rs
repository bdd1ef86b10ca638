//! PNG charts of a run's metrics (`intuitor plot RUN_DIR`; the trainer draws them at the end).

use std::path::{Path, PathBuf};

use anyhow::Context;
use plotters::prelude::*;
use plotters::style::register_font;

use super::metrics::{read, Metrics};

/// DejaVu Sans (Bitstream Vera license), embedded so charts render on machines without fonts.
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// The charts drawn: (file stem, title, metric names on one chart).
const CHARTS: &[(&str, &str, &[&str])] = &[
    (
        "self_certainty",
        "self-certainty (KL(U||p), nats)",
        &["self_certainty/mean"],
    ),
    (
        "accuracy",
        "accuracy reward (monitor)",
        &["rewards/accuracy/mean", "rewards/plurality_vote/mean"],
    ),
    ("reward", "reward (weighted)", &["reward"]),
    ("kl", "KL to the reference", &["kl"]),
    (
        "completion_length",
        "mean completion length (tokens)",
        &["completions/mean_length"],
    ),
    ("learning_rate", "learning rate", &["learning_rate"]),
];

pub(crate) fn ensure_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Draws every chart whose metrics are present; returns the files written.
pub fn plot_run(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    ensure_font();
    let rows = read(dir)?;
    let mut written = Vec::new();
    for (stem, title, keys) in CHARTS {
        let series: Vec<(&str, Vec<(f64, f64)>)> = keys
            .iter()
            .map(|k| (*k, points(&rows, k)))
            .filter(|(_, p)| !p.is_empty())
            .collect();
        if series.is_empty() {
            continue;
        }
        let path = dir.join(format!("{stem}.png"));
        draw(&path, title, &series).with_context(|| format!("drawing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

fn points(rows: &[Metrics], key: &str) -> Vec<(f64, f64)> {
    rows.iter()
        .filter_map(|r| Some((*r.get("step")?, *r.get(key)?)))
        .filter(|(_, y)| y.is_finite())
        .collect()
}

/// The legend box every chart uses.
pub(crate) fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
}

/// One line chart with a legend: `series` are (name, (x, y) points); x is the step.
pub fn draw(path: &Path, title: &str, series: &[(&str, Vec<(f64, f64)>)]) -> anyhow::Result<()> {
    ensure_font();
    let root = BitMapBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let all = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0).abs() * 0.08).max(1e-9);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .label_style(("sans-serif", 13))
        .draw()?;
    let colors = [BLUE, RED, GREEN, MAGENTA, BLACK, CYAN];
    for (i, (name, pts)) in series.iter().enumerate() {
        let c = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
    }
    draw_legend(&mut chart)?;
    root.present()?;
    Ok(())
}
