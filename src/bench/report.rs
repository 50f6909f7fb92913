//! `simdnet bench`'s output: a table for people, written a part at a time as the measurements
//! come in, and one JSON object for scripts.

use super::kernels::Work;
use super::model::{FORWARD_FLOPS, TRAIN_FLOPS};
use super::peak::Peak;
use super::{Machine, ModelRow, Report, Row, Settings, SCALAR_MAX_GEMM};
use simdnet_kernels::Isa;
use std::fmt::Write;

/// Widths of the kernel table's columns: label, shape, unit, and each ISA's cell.
const LABEL: usize = 29;
const SHAPE: usize = 26;
const UNIT: usize = 7;
const CELL: usize = 14;

/// `1234567.8` as `1,234,568`.
fn grouped(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn isa_names(isas: &[Isa]) -> String {
    isas.iter().map(|i| i.name()).collect::<Vec<_>>().join(", ")
}

/// The first lines: the machine and how the figures were taken.
pub fn intro(m: &Machine, s: &Settings) -> String {
    let cpu = m.cpu.as_deref().unwrap_or("unknown CPU");
    let mut t = format!(
        "simdnet bench: {cpu}, {} core{}, {}; ISAs supported: {}\n",
        m.cores,
        if m.cores == 1 { "" } else { "s" },
        m.arch,
        isa_names(&m.isas)
    );
    let _ = writeln!(
        t,
        "Figures: the fastest sample within ~{} ms per kernel and ISA; one thread unless stated.",
        s.kernel_budget().as_millis()
    );
    if s.quick {
        t.push_str("--quick: tiny time budgets, so the figures are rough.\n");
    }
    t
}

fn isa_header(s: &Settings, width: usize) -> String {
    s.isas
        .iter()
        .map(|i| format!("{:>width$}", i.name()))
        .collect()
}

/// The FMA peak of each ISA on one thread and on all threads.
pub fn peak_table(s: &Settings, peaks: &[Peak]) -> String {
    let mut t = format!("\n{:<62}{}\n", "FMA peak, GFLOP/s", isa_header(s, CELL));
    let line = |label: String, value: &dyn Fn(&Peak) -> f64| {
        let cells: String = s
            .isas
            .iter()
            .map(|isa| match peaks.iter().find(|p| p.isa == *isa) {
                Some(p) => format!("{:>CELL$.1}", value(p)),
                None => format!("{:>CELL$}", "-"),
            })
            .collect();
        format!("  {label:<60}{cells}\n")
    };
    t.push_str(&line("1 thread".to_string(), &|p| p.single));
    if s.threads > 1 {
        t.push_str(&line(format!("{} threads", s.threads), &|p| p.multi));
    }
    t
}

/// The kernel table's title and column names.
pub fn kernel_header(s: &Settings) -> String {
    format!(
        "\nKernels at LeNet-5's shapes, batch 64, one thread: GFLOP/s (% of the ISA's one-thread \
         peak) or GB/s\n{:<LABEL$}{:<SHAPE$}{:<UNIT$}{}\n",
        "kernel",
        "shape",
        "unit",
        isa_header(s, CELL)
    )
}

/// One kernel's line.
pub fn kernel_line(row: &Row) -> String {
    let unit = match row.work {
        Work::Flops(_) => "GFLOP/s",
        Work::Bytes(_) => "GB/s",
    };
    let cells: String = row
        .cells
        .iter()
        .map(|c| match c {
            Some(c) => match c.of_peak {
                Some(f) => format!("{:>CELL$}", format!("{:.1} ({:.0}%)", c.rate, 100.0 * f)),
                None => format!("{:>CELL$.1}", c.rate),
            },
            None => format!("{:>CELL$}", "skipped"),
        })
        .collect();
    format!(
        "{:<LABEL$}{:<SHAPE$}{unit:<UNIT$}{cells}\n",
        row.label, row.shape
    )
}

/// Training and evaluation throughput, a line per ISA and thread count.
pub fn model_table(rows: &[ModelRow]) -> String {
    let mut t = format!(
        "\nLeNet-5 on synthetic data: training steps of 64 samples ({:.2} MFLOP per sample) and \
         evaluation ({:.2} MFLOP per image)\n{:<8}{:>8}{:>18}{:>16}{:>12}{:>16}\n",
        TRAIN_FLOPS as f64 / 1e6,
        FORWARD_FLOPS as f64 / 1e6,
        "isa",
        "threads",
        "train samples/s",
        "train GFLOP/s",
        "% of peak",
        "eval images/s"
    );
    for r in rows {
        let of_peak = r
            .train_of_peak
            .map_or("-".to_string(), |f| format!("{:.0}%", 100.0 * f));
        let _ = writeln!(
            t,
            "{:<8}{:>8}{:>18}{:>16.1}{:>12}{:>16}",
            r.isa.name(),
            r.threads,
            grouped(r.train_rate),
            r.train_gflops,
            of_peak,
            grouped(r.eval_rate)
        );
    }
    t
}

/// What the table leaves to footnotes.
pub fn notes(s: &Settings) -> String {
    let mut t = String::from("\nNotes:\n");
    if s.isas.contains(&Isa::Scalar) {
        let _ = write!(
            t,
            "- scalar skips the GEMMs above {SCALAR_MAX_GEMM} (its reference loops take seconds per \
             call). Its peak is\n  plain Rust multiply-adds as built for the baseline target, \
             which the compiler may vectorise\n  (x86-64: SSE2, no FMA).\n"
        );
    }
    t.push_str(
        "- % of peak: a kernel against its ISA's one-thread FMA peak, training against the peak \
         at its\n  thread count. GB/s counts each element read or written once.\n",
    );
    t
}

/// `s` as a JSON string literal.
fn string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number (`null` for a value that is not finite).
fn number(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        "null".to_string()
    }
}

