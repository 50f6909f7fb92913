//! The two pictures simdnet draws: training curves (loss per log interval, test loss and
//! accuracy per epoch) and an evaluation picture (the confusion matrix as a heat map, and a grid
//! of misclassified test images with their true and predicted labels).

use super::png::data_uri;
use super::svg::{Anchor, Svg};

const TRAIN_COLOUR: &str = "#1f77b4";
const TEST_COLOUR: &str = "#d62728";
const AXIS_COLOUR: &str = "#333333";
const GRID_COLOUR: &str = "#dddddd";

/// A point of the training loss: the position in epochs (1.5 is half-way through epoch 2) and
/// the loss of the batch logged there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainPoint {
    pub epoch: f64,
    pub loss: f64,
}

/// One epoch's test result; `accuracy` is a fraction in [0, 1].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TestPoint {
    pub epoch: usize,
    pub loss: f64,
    pub accuracy: f64,
}

/// A misclassified image: 28x28 bytes, rows top to bottom, and its labels.
#[derive(Clone, Copy, Debug)]
pub struct Mistake<'a> {
    pub pixels: &'a [u8],
    pub truth: usize,
    pub predicted: usize,
}

/// Round tick positions covering [lo, hi]: steps of 1, 2 or 5 times a power of ten, about
/// `target` of them.
pub fn ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![if lo.is_finite() { lo } else { 0.0 }];
    }
    let rough = (hi - lo) / target.max(1) as f64;
    let power = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * power);
    let first = (lo / step).floor() as i64;
    let last = (hi / step).ceil() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    format!("{v:.decimals$}")
}

/// A rectangle of the picture with data ranges mapped onto it.
struct Panel {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    xs: Vec<f64>,
    ys: Vec<f64>,
}

impl Panel {
    fn new(x: f64, y: f64, w: f64, h: f64, xr: (f64, f64), yr: (f64, f64)) -> Panel {
        Panel {
            x,
            y,
            w,
            h,
            xs: ticks(xr.0, xr.1, 6),
            ys: ticks(yr.0, yr.1, 5),
        }
    }

    fn range(t: &[f64]) -> (f64, f64) {
        let lo = t[0];
        let hi = t[t.len() - 1];
        if hi > lo {
            (lo, hi)
        } else {
            (lo - 1.0, lo + 1.0)
        }
    }

    fn px(&self, v: f64) -> f64 {
        let (lo, hi) = Panel::range(&self.xs);
        self.x + (v - lo) / (hi - lo) * self.w
    }

    fn py(&self, v: f64) -> f64 {
        let (lo, hi) = Panel::range(&self.ys);
        self.y + self.h - (v - lo) / (hi - lo) * self.h
    }

    fn draw_axes(&self, svg: &mut Svg, x_label: &str, y_label: &str) {
        let step = |t: &[f64]| if t.len() > 1 { t[1] - t[0] } else { 1.0 };
        for &t in &self.ys {
            let y = self.py(t);
            svg.line(self.x, y, self.x + self.w, y, GRID_COLOUR, 1.0);
            let label = tick_label(t, step(&self.ys));
            svg.text(
                self.x - 6.0,
                y + 4.0,
                11.0,
                Anchor::End,
                0.0,
                AXIS_COLOUR,
                &label,
            );
        }
        for &t in &self.xs {
            let x = self.px(t);
            svg.line(
                x,
                self.y + self.h,
                x,
                self.y + self.h + 4.0,
                AXIS_COLOUR,
                1.0,
            );
            let label = tick_label(t, step(&self.xs));
            let y = self.y + self.h + 17.0;
            svg.text(x, y, 11.0, Anchor::Middle, 0.0, AXIS_COLOUR, &label);
        }
        let (bottom, right) = (self.y + self.h, self.x + self.w);
        svg.line(self.x, bottom, right, bottom, AXIS_COLOUR, 1.0);
        svg.line(self.x, self.y, self.x, bottom, AXIS_COLOUR, 1.0);
        let mid_x = self.x + self.w / 2.0;
        svg.text(
            mid_x,
            bottom + 36.0,
            12.0,
            Anchor::Middle,
            0.0,
            AXIS_COLOUR,
            x_label,
        );
        let (lx, ly) = (self.x - 44.0, self.y + self.h / 2.0);
        svg.text(lx, ly, 12.0, Anchor::Middle, -90.0, AXIS_COLOUR, y_label);
    }
}

