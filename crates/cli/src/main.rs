//! The `fal` command. Everything lives in the library; this only runs it.
#![forbid(unsafe_code)]

use std::time::Duration;

/// mimalloc: glibc's malloc cost a tenth of the gateway's CPU under load,
/// much of it in arena contention between worker threads. Built without
/// transparent huge pages (feature `no_thp`): with them every idle
/// connection cost twice the memory, its pages rounded up to 2 MiB ones.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How often [`nudge_allocator`] wakes the allocator.
const NUDGE_EVERY: Duration = Duration::from_secs(2);
/// A block above mimalloc's largest size class: it gets pages of its own,
/// and freeing them runs mimalloc's purge of memory freed earlier. Only
/// reserved, never touched, so it costs no resident memory.
const NUDGE_BLOCK: usize = 64 << 20;

fn main() -> std::process::ExitCode {
    nudge_allocator();
    fal_cli::main()
}

/// Gives freed memory back to the system even when the server goes quiet.
/// mimalloc returns freed pages to the system a second after they are freed
/// (its purge delay), but only from inside a later allocator call that
/// frees pages: once a burst of connections has closed and the workers are
/// idle, no such call comes and the memory stays resident. A thread of its
/// own allocates and frees a large block every two seconds, which makes
/// that call. (Calling `mi_collect` would need unsafe code.)
fn nudge_allocator() {
    let spawned = std::thread::Builder::new()
        .name("fal-alloc-nudge".into())
        .spawn(|| {
            loop {
                std::thread::sleep(NUDGE_EVERY);
                drop(std::hint::black_box(Vec::<u8>::with_capacity(NUDGE_BLOCK)));
            }
        });
    // Without the thread the server still runs; it keeps more memory.
    drop(spawned);
}
