//! The `accelgate` command.
#![deny(unsafe_code)]

fn main() -> std::process::ExitCode {
    accelgate::cli::main()
}
