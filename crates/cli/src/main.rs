//! The `fal` command. Everything lives in the library; this only runs it.
#![forbid(unsafe_code)]

/// mimalloc: glibc's malloc cost a tenth of the gateway's CPU under load,
/// much of it in arena contention between worker threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    fal_cli::main()
}
