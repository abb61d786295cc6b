//! The plugin file, made and written as xcp-rrdd reads it.
//!
//! xcp-rrdd watches its plugin directory (`/dev/shm/metrics`) with
//! inotify: a file created or renamed into it registers a plugin of that
//! uid (protocol v2, every 5 s), a file removed or renamed away
//! deregisters it; names ending in `.tmp` are ignored. On registration it
//! maps the file once, at the size it has then, and reads that mapping
//! every cycle; it never opens the path again, and registering a uid that
//! is already registered does nothing. So:
//!
//! * **the first frame** is written to `<name>.tmp` (created `O_EXCL |
//!   O_NOFOLLOW`, mode `0600`, sized to at least [`MIN_BYTES`]), then
//!   renamed to `<name>`: xcp-rrdd registers a file that is complete;
//! * **every later frame** is written in place with `pwrite` into that
//!   file (its page cache is what xcp-rrdd's mapping shows), because a
//!   file renamed over it would be a new inode that a registered xcp-rrdd
//!   never looks at. Written in this order, a concurrent reader sees
//!   either the previous frame or the new one:
//!   1. when the metadata, the count or the metadata CRC changed: the
//!      whole frame except the data CRC; otherwise only the timestamp and
//!      the values (the metadata is rewritten only when it changes);
//!   2. then the data CRC, last. A reader that still sees the old data CRC
//!      reports "no update" and reads nothing else; one that sees the new
//!      one finds everything it covers written. A torn read of the values
//!      fails the data CRC and is skipped;
//! * **a frame larger than the file** (many VMs appeared) cannot be
//!   written in place: a file never changes size under xcp-rrdd's
//!   mapping. It goes to a new, larger `<name>.tmp`; the old file is
//!   removed (xcp-rrdd deregisters) and the new one renamed into place
//!   (xcp-rrdd registers and maps it). Stale bytes past a frame are
//!   ignored: the count and the metadata length bound what is read.
//!
//! A file left by an earlier run is written in place too, so an xcp-rrdd
//! that still has it registered keeps reading it.
//!
//! A root daemon writing in `/dev/shm` must not be redirected by a local
//! user. The directory is opened with the producer's
//! [`open_safe_dir`](vstats_producer::publish::open_safe_dir): no symlink
//! anywhere on the way, owned by root or this user, not writable by others
//! unless sticky; every later call is relative to its fd. An existing
//! file is opened `O_NOFOLLOW` and refused unless it is a regular file
//! owned by this user with one link (a hard link planted in a sticky
//! directory could point at another file).

use std::{
    ffi::OsString,
    fs::File,
    os::fd::OwnedFd,
    path::{Path, PathBuf},
};

use rustix::{
    fs::{AtFlags, FileType, Mode, OFlags},
    io::Errno,
};

use super::{protocol::Frame, RrddError};

/// The file's smallest size: 64 pages (256 KiB), sparse on tmpfs. Room
/// for about 1,000 datasources before the file must be replaced by a
/// larger one.
pub const MIN_BYTES: u64 = 64 * PAGE;

const PAGE: u64 = 4096;

/// What [`PluginFile::write`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// Made a new file and renamed it into place: the first write, or a
    /// frame too large for the old file.
    New,
    /// Rewrote the whole frame in place: the metadata changed.
    Full,
    /// Rewrote only the timestamp, the values and the data CRC in place.
    Values,
}

/// The plugin file (made by the first [`PluginFile::write`]).
#[derive(Debug)]
pub struct PluginFile {
    dir: OwnedFd,
    name: String,
    tmp: OsString,
    path: PathBuf,
    file: Option<File>,
    len: u64,
    last: Option<(u32, u32, Vec<u8>)>,
}

fn io<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(Errno) -> RrddError + 'a {
    move |e| RrddError::Io {
        op,
        path: path.to_path_buf(),
        source: e.into(),
    }
}

fn pwrite(file: &File, path: &Path, bytes: &[u8], at: usize) -> Result<(), RrddError> {
    let mut done = 0;
    while done < bytes.len() {
        let off = (at + done) as u64;
        let rest = bytes.get(done..).unwrap_or_default();
        match rustix::io::pwrite(file, rest, off) {
            Ok(0) => return Err(io(path, "cannot write")(Errno::NOSPC)),
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(io(path, "cannot write")(e)),
        }
    }
    Ok(())
}

