//! The `pollsim` binary; everything lives in the library.

fn main() -> std::process::ExitCode {
    pollsim::cli::main()
}
