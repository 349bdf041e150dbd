//! The process's global allocator: mimalloc, with large zeroed blocks taken fresh from the OS.
//!
//! Plans and states are many small JSON values: mimalloc allocates and frees them far faster
//! than glibc's allocator (measured: the no-op plan at 10,000 resources spent ~40 % in
//! malloc/free). Built with `no_thp` (Cargo.toml): its arenas are not advised into transparent
//! huge pages, which faulted in 2 MiB at a time and, in an apply that frees on other threads than
//! it allocates on, stayed resident half-used (10,000 servers, sim: apply 437 → 402 MiB at the
//! same CPU time; at 100,000 the kernel zeroing huge pages was 18 % of an apply's samples). A
//! compile-time choice rather than `PR_SET_THP_DISABLE`, which every process prov starts
//! (providers, scripts, the local provider's servers and what runs on them) would inherit.
//!
//! Why large zeroed blocks bypass mimalloc: opening sled allocates ~22 MB zeroed (its 41 metrics
//! histograms of 512 KiB, which prov never fills, and its page table). mimalloc serves a zeroed
//! request from memory the process already used by writing zeros over it, so after an
//! evaluation had dirtied its arenas every open paid for zeroing and re-faulting all of it
//! (12–20 ms in a test program that first allocated 200 MB; 20–90 ms inside `prov apply`), and
//! the zeros stayed resident. Fresh anonymous pages are zero already: untouched, they cost
//! nothing and never become resident.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Zeroed requests of at least this size (and page alignment at most) are mapped fresh.
const FRESH_MIN: usize = 256 * 1024;
/// How many fresh blocks can be live at once; past that, zeroed requests go to mimalloc again.
const SLOTS: usize = 256;
const PAGE: usize = 4096;

/// The global allocator of `prov` and of the bench probes (so their times and RSS match).
pub struct Allocator;

/// Addresses of the live fresh blocks (0: free slot). Only deallocations of at least
/// `FRESH_MIN` bytes look here, so the common path costs one comparison.
static FRESH: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];

/// The slot noting `ptr` when it is a live fresh block of a `size`-byte layout.
fn fresh_slot(ptr: *mut u8, size: usize) -> Option<&'static AtomicUsize> {
    if size < FRESH_MIN {
        return None;
    }
    FRESH
        .iter()
        .find(|s| s.load(Ordering::Acquire) == ptr as usize)
}

fn mapped_len(size: usize) -> usize {
    size.div_ceil(PAGE) * PAGE
}

/// Maps fresh zero pages for `layout` and notes the block; None when it cannot (no free slot,
/// the mapping failed), and the caller asks mimalloc instead.
fn map_fresh(layout: Layout) -> Option<*mut u8> {
    if layout.size() < FRESH_MIN || layout.align() > PAGE {
        return None;
    }
    let slot = FRESH.iter().position(|s| s.load(Ordering::Relaxed) == 0)?;
    // SAFETY: an anonymous private mapping at an address the kernel chooses; no existing memory
    // is touched.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            mapped_len(layout.size()),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    let addr = p as usize;
    // Another thread may have taken the slot meanwhile: any free one will do.
    let noted = std::iter::once(slot).chain(0..SLOTS).any(|i| {
        FRESH[i]
            .compare_exchange(0, addr, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    });
    if !noted {
        // SAFETY: the mapping made just above, never handed out.
        unsafe { libc::munmap(p, mapped_len(layout.size())) };
        return None;
    }
    Some(p.cast())
}

/// Unmaps `ptr` when it is a fresh block (true), forgetting it.
fn unmap_fresh(ptr: *mut u8, layout: Layout) -> bool {
    let Some(slot) = fresh_slot(ptr, layout.size()) else {
        return false;
    };
    slot.store(0, Ordering::Release);
    // SAFETY: `ptr` is a mapping `map_fresh` made for a block of this layout's size (the caller
    // deallocates with the layout it allocated with) and nothing uses it any more.
    unsafe { libc::munmap(ptr.cast(), mapped_len(layout.size())) };
    true
}

// SAFETY: every block comes from mimalloc or from `map_fresh`; `dealloc` and `realloc` tell
// them apart by the table of fresh blocks, which holds exactly the live mapped ones.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as the caller gave it.
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match map_fresh(layout) {
            Some(p) => p,
            // SAFETY: forwarded as the caller gave it.
            None => unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !unmap_fresh(ptr, layout) {
            // SAFETY: not a fresh block, so mimalloc's.
            unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if fresh_slot(ptr, layout.size()).is_none() {
            // SAFETY: mimalloc's block, forwarded as the caller gave it.
            return unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) };
        }
        // A fresh block moves into mimalloc (growing zeroed blocks is rare: not worth mremap).
        // SAFETY: the caller guarantees `new_size` forms a valid layout with this alignment.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a valid, non-zero-sized layout (new_size > 0 by realloc's contract).
        let new = unsafe { mimalloc::MiMalloc.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live and at least this long; they do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            unmap_fresh(ptr, layout);
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the table of fresh blocks notes `p` (whatever the size).
    fn noted(p: *mut u8) -> bool {
        FRESH
            .iter()
            .any(|s| s.load(Ordering::Acquire) == p as usize)
    }

    #[test]
    fn fresh_blocks_are_zero_and_given_back() {
        let a = Allocator;
        let layout = Layout::from_size_align(FRESH_MIN * 2 + 5, 8).unwrap();
        unsafe {
            let p = a.alloc_zeroed(layout);
            assert!(!p.is_null());
            assert!(noted(p));
            assert!(std::slice::from_raw_parts(p, layout.size())
                .iter()
                .all(|b| *b == 0));
            p.write_bytes(7, layout.size());
            // Grown: moved to mimalloc with its contents, the mapping given back.
            let q = a.realloc(p, layout, layout.size() * 2);
            assert!(!noted(p));
            assert!(std::slice::from_raw_parts(q, layout.size())
                .iter()
                .all(|b| *b == 7));
            a.dealloc(q, Layout::from_size_align(layout.size() * 2, 8).unwrap());
            // Freed in place.
            let r = a.alloc_zeroed(layout);
            a.dealloc(r, layout);
            assert!(!noted(r));
        }
    }

    #[test]
    fn small_and_plain_blocks_stay_with_mimalloc() {
        let a = Allocator;
        let small = Layout::from_size_align(1024, 8).unwrap();
        let big = Layout::from_size_align(FRESH_MIN * 4, 8).unwrap();
        unsafe {
            let p = a.alloc_zeroed(small);
            assert!(!noted(p));
            a.dealloc(p, small);
            let q = a.alloc(big);
            assert!(!noted(q));
            a.dealloc(q, big);
        }
    }
}
