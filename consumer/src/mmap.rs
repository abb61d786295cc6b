//! File-backed tables: open read-only, map read-only, hand the mapping to
//! [`Mapping`] together with its owner.

use std::{
    fs::File,
    path::{Path, PathBuf},
};

use memmap2::{MmapOptions, MmapRaw};

use crate::{raw::Mapping, Error, Result};

/// Which file a table was opened from: its path and, on Unix, its device
/// and inode at open time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FileId {
    pub(crate) path: PathBuf,
    pub(crate) dev_ino: Option<(u64, u64)>,
}

impl FileId {
    /// The identity of the file now at `path` (one `stat`).
    pub(crate) fn current(path: &Path) -> Result<FileId> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        Ok(FileId {
            path: path.to_path_buf(),
            dev_ino: dev_ino(&meta),
        })
    }
}

#[cfg(unix)]
fn dev_ino(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn dev_ino(_: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

/// Opens `path` read-only (`O_RDONLY`) and maps the whole file read-only
/// and shared (`PROT_READ`, `MAP_SHARED`), so the producer's later stores
/// are visible. The file descriptor is closed on return; the mapping
/// stays until the returned [`Mapping`] is dropped.
pub(crate) fn map_file(path: &Path) -> Result<(Mapping, FileId)> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    let map: MmapRaw = MmapOptions::new()
        .map_raw_read_only(&file)
        .map_err(|e| Error::io(path, e))?;
    let (ptr, len) = (map.as_ptr(), map.len());
    // SAFETY: `MmapRaw` never hands out references to its memory, and it
    // keeps `[ptr, ptr + len)` mapped and readable until it is dropped; it
    // becomes the mapping's owner, dropped only after the last access. The
    // other party writes the file from another process (never with a Rust
    // non-atomic write in ours). A producer that truncates the file while
    // it is mapped makes our loads fault (SIGBUS): that is a documented
    // producer rule, not something this process can prevent.
    let mapping = unsafe { Mapping::new(ptr, len, Some(Box::new(map))) }?;
    Ok((
        mapping,
        FileId {
            path: path.to_path_buf(),
            dev_ino: dev_ino(&meta),
        },
    ))
}
