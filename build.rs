//! Link settings: on Linux, the Rust code's zstd context constructors and destructors are
//! routed through `src/zstd_contexts.rs` (a pool) with the linker's `--wrap`.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        for symbol in ["ZSTD_createCCtx", "ZSTD_freeCCtx", "ZSTD_createDCtx", "ZSTD_freeDCtx"] {
            println!("cargo::rustc-link-arg=-Wl,--wrap={symbol}");
        }
    }
}