fn optional(x: Option<f64>) -> String {
    x.map_or("null".to_string(), number)
}

fn isa_list(isas: &[Isa]) -> String {
    let names: Vec<String> = isas.iter().map(|i| string(i.name())).collect();
    format!("[{}]", names.join(", "))
}

/// The whole report as one JSON object (pretty-printed, two-space indent).
pub fn json(r: &Report) -> String {
    let m = &r.machine;
    let s = &r.settings;
    let mut j = String::from("{\n");
    let _ = writeln!(
        j,
        "  \"simdnet_version\": {},",
        string(env!("CARGO_PKG_VERSION"))
    );
    let _ = writeln!(
        j,
        "  \"machine\": {{\"cpu\": {}, \"cores\": {}, \"arch\": {}, \"isas\": {}}},",
        m.cpu.as_deref().map_or("null".to_string(), string),
        m.cores,
        string(m.arch),
        isa_list(&m.isas)
    );
    let _ = writeln!(
        j,
        "  \"settings\": {{\"isas\": {}, \"threads\": {}, \"quick\": {}, \"kernel_budget_ms\": {}, \
         \"statistic\": \"best\", \"scalar_max_gemm\": {SCALAR_MAX_GEMM}, \"eval_images\": {}}},",
        isa_list(&s.isas),
        s.threads,
        s.quick,
        s.kernel_budget().as_millis(),
        s.eval_images()
    );
    let peaks: Vec<String> = r
        .peaks
        .iter()
        .map(|p| {
            format!(
                "    {}: {{\"lanes\": {}, \"chains\": {}, \"gflops_1_thread\": {}, \
                 \"gflops_all_threads\": {}, \"threads\": {}}}",
                string(p.isa.name()),
                p.lanes,
                p.chains,
                number(p.single),
                number(p.multi),
                p.threads
            )
        })
        .collect();
    let _ = writeln!(j, "  \"peak\": {{\n{}\n  }},", peaks.join(",\n"));
    let rows: Vec<String> = r.rows.iter().map(|row| kernel_json(row, &s.isas)).collect();
    let _ = writeln!(j, "  \"kernels\": [\n{}\n  ],", rows.join(",\n"));
    let model: Vec<String> = r
        .model
        .iter()
        .map(|m| {
            format!(
                "    {{\"isa\": {}, \"threads\": {}, \"train_samples_per_sec\": {}, \
                 \"train_gflops\": {}, \"train_of_peak\": {}, \"eval_images_per_sec\": {}}}",
                string(m.isa.name()),
                m.threads,
                number(m.train_rate),
                number(m.train_gflops),
                optional(m.train_of_peak),
                number(m.eval_rate)
            )
        })
        .collect();
    let _ = writeln!(j, "  \"model\": [\n{}\n  ],", model.join(",\n"));
    let _ = writeln!(
        j,
        "  \"model_flops_per_image\": {{\"train_step\": {TRAIN_FLOPS}, \"forward\": {FORWARD_FLOPS}}}"
    );
    j.push_str("}\n");
    j
}

fn kernel_json(row: &Row, isas: &[Isa]) -> String {
    let (unit, work) = match row.work {
        Work::Flops(f) => ("GFLOP/s", format!("\"flops\": {f}")),
        Work::Bytes(b) => ("GB/s", format!("\"bytes\": {b}")),
    };
    let results: Vec<String> = isas
        .iter()
        .zip(&row.cells)
        .map(|(isa, cell)| {
            let value = match cell {
                Some(c) => format!(
                    "{{\"seconds_best\": {}, \"seconds_median\": {}, \"rate\": {}, \"of_peak\": {}}}",
                    number(c.best),
                    number(c.median),
                    number(c.rate),
                    optional(c.of_peak)
                ),
                None => "null".to_string(),
            };
            format!("{}: {value}", string(isa.name()))
        })
        .collect();
    format!(
        "    {{\"id\": {}, \"label\": {}, \"shape\": {}, \"unit\": {}, {work}, \"results\": {{{}}}}}",
        string(row.id),
        string(row.label),
        string(&row.shape),
        string(unit),
        results.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::Cell;

    #[test]
    fn numbers_are_grouped_and_strings_escaped() {
        assert_eq!(grouped(1234567.8), "1,234,568");
        assert_eq!(grouped(999.0), "999");
        assert_eq!(grouped(1000.0), "1,000");
        assert_eq!(string("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
        assert_eq!(number(f64::NAN), "null");
        assert_eq!(number(2.5), "2.5");
    }

    #[test]
    fn a_kernel_line_has_one_cell_per_isa() {
        let row = Row {
            id: "x",
            label: "conv1 forward",
            shape: "64x1x28x28".to_string(),
            work: Work::Flops(10),
            cells: vec![
                None,
                Some(Cell {
                    best: 1e-3,
                    median: 2e-3,
                    rate: 61.24,
                    of_peak: Some(0.5),
                }),
            ],
        };
        let line = kernel_line(&row);
        assert!(line.starts_with("conv1 forward "), "{line}");
        assert!(
            line.contains("GFLOP/s") && line.contains("skipped"),
            "{line}"
        );
        assert!(line.trim_end().ends_with("61.2 (50%)"), "{line}");
        let j = kernel_json(&row, &[Isa::Scalar, Isa::Avx2]);
        assert!(j.contains("\"scalar\": null"), "{j}");
        assert!(j.contains("\"avx2\": {\"seconds_best\": 0.001, \"seconds_median\": 0.002"));
        assert!(j.contains("\"flops\": 10"), "{j}");
    }
}
