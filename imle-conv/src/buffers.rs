//! A process-wide pool of scratch buffers (input copies kept for the backward pass,
//! im2col matrices, max-pool indices), so that a training loop reuses warm memory instead
//! of page-faulting freshly mapped multi-megabyte allocations on every step.
//!
//! A [`Buf`] derefs to a slice of the requested length and goes back to the pool when
//! dropped. The pool keeps at most [`MAX_POOLED_BYTES`] per element type; anything beyond
//! is freed. [`release_buffers`](crate::release_buffers) empties it.

use dfdx::tensor::{Cpu, CpuError, Storage};
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

/// Upper bound on the bytes the pool of one element type keeps while idle.
pub const MAX_POOLED_BYTES: usize = 1 << 30;

/// A pool of vectors. Each vector is fully initialised (`len` is its usable size) and
/// never resized while pooled or lent.
pub(crate) struct Pool<T> {
    free: Mutex<Vec<Vec<T>>>,
}

impl<T: Copy + Default> Pool<T> {
    const fn new() -> Self {
        Pool {
            free: Mutex::new(Vec::new()),
        }
    }

    /// A vector of at least `len` elements (contents unspecified): the smallest pooled one
    /// that is not more than twice too large, else a new one of exactly `len`.
    fn take(&self, len: usize) -> Vec<T> {
        if len == 0 {
            return Vec::new();
        }
        {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            let best = free
                .iter()
                .enumerate()
                .filter(|(_, v)| v.len() >= len && v.len() <= 2 * len)
                .min_by_key(|(_, v)| v.len())
                .map(|(i, _)| i);
            if let Some(i) = best {
                return free.swap_remove(i);
            }
        }
        let mut v = vec![T::default(); len];
        advise_huge(&mut v);
        v
    }

    fn give(&self, v: Vec<T>) {
        if v.is_empty() {
            return;
        }
        let bytes = |v: &Vec<T>| v.len() * std::mem::size_of::<T>();
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let held: usize = free.iter().map(bytes).sum();
        if held + bytes(&v) <= MAX_POOLED_BYTES {
            free.push(v);
        }
    }

    fn clear(&self) {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

static F32: Pool<f32> = Pool::new();
static U32: Pool<u32> = Pool::new();

/// Element types with a pool.
pub(crate) trait Pooled: Copy + Default + Send + 'static {
    #[doc(hidden)]
    fn pool() -> &'static Pool<Self>;
}
impl Pooled for f32 {
    fn pool() -> &'static Pool<f32> {
        &F32
    }
}
impl Pooled for u32 {
    fn pool() -> &'static Pool<u32> {
        &U32
    }
}

/// A pooled buffer of `len` elements with unspecified contents (old data of an earlier
/// user, or zeros); returned to the pool on drop.
pub(crate) struct Buf<T: Pooled = f32> {
    v: Vec<T>,
    len: usize,
}

impl<T: Pooled> Buf<T> {
    /// `len` elements, contents unspecified: the caller overwrites them.
    pub fn uninit(len: usize) -> Self {
        Buf {
            v: T::pool().take(len),
            len,
        }
    }
    /// An empty buffer (no allocation).
    pub fn empty() -> Self {
        Buf {
            v: Vec::new(),
            len: 0,
        }
    }
    /// Resizes to `len` elements, keeping the buffer if it is large enough (contents
    /// unspecified afterwards).
    pub fn resize_uninit(&mut self, len: usize) {
        if len > self.v.len() {
            *self = Self::uninit(len);
        } else {
            self.len = len;
        }
    }
}

impl<T: Pooled> Default for Buf<T> {
    fn default() -> Self {
        Buf::empty()
    }
}

impl<T: Pooled> Drop for Buf<T> {
    fn drop(&mut self) {
        T::pool().give(std::mem::take(&mut self.v));
    }
}

impl<T: Pooled> Deref for Buf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.v[..self.len]
    }
}

impl<T: Pooled> DerefMut for Buf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.v[..self.len]
    }
}

/// Frees every idle pooled buffer.
pub(crate) fn clear() {
    F32.clear();
    U32.clear();
}

/// Asks the kernel to back the 2 MiB-aligned interior of `v` with transparent huge pages,
/// so that first touching a fresh multi-megabyte buffer takes a few faults instead of one
/// per 4 KiB page. Advice only: no contents change. A no-op for small buffers and
/// outside Linux, or with the environment variable `IMLE_CONV_NO_HUGEPAGES` set.
pub(crate) fn advise_huge<T>(v: &mut [T]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let bytes = std::mem::size_of_val(v);
        static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let off = *OFF.get_or_init(|| std::env::var_os("IMLE_CONV_NO_HUGEPAGES").is_some());
        if bytes < 2 * HUGE || off {
            return;
        }
        let start = v.as_mut_ptr() as usize;
        let lo = start.next_multiple_of(HUGE);
        let hi = (start + bytes) / HUGE * HUGE;
        if hi > lo {
            // SAFETY: `lo..hi` is page aligned and inside `v`'s allocation; MADV_HUGEPAGE
            // is advice about how to back these pages and changes no contents.
            unsafe {
                libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

/// A vector of `len` zeros for an op's output tensor, drawn through dfdx's allocator: from
/// the device's tensor cache when it is enabled (`dev.enable_cache()`, recommended in
/// training loops: the buffer is then warm memory that an earlier step freed, instead of
/// freshly mapped pages), else newly allocated. Huge-page advised either way.
pub(crate) fn out_vec(dev: &Cpu, len: usize) -> Result<Vec<f32>, CpuError> {
    let mut cached = dev.try_alloc_len(len)?;
    // The emptied `CachableVec` files a zero-byte entry in an enabled cache when dropped.
    let mut v = std::mem::take(&mut *cached);
    drop(cached);
    advise_huge(&mut v);
    Ok(v)
}
