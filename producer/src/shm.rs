//! File-backed tables (feature `std`): the embedded default, for producers
//! that run in user space and publish under `/dev/shm` or any path.
//!
//! A table is built in a temporary file beside its final path and renamed
//! into place once published, so a consumer opening the path never sees a
//! half-initialised table, and a producer that restarts replaces the file
//! (a new inode, a new generation) instead of rewriting one a consumer
//! still has mapped.
#![allow(unsafe_code)]

use std::{
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    ptr::NonNull,
    time::{SystemTime, UNIX_EPOCH},
};

use std::{borrow::ToOwned, format, string::ToString};

use memmap2::{MmapOptions, MmapRaw};

use crate::{Control, Frames, Table, TableSpec, Writers};

/// A table published in a file. Field order matters: the table (which
/// points into the mapping) is dropped before the mapping.
#[derive(Debug)]
pub struct ShmTable {
    table: Table<'static>,
    _map: MmapRaw,
    _file: File,
    path: PathBuf,
}

/// A generation number unlikely to repeat: wall-clock nanoseconds mixed
/// with the process id, never 0.
pub fn fresh_generation() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (nanos ^ (u64::from(std::process::id()) << 40)) | 1
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

impl ShmTable {
    /// Creates (or replaces) the table at `path`, creating its parent
    /// directories. The file is readable by everyone and writable by its
    /// owner only.
    ///
    /// # Errors
    ///
    /// I/O errors creating, sizing, mapping or renaming the file (with the
    /// path in the message), or `InvalidInput` when the spec is invalid.
    pub fn create(path: &Path, spec: &TableSpec<'_>) -> io::Result<ShmTable> {
        let ctx = |e: io::Error, what: &str| {
            io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
        };
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| ctx(e, "creating the directory of"))?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".tmp.{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let _ = fs::remove_file(&tmp);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(|e| ctx(e, "creating"))?;
        let result = Self::publish(file, &tmp, path, spec);
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(|e| ctx(e, "publishing"))
    }

    fn publish(file: File, tmp: &Path, path: &Path, spec: &TableSpec<'_>) -> io::Result<ShmTable> {
        let len = spec.layout.mapping_len();
        file.set_len(len)?;
        let len = usize::try_from(len).map_err(other)?;
        let map = MmapOptions::new().len(len).map_raw(&file)?;
        let base = NonNull::new(map.as_mut_ptr()).ok_or_else(|| other("mmap returned null"))?;
        // SAFETY: the mapping is `len` bytes, readable and writable, page
        // aligned (so 8-aligned), and lives in `ShmTable` next to the table,
        // which is dropped first (field order); this process reaches it only
        // through the table's atomics (invariants 1-4 of `raw`). The
        // `'static` lifetime never escapes: writers borrow the `ShmTable`.
        let frames = unsafe { Frames::contiguous(base, len) };
        let table = Table::init(frames, spec).map_err(other)?;
        fs::rename(tmp, path)?;
        Ok(ShmTable {
            table,
            _map: map,
            _file: file,
            path: path.to_owned(),
        })
    }

    /// The path the table is published at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The table.
    pub fn table(&self) -> &Table<'static> {
        &self.table
    }

    /// The control switches and one writer per record.
    pub fn split(&mut self) -> (&Control, Writers<'_>) {
        self.table.split()
    }

    /// Removes the file (consumers that have it mapped keep their mapping).
    ///
    /// # Errors
    ///
    /// The I/O error from unlinking.
    pub fn unlink(&self) -> io::Result<()> {
        fs::remove_file(&self.path)
    }
}
