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

/// Whether a path's last component may be a symbolic link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Follow {
    /// Follow it: a path the user named.
    Yes,
    /// Refuse it: a name the consumer derived (under the root, inside a
    /// VM directory).
    No,
}

/// Why a table file was not opened.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The system said no.
    Io(io::Error),
    /// Not a regular file: what it is instead.
    NotRegular(&'static str),
}

impl From<io::Error> for OpenError {
    fn from(e: io::Error) -> OpenError {
        OpenError::Io(e)
    }
}

impl From<OpenError> for io::Error {
    fn from(e: OpenError) -> io::Error {
        match e {
            OpenError::Io(e) => e,
            OpenError::NotRegular(kind) => io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not a regular file ({kind})"),
            ),
        }
    }
}

/// What a file type is, for messages.
fn kind_of(ft: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_file() {
        None
    } else if ft.is_symlink() {
        Some("symbolic link")
    } else if ft.is_dir() {
        Some("directory")
    } else if ft.is_fifo() {
        Some("FIFO")
    } else if ft.is_char_device() {
        Some("character device")
    } else if ft.is_block_device() {
        Some("block device")
    } else if ft.is_socket() {
        Some("socket")
    } else {
        Some("not a file")
    }
}

/// Opens a table file read-only: `O_RDONLY | O_NONBLOCK | O_CLOEXEC`,
/// plus `O_NOFOLLOW` unless `follow` says otherwise, then `fstat`s it and
/// refuses anything but a regular file. With [`Follow::No`] the path is
/// first `lstat`ed, so a FIFO, device, directory or symlink is refused
/// without being opened at all; `O_NOFOLLOW` and the `fstat` close the race
/// with a rename in between (a device swapped in is then opened
/// non-blocking and refused, never read). A FIFO never blocks the open
/// (`O_NONBLOCK`). Returns the file, its identity and its size.
pub(crate) fn open_regular(path: &Path, follow: Follow) -> Result<(File, FileId, u64), OpenError> {
    use std::os::unix::fs::OpenOptionsExt;
    let pre = match follow {
        Follow::No => std::fs::symlink_metadata(path)?,
        Follow::Yes => std::fs::metadata(path)?,
    };
    if let Some(kind) = kind_of(pre.file_type()) {
        return Err(OpenError::NotRegular(kind));
    }
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if follow == Follow::No {
        flags |= libc::O_NOFOLLOW;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) if follow == Follow::No => OpenError::NotRegular("symbolic link"),
            _ => OpenError::Io(e),
        })?;
    let meta = file.metadata()?;
    if let Some(kind) = kind_of(meta.file_type()) {
        return Err(OpenError::NotRegular(kind));
    }
    Ok((file, FileId::of_metadata(&meta), meta.len()))
}

/// `offset + nr_records * stride` as the raw header in `head` says,
/// unvalidated (a checker maps broken tables too); `None` when the fields
/// cannot be read or the count is beyond [`crate::MAX_RECORDS`]. Without an
/// extension header the records fill `file_len`.
fn described_extent(head: &MemView<'_>, file_len: u64) -> Option<u64> {
    use vstats_abi::header::{ExtHeader, Header, EXT_HEADER_OFFSET, EXT_MAGIC};
    let offset = u64::from(head.load::<u32>(core::mem::offset_of!(Header, offset) as u64)?);
    let stride = u64::from(head.load::<u32>(core::mem::offset_of!(Header, stride) as u64)?);
    let ext = u64::from(EXT_HEADER_OFFSET);
    let nr = if head.load::<u32>(ext) == Some(EXT_MAGIC) {
        u64::from(head.load::<u32>(ext + core::mem::offset_of!(ExtHeader, nr_records) as u64)?)
    } else {
        file_len
            .saturating_sub(offset)
            .checked_div(stride)
            .unwrap_or(0)
    };
    let nr = nr.min(u64::from(crate::MAX_RECORDS));
    // Never more than a table within the consumer's limits can need: the
    // head, every counter word and every record's seq word.
    let cap = crate::MAX_HEAD_LEN + 8 * (crate::MAX_COUNTER_WORDS + u64::from(crate::MAX_RECORDS));
    Some(offset.checked_add(nr.checked_mul(stride)?)?.min(cap))
}

