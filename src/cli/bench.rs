//! `simdnet bench`, on the library's [`simdnet::bench`]; its options are parsed in
//! `bench_args.rs`.

use super::args::bench_args::BenchArgs;
use super::args::UsageError;
use super::{output_error, Failure};
use simdnet::bench::{self, kernels, report, Machine, Report, Settings};
use simdnet::kernels::{Isa, Kernels, ISA_ENV_VAR};
use std::io::Write;

/// The ISAs to measure: `--isa`, else `SIMDNET_ISA`, else every ISA this CPU supports.
fn isas(a: &BenchArgs) -> Result<Vec<Isa>, Failure> {
    if let Some(isa) = a.isa {
        return Ok(vec![isa]);
    }
    let set = std::env::var_os(ISA_ENV_VAR).is_some_and(|v| !v.to_string_lossy().trim().is_empty());
    if !set {
        return Ok(Isa::supported());
    }
    match Kernels::from_env() {
        Ok(k) => Ok(vec![k.isa()]),
        Err(e) => Err(Failure::Usage(UsageError::new(
            format!("invalid {ISA_ENV_VAR}: {e}"),
            Some("bench"),
        ))),
    }
}

/// `simdnet bench`.
pub fn run(a: BenchArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let machine = Machine::detect();
    let settings = Settings {
        isas: isas(&a)?,
        threads: a.threads.unwrap_or(machine.cores),
        quick: a.quick,
    };
    if settings.threads > machine.cores {
        super::to_stderr(&format!(
            "warning: --threads {} is more than the {} cores this machine has: the multi-thread \
             figures will share cores\n",
            settings.threads, machine.cores
        ));
    }
    let table = !a.json;
    let mut show = |text: String| -> Result<(), Failure> {
        if table {
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(output_error)?;
        }
        Ok(())
    };
    show(report::intro(&machine, &settings))?;
    let peaks = bench::measure_peaks(&settings);
    show(report::peak_table(&settings, &peaks))?;
    show(report::kernel_header(&settings))?;
    let mut rows = Vec::new();
    for case in kernels::cases() {
        let row = bench::measure_row(&case, &settings, &peaks);
        show(report::kernel_line(&row))?;
        rows.push(row);
    }
    let model = bench::measure_model(&settings, &peaks)?;
    show(report::model_table(&model))?;
    show(report::notes(&settings))?;
    if a.json {
        let r = Report {
            machine,
            settings,
            peaks,
            rows,
            model,
        };
        out.write_all(report::json(&r).as_bytes())
            .map_err(output_error)?;
    }
    Ok(())
}
