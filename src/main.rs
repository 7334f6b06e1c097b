//! The `codeintel-enrich` binary: parses the command line and hands over to the library.

/// mimalloc instead of the system allocator: a build allocates and frees millions of small
/// objects (syntax trees, rows, Arrow buffers) on every core, where glibc's malloc spent
/// about a third of a cold build's samples in its own bookkeeping (`perf`, standard library).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    codeintel_enrich::cli::main()
}
