//! How the program's process holds the memory it frees.
//!
//! glibc's `malloc` gives blocks from 128 KiB up their own fresh mappings
//! and unmaps them on `free` (raising that bound as it sees such blocks
//! freed, to at most 32 MiB), and hands the top of its heap back to the
//! system once 128 KiB are free there. A training step allocates and frees
//! activation-sized buffers dozens of times: each then returns as new pages,
//! faulted in one at a time, and each unmapping interrupts every thread to
//! flush its address translations. [`keep_freed_memory`] has glibc serve
//! blocks up to 32 MiB from its heap and keep the heap.
//!
//! Measured on the default U-Net's training step (128x128, batch 4, 2
//! threads, `cargo bench --profile dev --bench bench -- unet --backend ..`,
//! the same build with and without it, alternating, 2026-11-30, 2-core AMD
//! EPYC Zen 5): on ndarray 469 000 page faults and 178-188 ms a step
//! before, 45 000 and 134-140 ms after; on flex no change outside the noise
//! (110-127 ms against 114-121); peak resident memory the same (191-196
//! MiB). mimalloc as the global allocator measured like glibc's defaults
//! (181-187 ms on ndarray).

/// Keeps freed memory in the process for its next allocations (glibc on
/// Linux; elsewhere nothing changes). Call it once, at the start of a program.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const LARGEST_FROM_HEAP: libc::c_int = 32 << 20;
        const KEPT_AT_HEAP_TOP: libc::c_int = 1 << 30;
        // SAFETY: `mallopt` sets allocator parameters under the allocator's
        // own lock; any thread may call it at any time.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, LARGEST_FROM_HEAP);
            libc::mallopt(libc::M_TRIM_THRESHOLD, KEPT_AT_HEAP_TOP);
        }
    }
}
