//! Allocator tuning for training processes. Each step allocates and frees
//! buffers of tens of MB (per-edge radial weights and their gradients); glibc
//! returns such blocks to the kernel at once, so the next step pays page
//! faults and zeroing again (≈ 10–15 % of a step). Keeping freed memory in the
//! heap removes that cost without raising the peak.

/// Makes glibc keep freed blocks up to 32 MB (its maximum) in the heap and
/// trim the heap only above 1 GB of free space. No-op on other platforms.
/// Call once at process start (a trial runner or benchmark); affects the whole process.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocation thresholds; it is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}
