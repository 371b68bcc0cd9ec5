//! Binary shim: all logic lives in the `darkwatch_agent` library.

fn main() -> std::process::ExitCode {
    darkwatch_agent::cli::main()
}