impl PluginFile {
    /// Opens the directory `dir` (created, mode `0755`, when missing) and
    /// the file `name` in it if there is one, as the [module](self) docs
    /// say.
    ///
    /// # Errors
    ///
    /// [`RrddError::Dir`] for a directory that is unsafe or cannot be
    /// opened; [`RrddError::Unsafe`] for a file that is a symlink, not a
    /// regular file, another user's, or hard-linked; [`RrddError::Io`].
    pub fn open(dir: &Path, name: &str) -> Result<PluginFile, RrddError> {
        let path = dir.join(name);
        let dfd = vstats_producer::publish::open_safe_dir(dir, 0o755).map_err(|source| {
            RrddError::Dir {
                path: dir.to_path_buf(),
                source,
            }
        })?;
        let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let (file, len) = match rustix::fs::openat(&dfd, name, flags, Mode::empty()) {
            Ok(fd) => {
                let len = Self::check(&fd, &path)?;
                (Some(File::from(fd)), len)
            }
            Err(Errno::NOENT) => (None, 0),
            Err(Errno::LOOP) => {
                return Err(RrddError::Unsafe {
                    path,
                    why: "it is a symbolic link".into(),
                })
            }
            Err(e) => return Err(io(&path, "cannot open")(e)),
        };
        Ok(PluginFile {
            dir: dfd,
            tmp: format!("{name}.tmp").into(),
            name: name.to_owned(),
            path,
            file,
            len,
            last: None,
        })
    }

