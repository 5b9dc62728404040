//! Process settings under which the kernels run well, for programs to apply at start-up (before any thread
//! exists): the `ebm-train` binary, `cargo xtask bench`, examples and tests that time or train.

/// glibc's allocator, bounded: freed memory up to 64 MiB is kept at the top of a heap (and 16 MiB more is taken
/// on each growth) so that a Langevin loop, which allocates and frees the same few tensor sizes thousands of times
/// a second, does not fault fresh pages in on every step; blocks from 32 MiB up are mapped on their own and
/// returned when freed; and there are at most two heaps ("arenas") per CPU instead of glibc's eight, so freed
/// memory cannot pile up in many heaps at once. Measured on the default run (docs/BENCHMARKS.md, "Memory"): the same
/// wall time as glibc's defaults within noise, peak resident memory under 200 MB. A no-op off glibc.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters.
    unsafe {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i32;
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TOP_PAD, 16 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 2 * cpus);
    }
}

/// Thread counts, unless the user set them:
/// - `CANDLE_NUM_THREADS=1`: candle runs large elementwise operations on a pool of its own whose threads spin while
///   they wait; on a machine with few cores they starve our rayon kernels (measured: a digits iteration 8.5 s
///   instead of 0.9 s on 2 cores), so candle's elementwise operations stay on the calling thread;
/// - `RAYON_NUM_THREADS` = the CPUs this process may use (rayon's own default): without it candle 0.11 counts the
///   physical cores by parsing `/proc/cpuinfo` on every matrix product (measured: 10% of a toy run).
///
/// Both are read when first needed, so call this before any candle or rayon work; it writes the process
/// environment, so call it while the program has one thread.
pub fn default_thread_counts() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}
