//! `simdnet`: train, evaluate and inspect LeNet-5 from the command line. `simdnet --help` lists
//! the commands; the parsing, the usage texts and the commands are in `cli/`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