    /// Refuses a file that is not a regular file of this user with one
    /// link; returns its size.
    fn check(fd: &OwnedFd, path: &Path) -> Result<u64, RrddError> {
        let st = rustix::fs::fstat(fd).map_err(io(path, "cannot stat"))?;
        let euid = rustix::process::geteuid().as_raw();
        let why = if !FileType::from_raw_mode(st.st_mode).is_file() {
            Some("it is not a regular file".to_owned())
        } else if st.st_uid != euid {
            Some(format!(
                "it belongs to uid {}, not to uid {euid}",
                st.st_uid
            ))
        } else if st.st_nlink != 1 {
            Some(format!("it has {} hard links", st.st_nlink))
        } else {
            None
        };
        if let Some(why) = why {
            return Err(RrddError::Unsafe {
                path: path.to_path_buf(),
                why,
            });
        }
        #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
        Ok(st.st_size as u64)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `frame`, in place or in a new file, as the [module](self)
    /// docs say.
    ///
    /// # Errors
    ///
    /// [`RrddError::Io`]: making, sizing, writing or renaming failed (a
    /// full tmpfs, say).
    pub fn write(&mut self, frame: &Frame) -> Result<Written, RrddError> {
        let bytes = frame.bytes();
        let (crc, count, meta) = frame.layout_key();
        let crc_at = frame.data_crc_range();
        let file = match &self.file {
            Some(f) if bytes.len() as u64 <= self.len => f,
            _ => return self.replace(frame),
        };
        let same = self
            .last
            .as_ref()
            .is_some_and(|(c, n, m)| *c == crc && *n == count && m == meta);
        let written = if same {
            let r = frame.data_range();
            pwrite(
                file,
                &self.path,
                bytes.get(r.clone()).unwrap_or_default(),
                r.start,
            )?;
            Written::Values
        } else {
            let head = bytes.get(..crc_at.start).unwrap_or_default();
            pwrite(file, &self.path, head, 0)?;
            let tail = bytes.get(crc_at.end..).unwrap_or_default();
            pwrite(file, &self.path, tail, crc_at.end)?;
            Written::Full
        };
        pwrite(
            file,
            &self.path,
            bytes.get(crc_at.clone()).unwrap_or_default(),
            crc_at.start,
        )?;
        self.last = Some((crc, count, meta.to_vec()));
        Ok(written)
    }

    /// Writes `frame` to a new `<name>.tmp` and renames it into place,
    /// removing the old file first (see the [module](self) docs).
    fn replace(&mut self, frame: &Frame) -> Result<Written, RrddError> {
        let bytes = frame.bytes();
        let tmp_path = self.path.with_file_name(&self.tmp);
        // A stale temporary file of ours (a crash): O_EXCL below makes
        // sure the one written is new.
        let _ = rustix::fs::unlinkat(&self.dir, &self.tmp, AtFlags::empty());
        let fd = rustix::fs::openat(
            &self.dir,
            &self.tmp,
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(io(&tmp_path, "cannot create"))?;
        let file = File::from(fd);
        let len = (bytes.len() as u64)
            .max(MIN_BYTES)
            .div_ceil(PAGE)
            .saturating_mul(PAGE);
        let r = rustix::fs::fchmod(&file, Mode::from_raw_mode(0o600))
            .map_err(io(&tmp_path, "cannot chmod"))
            .and_then(|()| rustix::fs::ftruncate(&file, len).map_err(io(&tmp_path, "cannot size")))
            .and_then(|()| pwrite(&file, &tmp_path, bytes, 0));
        if let Err(e) = r {
            let _ = rustix::fs::unlinkat(&self.dir, &self.tmp, AtFlags::empty());
            return Err(e);
        }
        if self.file.is_some() {
            // Deregister the old file, so that the rename registers anew.
            match rustix::fs::unlinkat(&self.dir, self.name.as_str(), AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(io(&self.path, "cannot remove")(e)),
            }
        }
        rustix::fs::renameat(&self.dir, &self.tmp, &self.dir, self.name.as_str())
            .map_err(io(&self.path, "cannot rename into place"))?;
        self.file = Some(file);
        self.len = len;
        let (crc, count, meta) = frame.layout_key();
        self.last = Some((crc, count, meta.to_vec()));
        Ok(Written::New)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rrdd::{datasources::vm_datasources, datasources::VcpuTimes, protocol::encode};

    fn frame(ts: f64, vcpus: u32, running: u64) -> Frame {
        let v: Vec<VcpuTimes> = (0..vcpus)
            .map(|vcpu| VcpuTimes {
                vcpu,
                running,
                ..VcpuTimes::default()
            })
            .collect();
        encode(ts, &vm_datasources("vm", &v)).unwrap()
    }

    #[test]
    fn metadata_is_rewritten_only_when_it_changes() {
        let dir = std::env::temp_dir().join(format!("vstats-rrdd-file-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut f = PluginFile::open(&dir, "p").unwrap();
        assert!(!dir.join("p").exists());
        let on_disk = || std::fs::read(dir.join("p")).unwrap();
        let ino =
            || std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(dir.join("p")).unwrap());
        assert_eq!(f.write(&frame(0.5, 4, 1)).unwrap(), Written::New);
        assert_eq!(on_disk().len() as u64, MIN_BYTES);
        assert!(!dir.join("p.tmp").exists());
        let first = ino();
        let steps = [
            (frame(1.0, 4, 10), Written::Values),
            (frame(2.0, 4, 20), Written::Values),
            (frame(3.0, 2, 30), Written::Full),
            (frame(4.0, 2, 40), Written::Values),
        ];
        for (fr, want) in steps {
            assert_eq!(f.write(&fr).unwrap(), want);
            assert!(on_disk().starts_with(fr.bytes()));
        }
        assert_eq!(ino(), first);
        // A frame larger than the file: a new, larger file.
        let big = frame(5.0, 2000, 1);
        assert_eq!(f.write(&big).unwrap(), Written::New);
        assert_ne!(ino(), first);
        assert!(!dir.join("p.tmp").exists());
        let len = on_disk().len() as u64;
        assert!(len >= big.bytes().len() as u64 && len % PAGE == 0);
        assert!(on_disk().starts_with(big.bytes()));
        assert_eq!(f.write(&frame(6.0, 2000, 2)).unwrap(), Written::Values);
        // A file left by an earlier run is written in place.
        drop(f);
        let big_ino = ino();
        let mut f = PluginFile::open(&dir, "p").unwrap();
        assert_eq!(f.write(&frame(7.0, 1, 2)).unwrap(), Written::Full);
        assert_eq!(ino(), big_ino);
        assert!(on_disk().starts_with(frame(7.0, 1, 2).bytes()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
