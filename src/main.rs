//! The `prov` binary: everything lives in the library; this only turns its result into an exit code.

// Functions read as what they do (clippy.toml: 100 lines); a longer one says why it is allowed.
#![warn(clippy::too_many_lines)]

/// Plans and states are many small JSON values: mimalloc allocates and frees them far faster
/// than glibc's allocator (measured: the no-op plan at 10,000 resources spent ~40 % in malloc/free).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    no_huge_pages();
    std::process::ExitCode::from(prov::run())
}

/// Transparent huge pages off for this process (what `MIMALLOC_ALLOW_THP=0` does): mimalloc's
/// arenas otherwise fault in 2 MiB at a time, and an apply that frees on other threads than it
/// allocates on keeps them resident half-used. Measured (10,000 servers, sim): apply 437 → 402
/// MiB at the same CPU time; at 100,000 the kernel zeroing huge pages was 18 % of an apply's
/// samples. Plans are unaffected (10,000, cold and warm: same time and RSS). Inherited by
/// the processes prov starts, which is harmless.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
