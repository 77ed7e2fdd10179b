//! Inference threads: tract runs one thread unless a thread's work is wrapped in a pool of its
//! own, which parallelises its matrix products.

use std::sync::Arc;

use tract_linalg::multithread::{Executor, multithread_tract_scope};

/// Runs `f` with tract's matrix products spread over `threads` threads (named after `name`); one
/// thread, or a pool that cannot be built, runs `f` as is.
pub fn with_threads<R>(threads: usize, name: &str, f: impl FnOnce() -> R) -> R {
    if threads <= 1 {
        return f();
    }
    let prefix = name.to_owned();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |i| format!("{prefix}-{i}"))
        .build();
    match pool {
        Ok(pool) => multithread_tract_scope(Executor::MultiThread(Arc::new(pool)), f),
        Err(e) => {
            tracing::warn!("cannot start {threads} inference threads ({e}); using one");
            f()
        }
    }
}
