//! The `prov` binary: everything lives in the library; this only turns its result into an exit code.

// Functions read as what they do (clippy.toml: 100 lines); a longer one says why it is allowed.
#![warn(clippy::too_many_lines)]

/// mimalloc, with large zeroed blocks fresh from the OS: see `prov::alloc`.
#[global_allocator]
static GLOBAL: prov::alloc::Allocator = prov::alloc::Allocator;

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(prov::run())
}
