//! File-backed tables (feature `std`): the embedded default, for producers
//! that run in user space and publish under `/dev/shm` or any path.
//!
//! A table is built in a temporary file beside its final path, allocated
//! before it is mapped, and renamed into place once published, so a
//! consumer opening the path never sees a half-initialised table, and a
//! producer that restarts replaces the file (a new inode, a new
//! generation) instead of rewriting one a consumer still has mapped. A
//! VM's tables are published through [`crate::publish::Publication`],
//! which adds the directory, its lock and safe removal;
//! [`ShmTable::create`] publishes one file at a path, for tests and tools.

use std::{
    fs::{self, File},
    io,
    os::fd::{AsFd, BorrowedFd},
    path::{Path, PathBuf},
    string::ToString,
};

use memmap2::MmapRaw;
use rustix::fs::{Mode, OFlags};

pub use crate::publish::fresh_generation;
use crate::{
    publish::{Access, FileId, Pending, PublishError},
    Control, Frames, Table, TableSpec, Writers,
};

/// A table published in a file, and its mapping. Dropping it retires the
/// table (P15, [`Table::retire`]) unless the file is shorter than the
/// table by then: someone truncated it, and a store to the pages it lost
/// would kill the producer with `SIGBUS` (a truncation between that check
/// and the stores still would: only the file's owner can truncate it).
///
/// The table's frames are the mapping, which this value owns: the table
/// is stored with its frames' lifetime erased (`Table<'static>`), which
/// is sound because (1) the mapping is only unmapped when this value is
/// dropped, after the table (field order), and (2) the table is never
/// handed out for longer than a borrow of this value ([`ShmTable::table`]
/// and [`ShmTable::split`] shorten it).
#[derive(Debug)]
pub struct ShmTable {
    table: Table<'static>,
    _map: MmapRaw,
    _file: File,
    path: PathBuf,
    id: FileId,
}

impl Drop for ShmTable {
    fn drop(&mut self) {
        let len = self.table.layout.mapping_len();
        let whole = rustix::fs::fstat(&self._file)
            .is_ok_and(|st| u64::try_from(st.st_size).is_ok_and(|size| size >= len));
        if !whole {
            self.table.retire = false;
        }
    }
}

