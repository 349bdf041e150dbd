//! The `prov` binary: everything lives in the library; this only turns its result into an exit code.

// Functions read as what they do (clippy.toml: 100 lines); a longer one says why it is allowed.
#![warn(clippy::too_many_lines)]

/// Plans and states are many small JSON values: mimalloc allocates and frees them far faster
/// than glibc's allocator (measured: the no-op plan at 10,000 resources spent ~40 % in malloc/free).
/// Built with `no_thp` (Cargo.toml): its arenas are not advised into transparent huge pages,
/// which faulted in 2 MiB at a time and, in an apply that frees on other threads than it
/// allocates on, stayed resident half-used (10,000 servers, sim: apply 437 → 402 MiB at the same
/// CPU time; at 100,000 the kernel zeroing huge pages was 18 % of an apply's samples). A
/// compile-time choice rather than `PR_SET_THP_DISABLE`, which every process prov starts
/// (providers, scripts, the local provider's servers and what runs on them) would inherit.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(prov::run())
}