fn span(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        })
}

fn legend(svg: &mut Svg, x: f64, y: f64, entries: &[(&str, &str)]) {
    for (i, (colour, label)) in entries.iter().enumerate() {
        let y = y + 16.0 * i as f64;
        svg.line(x, y - 4.0, x + 18.0, y - 4.0, colour, 2.5);
        svg.text(x + 24.0, y, 11.0, Anchor::Start, 0.0, AXIS_COLOUR, label);
    }
}

/// The training-curves picture: loss against epochs (training loss per log interval, test loss
/// per epoch) on the left, test accuracy per epoch on the right.
pub fn training_curves(train: &[TrainPoint], test: &[TestPoint], title: &str) -> String {
    let (w, h) = (960.0, 440.0);
    let mut svg = Svg::new(w, h);
    svg.text(w / 2.0, 24.0, 15.0, Anchor::Middle, 0.0, "black", title);

    let last_epoch = test.iter().map(|t| t.epoch as f64).fold(1.0, f64::max);
    let (_, last_point) = span(train.iter().map(|p| p.epoch));
    let x_range = (0.0, last_point.max(last_epoch));
    let losses = train
        .iter()
        .map(|p| p.loss)
        .chain(test.iter().map(|t| t.loss));
    let (lo, hi) = span(losses);
    let y_range = if lo.is_finite() {
        (0.0, hi)
    } else {
        (0.0, 1.0)
    };
    let left = Panel::new(80.0, 50.0, 360.0, 320.0, x_range, y_range);
    left.draw_axes(&mut svg, "epoch", "cross-entropy loss");
    let finite = |(x, y): (f64, f64)| x.is_finite() && y.is_finite();
    let train_line: Vec<(f64, f64)> = train
        .iter()
        .map(|p| (left.px(p.epoch), left.py(p.loss)))
        .filter(|p| finite(*p))
        .collect();
    svg.polyline(&train_line, TRAIN_COLOUR, 1.5, "train-loss");
    let test_line: Vec<(f64, f64)> = test
        .iter()
        .map(|t| (left.px(t.epoch as f64), left.py(t.loss)))
        .filter(|p| finite(*p))
        .collect();
    svg.polyline(&test_line, TEST_COLOUR, 2.0, "test-loss");
    for &(x, y) in &test_line {
        svg.circle(x, y, 3.5, TEST_COLOUR, "test-loss-point");
    }
    legend(
        &mut svg,
        left.x + left.w - 150.0,
        left.y + 16.0,
        &[
            (TRAIN_COLOUR, "training loss (batch)"),
            (TEST_COLOUR, "test loss (epoch)"),
        ],
    );

    let (acc_lo, acc_hi) = span(test.iter().map(|t| 100.0 * t.accuracy));
    let acc_range = if acc_lo.is_finite() {
        ((acc_lo - 2.0).max(0.0), (acc_hi + 2.0).min(100.0))
    } else {
        (0.0, 100.0)
    };
    let right = Panel::new(560.0, 50.0, 360.0, 320.0, (0.0, last_epoch), acc_range);
    right.draw_axes(&mut svg, "epoch", "test accuracy (%)");
    let acc_line: Vec<(f64, f64)> = test
        .iter()
        .map(|t| (right.px(t.epoch as f64), right.py(100.0 * t.accuracy)))
        .filter(|p| finite(*p))
        .collect();
    svg.polyline(&acc_line, TEST_COLOUR, 2.0, "test-accuracy");
    for (&(x, y), t) in acc_line.iter().zip(test) {
        svg.circle(x, y, 3.5, TEST_COLOUR, "test-accuracy-point");
        let label = format!("{:.2}", 100.0 * t.accuracy);
        svg.text(x, y - 8.0, 10.0, Anchor::Middle, 0.0, AXIS_COLOUR, &label);
    }
    svg.finish(title)
}

/// White to dark blue as `t` goes from 0 to 1.
fn heat(t: f64) -> String {
    let t = t.clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        lerp(255.0, 8.0),
        lerp(255.0, 48.0),
        lerp(255.0, 107.0)
    )
}

