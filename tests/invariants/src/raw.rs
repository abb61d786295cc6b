//! The only module that touches table memory through raw pointers.
//!
//! [`RawView`] is a read-only view of a whole mapping that hands out
//! relaxed atomic loads of aligned `u32` and `u64` words: the checker needs
//! every byte of the mapping (the head, the padding between records, the
//! tail of the last page), and `vstats_consumer::Table` exposes only the
//! validated head and the records. [`RawMut`] is a writable mapping of a
//! file, used by the fault-injecting producers, the compatibility-matrix
//! producers and the hostile consumer of the fault tests.
//!
//! # Invariants of `Region` (every function here relies on them)
//!
//! 1. `ptr` is non-null and 8-aligned.
//! 2. `[ptr, ptr + len)` stays mapped and readable (and, for a [`RawMut`],
//!    writable) for as long as the `Region` lives: its owner is a field of
//!    the `Region` and is dropped after the last access.
//! 3. The memory may be written at any time by another party, but only with
//!    atomic stores (or, from another process, plain machine stores): never
//!    with a Rust non-atomic write racing our accesses. Nothing here forms a
//!    `&u8`, `&[u8]` or `&T` of a non-atomic type over it.

use std::{
    fmt,
    fs::{File, OpenOptions},
    io,
    os::unix::fs::MetadataExt,
    path::Path,
    ptr::NonNull,
    sync::{
        atomic::{fence, AtomicU32, AtomicU64, Ordering},
        Arc,
    },
};

use memmap2::{MmapOptions, MmapRaw};

