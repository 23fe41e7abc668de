//! Giving freed heap memory back to the operating system.
//!
//! glibc's allocator keeps what a burst freed (a million-series listing,
//! four 49 MB bodies decoded at once) in its arenas for reuse: the server's
//! RSS stayed at its peak long after the burst, which reads as a leak to
//! whoever watches it and is memory the page cache cannot use. Every few
//! seconds the background loop asks glibc to hand free pages back
//! (`malloc_trim(0)`: the top of each arena is released and free pages
//! inside it are `MADV_DONTNEED`ed). On an idle heap the call finds little
//! to do and takes well under a millisecond; it runs on a blocking thread.
//!
//! Other targets (musl, macOS) have allocators that return memory on their
//! own; there this is a no-op. See ARCHITECTURE.md ("Why these
//! dependencies") for why this rather than another allocator.

use std::time::Duration;

/// How often freed memory is given back.
pub const TRIM_EVERY: Duration = Duration::from_secs(5);

/// Hands the allocator's free pages back to the operating system.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // Safety: malloc_trim only releases memory the allocator holds free; it
    // takes the arenas' own locks and is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}
