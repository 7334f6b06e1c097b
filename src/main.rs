//! The `codeintel-enrich` binary: parses the command line and hands over to the library.

fn main() -> std::process::ExitCode {
    codeintel_enrich::cli::main()
}
