use clap::Parser;

/// glibc returns freed memory to the kernel eagerly; a Langevin loop allocates and frees the same few tensor
/// sizes thousands of times a second, so every step would fault fresh pages in again (measured: a third of the
/// toy trainer's time). Keep freed memory in the process instead.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: mallopt only changes allocator parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

/// candle runs large elementwise operations on a pool of its own whose threads spin while they wait; on a machine
/// with few cores they starve our rayon kernels (measured: a digits iteration 8.5 s instead of 0.9 s on 2 cores).
/// Unless the user chose otherwise, candle's elementwise operations stay on the calling thread.
fn keep_candle_single_threaded() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
}

/// candle 0.11 asks for its thread count on every matrix product, and without `RAYON_NUM_THREADS` it counts the
/// physical cores by reading and parsing `/proc/cpuinfo` each time (measured: 10% of the toy trainer's time, most
/// of its system time). Fix the count once: rayon's own default, the number of CPUs this process may use.
fn pin_thread_count() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", n.to_string()) };
    }
}

fn main() -> std::process::ExitCode {
    tune_allocator();
    keep_candle_single_threaded();
    pin_thread_count();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    let cli = ebm_train::cli::Cli::parse();
    match ebm_train::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