impl ShmTable {
    /// Creates (or replaces) the table at `path`, creating its parent
    /// directories. The file's mode is `0o644` (readable by everyone,
    /// writable by its owner), whatever the umask.
    ///
    /// A path-based helper for tests and tools that own their directory:
    /// it makes none of [`crate::publish::Publication`]'s checks (no lock,
    /// no owner checks, symlinks in `path`'s directories are followed).
    /// A producer publishes through `Publication`.
    ///
    /// # Errors
    ///
    /// I/O errors creating, allocating, mapping or renaming the file (with
    /// the path in the message; `StorageFull` when there is no room), or
    /// `InvalidInput` when the spec is invalid.
    pub fn create(path: &Path, spec: &TableSpec<'_>) -> io::Result<ShmTable> {
        let to_io = |e: PublishError| {
            let kind = match &e {
                PublishError::Io { source, .. } => source.kind(),
                PublishError::NoSpace { .. } => io::ErrorKind::StorageFull,
                _ => io::ErrorKind::InvalidInput,
            };
            io::Error::new(kind, e.to_string())
        };
        let (dir, file) = match (path.parent(), path.file_name().and_then(|f| f.to_str())) {
            (Some(d), Some(f)) => (
                if d.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    d
                },
                f,
            ),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    std::format!("{}: not a file path", path.display()),
                ))
            }
        };
        fs::create_dir_all(dir).map_err(|e| {
            io::Error::new(
                e.kind(),
                std::format!("creating the directory of {}: {e}", path.display()),
            )
        })?;
        let dir_fd = rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                std::format!("opening the directory of {}: {e}", path.display()),
            )
        })?;
        let access = Access {
            mode: 0o644,
            group: None,
        };
        ShmTable::create_at(dir_fd.as_fd(), path, file, spec, access, |_| {}).map_err(to_io)
    }

    /// Creates table `file` in the directory `dir` (whose path is
    /// `path`'s parent) with file mode `mode`; `seed` writes records
    /// before the file is renamed into place (P10).
    pub(crate) fn create_at(
        dir: BorrowedFd<'_>,
        path: &Path,
        file: &str,
        spec: &TableSpec<'_>,
        access: Access,
        seed: impl FnOnce(Writers<'_>),
    ) -> Result<ShmTable, PublishError> {
        let invalid = |source| PublishError::Table {
            path: path.to_path_buf(),
            source,
        };
        let pending = Pending::create(dir, path, file, spec.layout.mapping_len(), access)?;
        let mut table = None;
        let (map, file, id) = pending.commit(|base, len| {
            // SAFETY: the mapping is `len` bytes, readable and writable,
            // page aligned (so 8-aligned), and is moved into the
            // `ShmTable` with the table, which is dropped first (field
            // order); this process reaches it only through the table's
            // atomics (invariants 1-4 of `Frames`). The `'static` never
            // escapes (see `ShmTable`).
            #[allow(unsafe_code)]
            let frames = unsafe { Frames::contiguous(base, len) };
            let mut t = Table::init(frames, spec).map_err(invalid)?;
            seed(t.split().1);
            table = Some(t);
            Ok(())
        })?;
        let table = table.ok_or_else(|| PublishError::Removed {
            path: path.to_path_buf(),
        })?;
        Ok(ShmTable {
            table,
            _map: map,
            _file: file,
            path: path.to_path_buf(),
            id,
        })
    }

    /// The path the table is published at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Device and inode of the table's file.
    pub fn file_id(&self) -> FileId {
        self.id
    }

    /// The table.
    pub fn table(&self) -> &Table<'_> {
        &self.table
    }

    /// The control switches and one writer per record.
    pub fn split(&mut self) -> (&Control, Writers<'_>) {
        self.table.split()
    }

    /// Unmaps the table without retiring it ([`Table::forsake`]), as a
    /// producer that dies leaves it: the file keeps its magic and its
    /// records' last values.
    pub fn forsake(mut self) {
        self.table.retire = false;
    }

    /// Removes the file (consumers that have it mapped keep their
    /// mapping). Prefer [`crate::publish::Publication::remove`], which
    /// removes only the files it created.
    ///
    /// # Errors
    ///
    /// The I/O error from unlinking.
    pub fn unlink(&self) -> io::Result<()> {
        fs::remove_file(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use std::{format, vec::Vec};

    use vstats_abi::{
        record::{INACTIVE, PAD_INACTIVE},
        validate::validate,
        VCPU_STATS_MAGIC,
    };

    use super::*;
    use crate::builder::TableBuilder;

    fn u32_at(b: &[u8], at: u64) -> u32 {
        u32::from_ne_bytes(b[at as usize..at as usize + 4].try_into().unwrap())
    }

    #[test]
    #[cfg_attr(miri, ignore = "files: beyond Miri's isolation")]
    fn a_clean_drop_retires_the_file_and_forsaking_leaves_it() {
        let dir = std::env::temp_dir().join(format!("vstats-shm-retire-{}", std::process::id()));
        let plan = TableBuilder::vcpu(2).build().unwrap();
        let l = plan.layout;
        let write = |t: &mut ShmTable| {
            let (_, ws) = t.split();
            for mut w in ws {
                w.update(|u| {
                    u.set_words(0, &[1, 2, 3, 4, 0, 5]);
                });
            }
        };
        // Dropped: the file's magic is 0 and every record unused (P15).
        let path = dir.join("retired");
        let mut t = ShmTable::create(&path, &plan.spec(1)).unwrap();
        write(&mut t);
        drop(t);
        let b = fs::read(&path).unwrap();
        assert_eq!(u32_at(&b, 0), 0);
        for i in 0..2 {
            let r = l.record_offset(i).unwrap();
            assert_eq!((u32_at(&b, r), u32_at(&b, r + 4)), (4, PAD_INACTIVE));
            let words: Vec<u64> = (1..u64::from(l.record_extent()) / 8)
                .map(|w| u64::from_ne_bytes(b[(r + 8 * w) as usize..][..8].try_into().unwrap()))
                .collect();
            assert!(words.iter().all(|&w| w == INACTIVE), "record {i}");
        }
        // Forsaken: as written, and valid.
        let path = dir.join("forsaken");
        let mut t = ShmTable::create(&path, &plan.spec(1)).unwrap();
        write(&mut t);
        t.forsake();
        let b = fs::read(&path).unwrap();
        assert_eq!(u32_at(&b, 0), VCPU_STATS_MAGIC);
        assert!(validate(&b, b.len() as u64).is_ok());
        // Truncated under the producer: dropping it stores nothing there
        // (no SIGBUS) and leaves what is left alone.
        let path = dir.join("truncated");
        let t = ShmTable::create(&path, &plan.spec(1)).unwrap();
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(16)
            .unwrap();
        drop(t);
        assert_eq!(u32_at(&fs::read(&path).unwrap(), 0), VCPU_STATS_MAGIC);
        fs::remove_dir_all(&dir).unwrap();
    }
}