/// Whatever keeps a region mapped.
enum Owner {
    /// A file mapping.
    Map(#[allow(dead_code)] MmapRaw),
    /// Memory owned by the view (a copy of some bytes).
    Words(#[allow(dead_code)] Arc<[AtomicU64]>),
    /// Memory someone else mapped (a Xen foreign mapping, say).
    Foreign(#[allow(dead_code)] Box<dyn Send + Sync>),
}

/// A mapped region; see the module's invariants.
struct Region {
    ptr: NonNull<u8>,
    len: usize,
    _owner: Owner,
}

// SAFETY: a `Region` only hands out atomic references and values loaded
// atomically from memory that stays valid for its life (invariant 2);
// atomics may be shared between threads, and every owner is `Send + Sync`
// (`MmapRaw` is, `Arc<[AtomicU64]>` is, `Foreign` is by its type).
unsafe impl Send for Region {}
// SAFETY: as for `Send`: every access through `&Region` is atomic.
unsafe impl Sync for Region {}

impl Region {
    /// The address of byte `off` if `[off, off + width)` is inside the
    /// region and `off` is a multiple of `width` (4 or 8).
    fn at(&self, off: usize, width: usize) -> Option<*mut u8> {
        let end = off.checked_add(width)?;
        if end > self.len || off % width != 0 {
            return None;
        }
        // `wrapping_add` keeps provenance and cannot be UB; the result is
        // in bounds (just checked) and `width`-aligned because `ptr` is
        // 8-aligned (invariant 1) and `off` is a multiple of `width`.
        Some(self.ptr.as_ptr().wrapping_add(off))
    }

    fn atomic_u32(&self, off: usize) -> Option<&AtomicU32> {
        let p = self.at(off, 4)?;
        // SAFETY: `p` is in bounds and 4-aligned (`at`) and readable for
        // the life of `self` (invariant 2), which bounds the returned
        // lifetime. `AtomicU32` has the size and alignment of `u32` and is
        // an `UnsafeCell`, so a shared reference to it allows the other
        // party's concurrent writes (invariant 3). Through a `RawView` it is
        // only ever loaded with `Relaxed`, which std permits on read-only
        // memory.
        Some(unsafe { &*p.cast::<AtomicU32>() })
    }

    fn atomic_u64(&self, off: usize) -> Option<&AtomicU64> {
        let p = self.at(off, 8)?;
        // SAFETY: as in `atomic_u32`, with 8 bytes and 8-alignment.
        Some(unsafe { &*p.cast::<AtomicU64>() })
    }
}

/// An empty region: no byte may be accessed, so a dangling, aligned
/// pointer is fine (invariant 2 holds vacuously for `len == 0`).
fn empty() -> Region {
    Region {
        ptr: NonNull::<u64>::dangling().cast(),
        len: 0,
        _owner: Owner::Words(Arc::from(Vec::new())),
    }
}

/// A read-only view of a whole table mapping: relaxed atomic loads of
/// aligned words, nothing else. Cheap to clone (the mapping is shared).
#[derive(Clone)]
pub struct RawView {
    region: Arc<Region>,
}

impl fmt::Debug for RawView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawView")
            .field("ptr", &self.region.ptr)
            .field("len", &self.region.len)
            .finish()
    }
}

/// A file's identity: device and inode. A producer that restarts publishes
/// a new file under the same name, which changes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

impl FileId {
    /// The identity of the file now at `path` (one `stat`).
    ///
    /// # Errors
    ///
    /// The I/O error of `stat` (`NotFound` when there is no file).
    pub fn of(path: &Path) -> io::Result<FileId> {
        let m = std::fs::metadata(path)?;
        Ok(FileId {
            dev: m.dev(),
            ino: m.ino(),
        })
    }
}

impl RawView {
    /// Opens `path` read-only and maps the whole file read-only and shared
    /// (`PROT_READ`, `MAP_SHARED`), so the producer's later stores are
    /// visible. Returns the view and the identity of the file mapped.
    ///
    /// # Errors
    ///
    /// I/O errors opening, inspecting or mapping the file.
    pub fn open(path: &Path) -> io::Result<(RawView, FileId)> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        let id = FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        };
        if meta.len() == 0 {
            return Ok((
                RawView {
                    region: Arc::new(empty()),
                },
                id,
            ));
        }
        let map = MmapOptions::new().map_raw_read_only(&file)?;
        let region = region_of_map(map)?;
        Ok((
            RawView {
                region: Arc::new(region),
            },
            id,
        ))
    }

    /// A view of a private, 8-aligned copy of `bytes` (for property tests,
    /// fuzzing and tables built in memory). Its length is `bytes.len()`.
    pub fn from_bytes(bytes: &[u8]) -> RawView {
        let words: Arc<[AtomicU64]> = bytes
            .chunks(8)
            .map(|c| {
                let mut w = [0u8; 8];
                w[..c.len()].copy_from_slice(c);
                AtomicU64::new(u64::from_ne_bytes(w))
            })
            .collect();
        let Some(ptr) = NonNull::new(words.as_ptr().cast_mut().cast::<u8>()) else {
            return RawView {
                region: Arc::new(empty()),
            };
        };
        // `Arc<[T]>` of a zero-length slice still gives an aligned pointer;
        // with `len == 0` no byte is ever accessed.
        RawView {
            region: Arc::new(Region {
                ptr,
                len: bytes.len(),
                _owner: Owner::Words(words),
            }),
        }
    }

    /// A view of memory someone else mapped, e.g. a Xen foreign mapping of
    /// a stats resource; `owner` keeps it mapped and is dropped after the
    /// view's (and every clone's) last access. `None` (dropping `owner`)
    /// when `ptr` is null or not 8-aligned.
    ///
    /// # Safety
    ///
    /// The caller promises that:
    /// 1. `[ptr, ptr + len)` stays mapped and readable until `owner` is
    ///    dropped;
    /// 2. nothing in this process writes that memory with non-atomic writes
    ///    while the view lives (other parties may write it at any time).
    pub unsafe fn from_raw_parts(
        ptr: *const u8,
        len: usize,
        owner: Box<dyn Send + Sync>,
    ) -> Option<RawView> {
        let nn = NonNull::new(ptr.cast_mut())?;
        if !ptr.cast::<u64>().is_aligned() {
            return None;
        }
        Some(RawView {
            region: Arc::new(Region {
                ptr: nn,
                len,
                _owner: Owner::Foreign(owner),
            }),
        })
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.region.len
    }

    /// Whether the mapping is empty.
    pub fn is_empty(&self) -> bool {
        self.region.len == 0
    }

    /// Relaxed load of the `u32` at byte `off`; `None` when `off` is not
    /// 4-aligned or the word is not inside the mapping.
    pub fn load_u32(&self, off: u64) -> Option<u32> {
        let off = usize::try_from(off).ok()?;
        self.region
            .atomic_u32(off)
            .map(|a| a.load(Ordering::Relaxed))
    }

    /// Relaxed load of the `u64` at byte `off`; `None` when `off` is not
    /// 8-aligned or the word is not inside the mapping.
    pub fn load_u64(&self, off: u64) -> Option<u64> {
        let off = usize::try_from(off).ok()?;
        self.region
            .atomic_u64(off)
            .map(|a| a.load(Ordering::Relaxed))
    }

    /// Copies `[0, n)` (rounded down to whole `u32` words, at most the
    /// mapping) with relaxed `u32` loads, the width the producer stores the
    /// head with. The magic (word 0) is loaded first and followed by an
    /// acquire fence, pairing with the producer's release store of the
    /// magic at publication (P7).
    pub fn copy_prefix(&self, n: usize) -> Vec<u8> {
        let n = n.min(self.len()) / 4 * 4;
        let mut out = Vec::with_capacity(n);
        for k in 0..n / 4 {
            let Some(w) = self.load_u32(4 * k as u64) else {
                break;
            };
            if k == 0 {
                fence(Ordering::Acquire);
            }
            out.extend_from_slice(&w.to_ne_bytes());
        }
        out
    }

    /// A `vstats_consumer::Table` over the same memory (the consumer copies
    /// and validates the head itself). The view is its owner: the memory
    /// stays mapped as long as the table lives.
    ///
    /// # Errors
    ///
    /// As `vstats_consumer::Table::from_owned`: the table is invalid
    /// (`Error::Invalid` names the rule) or beyond the consumer's limits.
    pub fn consumer_table(&self) -> vstats_consumer::Result<vstats_consumer::Table> {
        let ptr = self.region.ptr.as_ptr().cast_const();
        // SAFETY: the clone handed over as the owner keeps the region, and
        // so `[ptr, ptr + len)`, mapped and readable until the table drops
        // it (invariant 2); this process never writes the region with
        // non-atomic writes (invariant 3: `RawMut` stores are atomic).
        unsafe { vstats_consumer::Table::from_owned(ptr, self.region.len, Box::new(self.clone())) }
    }
}

