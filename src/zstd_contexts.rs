//! Reused zstd contexts: the Parquet writer's compressors and decompressors come from a pool.
//!
//! parquet-rs makes a zstd compressor *and* a decompressor for every column chunk it writes
//! (the standard library's dataset has ~17,000 column chunks). Making a context executes
//! `cpuid` three times, and under a hypervisor every `cpuid` traps to it: measured on this
//! project's 2-core VM, creating contexts was 6% of a cold build's CPU while compressing was
//! 0.3%. The linker's `--wrap` (set by `build.rs`, Linux only) routes every
//! `ZSTD_createCCtx`/`ZSTD_freeCCtx`/`ZSTD_createDCtx`/`ZSTD_freeDCtx` call of the Rust code
//! here: a freed context is reset to its initial state (session *and* parameters, which also
//! drops any dictionary) and handed to the next create.
//!
//! zstd's output is a function of the parameters and the input, never of a context's history,
//! so the bytes are unchanged (the dataset's byte-identity tests compare builds, and jobs 1
//! and 2). DuckDB's bundled zstd lives in its own C++ namespace and is not affected.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use zstd_sys::{ZSTD_CCtx, ZSTD_DCtx, ZSTD_ResetDirective};

/// Contexts kept per kind, at most: more than the column writers a build holds at once on a
/// few cores (a `modules` file has 48 columns), few enough that idle ones cost little memory.
const KEPT: usize = 256;

/// Free contexts of one kind, as addresses (a context is plain memory, owned by whoever
/// popped it).
struct Pool(Mutex<Vec<usize>>);

impl Pool {
    const fn new() -> Self {
        Pool(Mutex::new(Vec::new()))
    }

    /// A kept context (already in its initial state), else a new one from `make`.
    fn take_or<T>(&self, make: impl FnOnce() -> *mut T) -> *mut T {
        let kept = self.0.lock().unwrap_or_else(|e| e.into_inner()).pop();
        kept.map_or_else(
            || {
                MADE.fetch_add(1, Ordering::Relaxed);
                make()
            },
            |context| context as *mut T,
        )
    }

    /// Takes back `context`: kept when `reset` succeeds and the pool has room, else freed with
    /// `free` (a context that could not be reset is never reused). Returns zstd's result.
    fn give_back<T>(&self, context: *mut T, reset: impl FnOnce() -> usize, free: impl FnOnce() -> usize) -> usize {
        if context.is_null() {
            return 0;
        }
        // SAFETY: `ZSTD_isError` only inspects a result code.
        if unsafe { zstd_sys::ZSTD_isError(reset()) } != 0 {
            return free();
        }
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= KEPT {
            drop(kept);
            return free();
        }
        kept.push(context as usize);
        0
    }
}

static COMPRESSORS: Pool = Pool::new();
static DECOMPRESSORS: Pool = Pool::new();

/// Contexts zstd made (not taken from a pool), both kinds: what the pool saves is visible.
static MADE: AtomicUsize = AtomicUsize::new(0);

/// How many contexts zstd itself has made in this process.
pub fn contexts_made() -> usize {
    MADE.load(Ordering::Relaxed)
}

unsafe extern "C" {
    fn __real_ZSTD_createCCtx() -> *mut ZSTD_CCtx;
    fn __real_ZSTD_freeCCtx(cctx: *mut ZSTD_CCtx) -> usize;
    fn __real_ZSTD_createDCtx() -> *mut ZSTD_DCtx;
    fn __real_ZSTD_freeDCtx(dctx: *mut ZSTD_DCtx) -> usize;
}

// SAFETY (all four): the constructors are zstd's own and return null or a valid context; a
// freed context is one the caller gives up, and resetting it (session and parameters, which
// also drops a dictionary) is zstd's documented way to start over.

/// `ZSTD_createCCtx`: a pooled context, else a new one.
#[unsafe(no_mangle)]
pub extern "C" fn __wrap_ZSTD_createCCtx() -> *mut ZSTD_CCtx {
    COMPRESSORS.take_or(|| unsafe { __real_ZSTD_createCCtx() })
}

/// `ZSTD_freeCCtx`: the context reset and kept, or freed.
///
/// # Safety
/// `cctx` is null or a context from `ZSTD_createCCtx` that the caller no longer uses.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __wrap_ZSTD_freeCCtx(cctx: *mut ZSTD_CCtx) -> usize {
    COMPRESSORS.give_back(
        cctx,
        || unsafe { zstd_sys::ZSTD_CCtx_reset(cctx, ZSTD_ResetDirective::ZSTD_reset_session_and_parameters) },
        || unsafe { __real_ZSTD_freeCCtx(cctx) },
    )
}

/// `ZSTD_createDCtx`: a pooled context, else a new one.
#[unsafe(no_mangle)]
pub extern "C" fn __wrap_ZSTD_createDCtx() -> *mut ZSTD_DCtx {
    DECOMPRESSORS.take_or(|| unsafe { __real_ZSTD_createDCtx() })
}

/// `ZSTD_freeDCtx`: the context reset and kept, or freed.
///
/// # Safety
/// `dctx` is null or a context from `ZSTD_createDCtx` that the caller no longer uses.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __wrap_ZSTD_freeDCtx(dctx: *mut ZSTD_DCtx) -> usize {
    DECOMPRESSORS.give_back(
        dctx,
        || unsafe { zstd_sys::ZSTD_DCtx_reset(dctx, ZSTD_ResetDirective::ZSTD_reset_session_and_parameters) },
        || unsafe { __real_ZSTD_freeDCtx(dctx) },
    )
}

#[cfg(test)]
mod tests {
    /// A compressor reused after a different level and a dictionary gives the bytes a fresh
    /// one gives, and the pool hands back the context it kept.
    #[test]
    fn a_reused_context_compresses_like_a_fresh_one() {
        let data: Vec<u8> = (0..50_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let fresh = zstd::bulk::Compressor::new(3).unwrap().compress(&data).unwrap();
        let used = {
            let mut c = zstd::bulk::Compressor::with_dictionary(19, b"some dictionary bytes").unwrap();
            c.compress(&data).unwrap();
            c
        };
        drop(used);
        drop(zstd::bulk::Decompressor::new().unwrap());
        let made = super::contexts_made();
        let again = zstd::bulk::Compressor::new(3).unwrap().compress(&data).unwrap();
        assert_eq!(fresh, again);
        let back = zstd::bulk::Decompressor::new().unwrap().decompress(&again, data.len()).unwrap();
        assert_eq!(back, data);
        // The second compressor and the decompressor both came from the pools.
        assert_eq!(super::contexts_made(), made, "no new context was made");
    }
}
