//! File mappings: open, map, and hand the mapping to a view of
//! [`crate::mem`] as its owner; and [`FileId`], which tells a file from
//! the one that replaced it.

use std::{
    fs::{File, Metadata, OpenOptions},
    io,
    path::Path,
};

use memmap2::{MmapOptions, MmapRaw};

use crate::raw::{MemView, MemViewMut};

/// A file's identity: its device and inode. A producer that restarts
/// publishes a new file under the same name, which changes it. (Off Unix
/// both are 0, so a replacement is not seen.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
        Ok(FileId::of_metadata(&std::fs::metadata(path)?))
    }

    /// The identity in `meta`.
    #[cfg(unix)]
    pub fn of_metadata(meta: &Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// The identity in `meta` (unknown off Unix: 0, 0).
    #[cfg(not(unix))]
    pub fn of_metadata(_: &Metadata) -> FileId {
        FileId { dev: 0, ino: 0 }
    }
}

/// The pointer and length of `map` as a region (invariant 1 is checked by
/// the views' constructors: `mmap` returns page-aligned addresses).
fn parts(map: &MmapRaw) -> (*mut u8, usize) {
    (map.as_mut_ptr(), map.len())
}

/// `BadPointer` from a mapping cannot happen (see `parts`); reported as
/// an I/O error all the same.
fn misaligned(e: crate::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

impl MemView<'static> {
    /// Opens `path` read-only (`O_RDONLY`) and maps the whole file
    /// read-only and shared (`PROT_READ`, `MAP_SHARED`), so the producer's
    /// later stores are visible. The file descriptor is closed on return;
    /// the mapping stays until the view and its clones are dropped. Returns
    /// the view and the identity of the file mapped. An empty file gives an
    /// empty view.
    ///
    /// The producer must never truncate a mapped file: loads of the
    /// missing pages would fault (`SIGBUS`).
    ///
    /// # Errors
    ///
    /// I/O errors opening, inspecting or mapping the file.
    pub fn map_file(path: &Path) -> io::Result<(MemView<'static>, FileId)> {
        let file = File::open(path)?;
        let id = FileId::of_metadata(&file.metadata()?);
        let map = MmapOptions::new().map_raw_read_only(&file)?;
        let (ptr, len) = parts(&map);
        // SAFETY: `MmapRaw` never hands out references to its memory and
        // keeps `[ptr, ptr + len)` mapped and readable until it is dropped;
        // it becomes the view's owner, dropped after the last access
        // (invariant 2). The other party writes the file from another
        // process, never with a Rust non-atomic write in ours (invariant
        // 3). A producer that truncates the file while it is mapped makes
        // our loads fault (SIGBUS): a documented producer rule, not
        // something this process can prevent.
        let view = unsafe { MemView::from_raw_parts(ptr, len, Some(Box::new(map))) };
        Ok((view.map_err(misaligned)?, id))
    }
}

impl MemViewMut<'static> {
    /// Opens `path` read-write and maps the whole file shared
    /// (`PROT_READ | PROT_WRITE`, `MAP_SHARED`).
    ///
    /// # Errors
    ///
    /// I/O errors opening or mapping the file; `InvalidInput` for an empty
    /// file.
    pub fn map_file(path: &Path) -> io::Result<MemViewMut<'static>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Self::map(&file)
    }

    /// Creates `path` (replacing any file there) with `len` zero bytes and
    /// maps it like [`MemViewMut::map_file`].
    ///
    /// # Errors
    ///
    /// I/O errors creating, sizing or mapping the file.
    pub fn create_file(path: &Path, len: u64) -> io::Result<MemViewMut<'static>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        file.set_len(len)?;
        Self::map(&file)
    }

    fn map(file: &File) -> io::Result<MemViewMut<'static>> {
        if file.metadata()?.len() == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot map an empty file",
            ));
        }
        let map = MmapOptions::new().map_raw(file)?;
        let (ptr, len) = parts(&map);
        // SAFETY: as in `MemView::map_file`, and the mapping is writable
        // (`PROT_WRITE`, the file opened read-write: invariant 4); this
        // process writes it only through the view's atomics.
        let view = unsafe { MemViewMut::from_raw_parts(ptr, len, Some(Box::new(map))) };
        view.map_err(misaligned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot map files")]
    fn writable_and_read_only_mappings_of_one_file_agree() {
        let dir = std::env::temp_dir().join(format!("vstats-mem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t");
        let w = MemViewMut::create_file(&path, 4096).unwrap();
        assert!(w.store::<u64>(8, 42));
        assert!(w.store_bytes(16, &[1, 2, 3, 4, 5, 6, 7, 8]));
        assert!(!w.store::<u64>(4096, 1));
        let (r, id) = MemView::map_file(&path).unwrap();
        assert_eq!(FileId::of(&path).unwrap(), id);
        assert_eq!(r.load::<u64>(8), Some(42));
        assert_eq!(r.load::<u32>(16), Some(u32::from_ne_bytes([1, 2, 3, 4])));
        assert!(w.store::<u64>(8, 43));
        assert_eq!(
            r.load::<u64>(8),
            Some(43),
            "shared mapping sees later stores"
        );
        let w2 = MemViewMut::map_file(&path).unwrap();
        assert_eq!(w2.load::<u64>(8), Some(43));
        std::fs::write(dir.join("empty"), b"").unwrap();
        let (e, _) = MemView::map_file(&dir.join("empty")).unwrap();
        assert!(e.is_empty());
        assert_eq!(e.load::<u8>(0), None);
        assert!(MemViewMut::map_file(&dir.join("empty")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