/// The system's page size (4096 if it cannot be told).
pub(crate) fn page_size() -> u64 {
    // SAFETY: `sysconf` reads a constant of the system; no memory is
    // involved.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

impl MemView<'static> {
    /// Opens `path` as a table file (regular files only; `O_RDONLY |
    /// O_NONBLOCK | O_CLOEXEC`, following a symlink: the caller named the
    /// path) and maps the whole file read-only and shared (`PROT_READ`,
    /// `MAP_SHARED`), so the producer's later stores are visible. The file
    /// descriptor is closed on return; the mapping stays until the view and
    /// its clones are dropped. Returns the view and the identity of the
    /// file mapped. An empty file gives an empty view.
    ///
    /// Installs the process's `SIGBUS` handler (see [`MemView`],
    /// "Truncation"), so that a file truncated while mapped makes loads
    /// fail (`None`) instead of killing the process.
    ///
    /// # Errors
    ///
    /// I/O errors opening, inspecting or mapping the file;
    /// `InvalidInput` for a path that is not a regular file (a FIFO, a
    /// device, a directory).
    pub fn map_file(path: &Path) -> io::Result<(MemView<'static>, FileId)> {
        let (file, id, len) = open_regular(path, Follow::Yes)?;
        let len = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::FileTooLarge))?;
        Ok((MemView::map_len(&file, len)?, id))
    }

    /// As [`MemView::map_file`], but a symbolic link at `path` (its last
    /// component) is refused (`InvalidInput`, "not a regular file
    /// (symbolic link)") without opening what it points to, and a FIFO,
    /// device or directory is refused without being opened: for names a
    /// reader derives itself (the `vcpu` and `domain` files of a VM
    /// directory, anything found under the root).
    ///
    /// # Errors
    ///
    /// As for [`MemView::map_file`].
    pub fn map_file_nofollow(path: &Path) -> io::Result<(MemView<'static>, FileId)> {
        let (file, id, len) = open_regular(path, Follow::No)?;
        let len = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::FileTooLarge))?;
        Ok((MemView::map_len(&file, len)?, id))
    }

    /// Maps a table file for a checker: every byte its header describes,
    /// valid or not, and never more, whatever the file's apparent size (a
    /// sparse gigabyte costs only the table). First the head window (at
    /// most [`crate::MAX_HEAD_LEN`] bytes); then, when the header's
    /// `offset` and `stride` and the extension header's `nr_records` can
    /// be read and stay within [`crate::MAX_RECORDS`], up to
    /// `offset + nr_records * stride`, rounded up to a page and at most
    /// the file's size. A table without the extension header (RFC v3
    /// layout) has no record count: its records are taken to fill the file,
    /// at most [`crate::MAX_RECORDS`] of them. Never more than
    /// `MAX_HEAD_LEN + 8 * (MAX_COUNTER_WORDS + MAX_RECORDS)` bytes (56 MiB)
    /// is mapped, the most a table within the consumer's limits can need.
    /// A symbolic link at `path`
    /// is refused as by [`MemView::map_file_nofollow`].
    ///
    /// # Errors
    ///
    /// As for [`MemView::map_file_nofollow`].
    pub fn map_table_file(path: &Path) -> io::Result<(MemView<'static>, FileId)> {
        let (file, id, file_len) = open_regular(path, Follow::No)?;
        let window = file_len.min(crate::MAX_HEAD_LEN);
        let head = MemView::map_len(&file, usize::try_from(window).unwrap_or(usize::MAX))?;
        let page = page_size();
        let extent = described_extent(&head, file_len)
            .and_then(|e| e.checked_next_multiple_of(page))
            .map_or(window, |e| e.min(file_len));
        if extent == window {
            return Ok((head, id));
        }
        let len =
            usize::try_from(extent).map_err(|_| io::Error::from(io::ErrorKind::FileTooLarge))?;
        Ok((MemView::map_len(&file, len)?, id))
    }

    /// Maps `[0, len)` of `file` read-only and shared, after installing
    /// the `SIGBUS` handler.
    pub(crate) fn map_len(file: &File, len: usize) -> io::Result<MemView<'static>> {
        crate::guard::install();
        let map = MmapOptions::new().len(len).map_raw_read_only(file)?;
        let (ptr, len) = parts(&map);
        // SAFETY: `MmapRaw` never hands out references to its memory and
        // keeps `[ptr, ptr + len)` mapped until it is dropped; it becomes
        // the view's owner, dropped after the last access (invariant 2).
        // The other party writes the file from another process, never with
        // a Rust non-atomic write in ours (invariant 3). A file truncated
        // while mapped makes loads of the lost pages fault (`SIGBUS`): the
        // views load through `guard`, which survives that where it is
        // built (see `MemView`, "Truncation").
        let view = unsafe { MemView::from_raw_parts(ptr, len, Some(Box::new(map))) };
        view.map_err(misaligned)
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
