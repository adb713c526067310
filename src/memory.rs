//! Memory limits for playbooks: `amsplay run --max-memory MB` caps the process's data
//! (`RLIMIT_DATA`), sizes Rhai's own data limits from it, and the binary's allocator says
//! clearly what happened when an allocation fails anyway, instead of Rust's bare abort.
//!
//! Child processes (Azurite, the emulators, ffmpeg) get the limits amsplay started with
//! ([`unlimit_child`]), never the playbook's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

/// Exit code after an allocation failed (EX_OSERR's neighbour; not 134, there is no core).
pub const OUT_OF_MEMORY_EXIT: i32 = 71;

/// The limit set by [`limit`], in bytes (0: none).
static LIMIT: AtomicU64 = AtomicU64::new(0);
/// `RLIMIT_DATA` as it was before [`limit`], restored in children.
static ORIGINAL: (AtomicU64, AtomicU64) = (AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX));

/// Caps this process's data at `bytes` (heap and private mappings).
pub fn limit(bytes: u64) -> std::io::Result<()> {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read only the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_DATA, &mut old) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let new = libc::rlimit {
        rlim_cur: bytes.min(old.rlim_max),
        rlim_max: old.rlim_max,
    };
    if unsafe { libc::setrlimit(libc::RLIMIT_DATA, &new) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    ORIGINAL.0.store(old.rlim_cur, Ordering::Relaxed);
    ORIGINAL.1.store(old.rlim_max, Ordering::Relaxed);
    LIMIT.store(bytes, Ordering::Relaxed);
    Ok(())
}

/// Large blocks go back to the system when freed: glibc's mmap threshold is fixed at 128 KiB
/// instead of rising to the size of the largest block freed (its default), which kept freed
/// fragment bodies in the heap and let a server's memory grow to about twice its cache
/// budget (`bench/origin_memory`: 60 MB over a 32 MiB budget with the default, 34 MB fixed).
pub fn return_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter.
    unsafe {
        if libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1 {
            LARGE_BLOCKS_MAPPED.store(true, Ordering::Relaxed);
        }
    }
}

/// The mmap threshold `return_large_blocks` fixes.
const MMAP_THRESHOLD: usize = 128 << 10;

/// Whether every block of `MMAP_THRESHOLD` or more is a mapping of its own (so advice given
/// for one never reaches the heap the small allocations share).
static LARGE_BLOCKS_MAPPED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Asks the kernel to back the 2 MiB-aligned part of a large buffer about to be filled with
/// huge pages (where transparent huge pages are on `madvise`, as Debian ships them): filling
/// it then takes a page fault per 2 MiB instead of one per 4 KiB, which was about half of a
/// cold origin's CPU (reads of several megabytes into fresh buffers). Only advice: nothing
/// changes where the kernel cannot or will not. Given only in a process whose large blocks
/// are mappings of their own (`return_large_blocks`, as `serve` sets): elsewhere the buffer
/// may lie in the shared heap, whose small allocations the advice would reach too.
pub fn prefer_huge_pages(buf: &mut [std::mem::MaybeUninit<u8>]) {
    #[cfg(target_os = "linux")]
    if LARGE_BLOCKS_MAPPED.load(Ordering::Relaxed) && buf.len() >= MMAP_THRESHOLD {
        const HUGE: usize = 2 << 20;
        let start = buf.as_mut_ptr() as usize;
        let (from, to) = (
            start.next_multiple_of(HUGE),
            (start + buf.len()) / HUGE * HUGE,
        );
        if to > from {
            // SAFETY: the range lies inside `buf`, which this process owns; MADV_HUGEPAGE only
            // changes how the kernel backs those pages, never their contents.
            unsafe {
                libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = buf;
}

/// Gives a child process the data limit amsplay started with.
pub fn unlimit_child(cmd: &mut std::process::Command) {
    if LIMIT.load(Ordering::Relaxed) == 0 {
        return;
    }
    let original = libc::rlimit {
        rlim_cur: ORIGINAL.0.load(Ordering::Relaxed),
        rlim_max: ORIGINAL.1.load(Ordering::Relaxed),
    };
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe; nothing is allocated between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::setrlimit(libc::RLIMIT_DATA, &original);
            Ok(())
        });
    }
}

/// The system allocator, saying what failed before the process ends.
pub struct Allocator;

// SAFETY: every call is forwarded to `System` unchanged.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            out_of_memory(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            out_of_memory(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            out_of_memory(new_size);
        }
        p
    }
}

/// Writes one line to stderr without allocating, and ends the process.
fn out_of_memory(size: usize) -> ! {
    let mut line = [0u8; 512];
    let mut w = Writer {
        buf: &mut line,
        at: 0,
    };
    w.put(b"amsplay: out of memory: ");
    w.num(size as u64);
    w.put(b" bytes could not be allocated");
    match LIMIT.load(Ordering::Relaxed) {
        0 => w.put(b" (the machine has no memory left)"),
        limit => {
            w.put(b" under --max-memory ");
            w.num(limit >> 20);
            w.put(b" MiB");
        }
    }
    w.put(b". The playbook holds more data than allowed: keep less in memory, or raise --max-memory. A local environment this run started may still be running: `amsplay local down`.\n");
    let len = w.at;
    // SAFETY: writes `len` initialised bytes of `line` to fd 2, then exits without unwinding
    // (which could allocate again).
    unsafe {
        libc::write(2, line.as_ptr().cast(), len);
        libc::_exit(OUT_OF_MEMORY_EXIT)
    }
}

struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, s: &[u8]) {
        let n = s.len().min(self.buf.len() - self.at);
        self.buf[self.at..self.at + n].copy_from_slice(&s[..n]);
        self.at += n;
    }

    fn num(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.put(&digits[i..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_written_without_allocating() {
        let mut buf = [0u8; 64];
        let mut w = Writer {
            buf: &mut buf,
            at: 0,
        };
        w.put(b"n=");
        w.num(0);
        w.put(b",");
        w.num(18446744073709551615);
        let at = w.at;
        assert_eq!(&buf[..at], b"n=0,18446744073709551615");
    }
}
