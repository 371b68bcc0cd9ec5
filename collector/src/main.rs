//! `darkwatch-collector` binary: glue over the library's CLI.

fn main() -> std::process::ExitCode {
    darkwatch_collector::cli::main()
}
