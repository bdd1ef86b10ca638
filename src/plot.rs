//! PNG charts (plotters): the embedded font, the legend style and a line chart, shared by the
//! training run's charts (`train::plot`) and the evaluation report's (`eval::report`).

use std::path::Path;

use plotters::prelude::*;
use plotters::style::register_font;

/// DejaVu Sans (Bitstream Vera license), embedded so charts render on machines without fonts.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the embedded font (once per process) before anything is drawn.
pub(crate) fn ensure_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    });
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
