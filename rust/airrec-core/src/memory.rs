//! Transparent huge pages for the large folded arrays.
//!
//! A request touches candidate rows and key/value rows scattered over ~100 MB; with 4 KiB pages
//! most of those touches also miss the TLB. Where the kernel offers transparent huge pages on
//! request (`madvise` mode, the common default), asking for them before the arrays are first
//! written lets the kernel back them with 2 MiB pages.

/// Advises the kernel to back `data` with huge pages. Call it on freshly allocated, not yet
/// written memory; a no-op where unsupported, and harmless if refused.
pub fn advise_huge_pages(data: &mut [f32]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = data.as_mut_ptr() as usize;
        let end = start + std::mem::size_of_val(data);
        let aligned_start = start.div_ceil(HUGE) * HUGE;
        let aligned_end = end / HUGE * HUGE;
        if aligned_end > aligned_start {
            // SAFETY: the range lies inside `data`'s allocation and is 2 MiB aligned; the advice
            // changes only how pages are backed, never their contents.
            unsafe {
                libc::madvise(aligned_start as *mut libc::c_void, aligned_end - aligned_start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = data;
}