/// The evaluation picture: the confusion matrix (rows: true class, columns: predicted class,
/// each cell shaded by its share of the row and labelled with its count) and up to
/// `max_mistakes` misclassified images with their labels.
pub fn evaluation_picture(
    confusion: &[[u64; 10]; 10],
    names: &[&str; 10],
    mistakes: &[Mistake<'_>],
    max_mistakes: usize,
    title: &str,
) -> String {
    let cell = 44.0;
    let (mx, my) = (170.0, 100.0);
    let grid_cols = 10usize;
    let shown = mistakes.len().min(max_mistakes);
    let grid_rows = shown.div_ceil(grid_cols);
    let tile = (64.0, 94.0);
    let grid_top = my + 10.0 * cell + 70.0;
    let w = mx + 10.0 * cell + 150.0;
    let h = grid_top + 30.0 + grid_rows as f64 * tile.1 + 20.0;
    let w = w.max(40.0 + grid_cols as f64 * tile.0);
    let mut svg = Svg::new(w, h);
    svg.text(w / 2.0, 24.0, 15.0, Anchor::Middle, 0.0, "black", title);
    let (mid, bottom) = (mx + 5.0 * cell, my + 10.0 * cell);
    svg.text(
        mid,
        44.0,
        12.0,
        Anchor::Middle,
        0.0,
        AXIS_COLOUR,
        "predicted class",
    );
    let (lx, ly) = (16.0, my + 5.0 * cell);
    svg.text(
        lx,
        ly,
        12.0,
        Anchor::Middle,
        -90.0,
        AXIS_COLOUR,
        "true class",
    );

    for (c, name) in names.iter().enumerate() {
        let y = my + (c as f64 + 0.5) * cell + 4.0;
        svg.text(mx - 8.0, y, 11.0, Anchor::End, 0.0, AXIS_COLOUR, name);
        let x = mx + (c as f64 + 0.5) * cell;
        svg.text(x, my - 8.0, 11.0, Anchor::Start, -35.0, AXIS_COLOUR, name);
    }
    for (t, row) in confusion.iter().enumerate() {
        let total: u64 = row.iter().sum();
        for (p, &count) in row.iter().enumerate() {
            let share = if total == 0 {
                0.0
            } else {
                count as f64 / total as f64
            };
            let (x, y) = (mx + p as f64 * cell, my + t as f64 * cell);
            let tip = format!(
                "true {}, predicted {}: {count} ({:.1}% of the row)",
                names[t],
                names[p],
                100.0 * share
            );
            svg.rect(x, y, cell, cell, &heat(share), Some("#ffffff"), Some(&tip));
            let ink = if share > 0.5 { "white" } else { "black" };
            let (cx, cy) = (x + cell / 2.0, y + cell / 2.0 + 4.0);
            svg.text(cx, cy, 11.0, Anchor::Middle, 0.0, ink, &count.to_string());
        }
        let recall = if total == 0 {
            "-".to_string()
        } else {
            format!("{:.1}%", 100.0 * row[t] as f64 / total as f64)
        };
        let (rx, ry) = (mx + 10.0 * cell + 10.0, my + (t as f64 + 0.5) * cell + 4.0);
        svg.text(rx, ry, 11.0, Anchor::Start, 0.0, AXIS_COLOUR, &recall);
    }
    let (rx, ry) = (mx + 10.0 * cell + 10.0, my - 8.0);
    svg.text(rx, ry, 11.0, Anchor::Start, 0.0, AXIS_COLOUR, "recall");

    let caption = format!(
        "{} misclassified test image{} (first {shown} shown): true / predicted",
        mistakes.len(),
        if mistakes.len() == 1 { "" } else { "s" }
    );
    svg.text(
        20.0,
        bottom + 50.0,
        13.0,
        Anchor::Start,
        0.0,
        "black",
        &caption,
    );
    for (i, m) in mistakes.iter().take(shown).enumerate() {
        let x = 20.0 + (i % grid_cols) as f64 * tile.0;
        let y = grid_top + 10.0 + (i / grid_cols) as f64 * tile.1;
        if m.pixels.len() == 28 * 28 {
            svg.image(x + 4.0, y, 56.0, 56.0, &data_uri(28, 28, m.pixels));
        }
        let name = |c: usize| names.get(c).copied().unwrap_or("?");
        let (cx, line) = (x + 32.0, y + 70.0);
        svg.text(cx, line, 9.0, Anchor::Middle, 0.0, "#2ca02c", name(m.truth));
        svg.text(
            cx,
            line + 12.0,
            9.0,
            Anchor::Middle,
            0.0,
            TEST_COLOUR,
            name(m.predicted),
        );
    }
    svg.finish(title)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let t = ticks(0.0, 1.0, 5);
        assert_eq!(t.len(), 6);
        for (i, v) in t.iter().enumerate() {
            assert!((v - 0.2 * i as f64).abs() < 1e-12, "{t:?}");
        }
        let t = ticks(0.13, 2.31, 5);
        assert!(t[0] <= 0.13 && *t.last().unwrap() >= 2.31);
        assert!((t[1] - t[0] - 0.5).abs() < 1e-12);
        assert_eq!(ticks(3.0, 3.0, 5), vec![3.0]);
        assert_eq!(ticks(f64::NAN, 1.0, 5), vec![0.0]);
    }

    fn assert_well_formed(doc: &str) {
        if let Err(e) = crate::plot::svg::well_formed(doc) {
            panic!("{e}");
        }
    }

    #[test]
    fn training_curves_hold_both_panels_and_every_epoch() {
        let train: Vec<TrainPoint> = (0..30)
            .map(|i| TrainPoint {
                epoch: i as f64 / 10.0,
                loss: 2.3 / (1.0 + i as f64 / 5.0),
            })
            .collect();
        let test = [1, 2, 3].map(|e| TestPoint {
            epoch: e,
            loss: 0.6 - 0.1 * e as f64,
            accuracy: 0.7 + 0.05 * e as f64,
        });
        let doc = training_curves(&train, &test, "LeNet-5 <run>");
        assert_well_formed(&doc);
        assert_eq!(doc.matches("class=\"train-loss\"").count(), 1);
        assert_eq!(doc.matches("class=\"test-loss-point\"").count(), 3);
        assert_eq!(doc.matches("class=\"test-accuracy-point\"").count(), 3);
        for label in ["epoch", "cross-entropy loss", "test accuracy (%)", "85.00"] {
            assert!(doc.contains(&format!(">{label}<")), "{label} missing");
        }
        assert!(doc.contains("LeNet-5 &lt;run&gt;"));
        // A diverged run still draws: non-finite points are left out.
        let bad = [TrainPoint {
            epoch: 0.0,
            loss: f64::NAN,
        }];
        assert_well_formed(&training_curves(&bad, &[], "empty"));
    }

    #[test]
    fn evaluation_picture_has_every_cell_name_and_mistake() {
        let names = [
            "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
        ];
        let mut confusion = [[0u64; 10]; 10];
        for (t, row) in confusion.iter_mut().enumerate() {
            row[t] = 90;
            row[(t + 1) % 10] = 10;
        }
        let pixels = vec![128u8; 784];
        let mistakes: Vec<Mistake> = (0..25)
            .map(|i| Mistake {
                pixels: &pixels,
                truth: i % 10,
                predicted: (i + 1) % 10,
            })
            .collect();
        let doc = evaluation_picture(&confusion, &names, &mistakes, 20, "eval");
        assert_well_formed(&doc);
        assert_eq!(doc.matches("<rect x=").count(), 100);
        assert_eq!(doc.matches(">90<").count(), 10);
        assert_eq!(doc.matches("data:image/png;base64,").count(), 20);
        assert!(doc.contains("25 misclassified test images (first 20 shown)"));
        assert!(doc.contains("true three, predicted four: 10 (10.0% of the row)"));
        for n in names {
            assert!(doc.contains(&format!(">{n}<")), "{n} missing");
        }
    }

    #[test]
    fn heat_runs_from_white_to_dark_blue() {
        assert_eq!(heat(0.0), "#ffffff");
        assert_eq!(heat(1.0), "#08306b");
        assert_eq!(heat(7.0), "#08306b");
    }
}