fn region_of_map(map: MmapRaw) -> io::Result<Region> {
    let len = map.len();
    let ptr = NonNull::new(map.as_mut_ptr())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "mmap returned null"))?;
    // mmap returns page-aligned addresses, so this never fires; it keeps
    // invariant 1 checked rather than assumed.
    if !ptr.as_ptr().cast::<u64>().is_aligned() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "mapping is not 8-byte aligned",
        ));
    }
    Ok(Region {
        ptr,
        len,
        _owner: Owner::Map(map),
    })
}

/// A writable, shared mapping of a whole file, accessed only with atomic
/// loads and stores. Used to publish tables by hand (the compatibility
/// matrix's revisions), to inject faults the producer crate makes
/// impossible, and to play a consumer that scribbles on a table it mapped
/// writable.
#[derive(Clone)]
pub struct RawMut {
    region: Arc<Region>,
}

impl fmt::Debug for RawMut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawMut")
            .field("ptr", &self.region.ptr)
            .field("len", &self.region.len)
            .finish()
    }
}

impl RawMut {
    /// Opens `path` read-write and maps the whole file shared
    /// (`PROT_READ | PROT_WRITE`, `MAP_SHARED`).
    ///
    /// # Errors
    ///
    /// I/O errors opening or mapping the file; `InvalidInput` for an empty
    /// file.
    pub fn open(path: &Path) -> io::Result<RawMut> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Self::map(&file)
    }

    /// Creates `path` (replacing any file there) with `len` zero bytes and
    /// maps it like [`RawMut::open`].
    ///
    /// # Errors
    ///
    /// I/O errors creating, sizing or mapping the file.
    pub fn create(path: &Path, len: u64) -> io::Result<RawMut> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        file.set_len(len)?;
        Self::map(&file)
    }

    fn map(file: &File) -> io::Result<RawMut> {
        if file.metadata()?.len() == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot map an empty file",
            ));
        }
        let map = MmapOptions::new().map_raw(file)?;
        Ok(RawMut {
            region: Arc::new(region_of_map(map)?),
        })
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.region.len
    }

    /// Whether the mapping is empty (never, for a mapped file).
    pub fn is_empty(&self) -> bool {
        self.region.len == 0
    }

    /// The `u32` at byte `off` (4-aligned) as an atomic, `None` when out of
    /// bounds or misaligned.
    pub fn u32_at(&self, off: u64) -> Option<&AtomicU32> {
        self.region.atomic_u32(usize::try_from(off).ok()?)
    }

    /// The `u64` at byte `off` (8-aligned) as an atomic, `None` when out of
    /// bounds or misaligned.
    pub fn u64_at(&self, off: u64) -> Option<&AtomicU64> {
        self.region.atomic_u64(usize::try_from(off).ok()?)
    }

    /// Relaxed store of a `u32`; false (storing nothing) when out of bounds
    /// or misaligned.
    pub fn store_u32(&self, off: u64, v: u32) -> bool {
        self.u32_at(off)
            .map(|a| a.store(v, Ordering::Relaxed))
            .is_some()
    }

    /// Relaxed store of a `u64`; false (storing nothing) when out of bounds
    /// or misaligned.
    pub fn store_u64(&self, off: u64, v: u64) -> bool {
        self.u64_at(off)
            .map(|a| a.store(v, Ordering::Relaxed))
            .is_some()
    }

    /// Relaxed load of a `u32`.
    pub fn load_u32(&self, off: u64) -> Option<u32> {
        self.u32_at(off).map(|a| a.load(Ordering::Relaxed))
    }

    /// Relaxed load of a `u64`.
    pub fn load_u64(&self, off: u64) -> Option<u64> {
        self.u64_at(off).map(|a| a.load(Ordering::Relaxed))
    }

    /// Stores `bytes` (a multiple of 4 long) from byte `off` as `u32`
    /// words, the width producers store the head with. False when any word
    /// is out of bounds (the words before it are stored).
    pub fn store_bytes(&self, off: u64, bytes: &[u8]) -> bool {
        bytes.chunks(4).enumerate().all(|(k, c)| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            self.store_u32(off + 4 * k as u64, u32::from_ne_bytes(w))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_view_loads_aligned_words_only() {
        let mut b = vec![0u8; 20];
        b[0..4].copy_from_slice(&7u32.to_ne_bytes());
        b[8..16].copy_from_slice(&u64::MAX.to_ne_bytes());
        b[16..20].copy_from_slice(&9u32.to_ne_bytes());
        let v = RawView::from_bytes(&b);
        assert_eq!(v.len(), 20);
        assert_eq!(v.load_u32(0), Some(7));
        assert_eq!(v.load_u64(8), Some(u64::MAX));
        assert_eq!(v.load_u32(16), Some(9));
        assert_eq!(v.load_u64(16), None, "past the end");
        assert_eq!(v.load_u32(2), None, "misaligned");
        assert_eq!(v.load_u64(4), None, "misaligned");
        assert_eq!(v.copy_prefix(7), b[..4].to_vec());
        assert_eq!(v.copy_prefix(100), b.to_vec());
        assert!(RawView::from_bytes(&[]).is_empty());
        assert_eq!(RawView::from_bytes(&[]).load_u32(0), None);
    }

    #[test]
    fn writable_and_read_only_mappings_of_one_file_agree() {
        let dir = std::env::temp_dir().join(format!("vstats-raw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t");
        let w = RawMut::create(&path, 4096).unwrap();
        assert!(w.store_u64(8, 42));
        assert!(w.store_bytes(16, &[1, 2, 3, 4, 5, 6, 7, 8]));
        assert!(!w.store_u64(4096, 1));
        let (r, id) = RawView::open(&path).unwrap();
        assert_eq!(FileId::of(&path).unwrap(), id);
        assert_eq!(r.load_u64(8), Some(42));
        assert_eq!(r.load_u32(16), Some(u32::from_ne_bytes([1, 2, 3, 4])));
        assert!(w.store_u64(8, 43));
        assert_eq!(r.load_u64(8), Some(43), "shared mapping sees later stores");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn foreign_memory_must_be_aligned() {
        let words = Arc::new([0u64; 4]);
        let p = words.as_ptr().cast::<u8>().wrapping_add(4);
        // SAFETY: `[p, p + 8)` lies inside `words`, which the owner keeps
        // alive; the misaligned pointer is refused before any access.
        let v = unsafe { RawView::from_raw_parts(p, 8, Box::new(words.clone())) };
        assert!(v.is_none());
    }
}
