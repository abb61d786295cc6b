//! The plugin file, written in place as xcp-rrdd expects.
//!
//! xcp-rrdd maps a plugin's file once, when the plugin registers, and reads
//! that mapping every cycle; it never opens the path again. A writer that
//! renamed a new file into place would leave xcp-rrdd reading the old
//! inode forever. So, like xcp-rrdd's own plugins, this writes in place:
//! one file, kept open, overwritten with `pwrite` (the page cache is the
//! mapping xcp-rrdd reads). Written in this order, a concurrent reader sees
//! either the previous frame or the new one:
//!
//! 1. when the metadata, the count or the metadata CRC changed (or on the
//!    first write): the whole frame except the data CRC; otherwise only
//!    the timestamp and the values (the metadata is rewritten only when
//!    it changes);
//! 2. then the data CRC, last. A reader that still sees the old data CRC
//!    reports "no update" and reads nothing else; one that sees the new
//!    one finds everything it covers already written. A torn read of the
//!    values fails the data CRC and is skipped.
//!
//! The file is never shrunk, since a reader's mapping past the end of a
//! file faults (SIGBUS): it is at least [`MIN_BYTES`] long, grown in whole
//! pages when a frame needs more. Stale bytes past the frame are ignored
//! (the count and the metadata length bound what is read).
//!
//! A root daemon writing in `/dev/shm` must not be redirected by a local
//! user. The directory is opened with the producer's
//! [`open_safe_dir`](vstats_producer::publish::open_safe_dir): no symlink
//! anywhere on the way, owned by root or this user, not writable by others
//! unless sticky. The file is opened relative to that directory's fd with
//! `O_NOFOLLOW`, and refused unless it is a regular file owned by this
//! user with one link (a hard link planted in a sticky directory could
//! point at another file).

use std::{
    fs::File,
    path::{Path, PathBuf},
};

use rustix::{
    fs::{FileType, Mode, OFlags},
    io::Errno,
};

use super::{protocol::Frame, RrddError};

/// The file's smallest size: 64 pages (256 KiB), sparse on tmpfs. Enough
/// for about 1,000 datasources, so xcp-rrdd's mapping rarely needs to grow.
pub const MIN_BYTES: u64 = 64 * PAGE;

const PAGE: u64 = 4096;

/// What [`PluginFile::write`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// The whole frame: the metadata changed (or this was the first
    /// write).
    Full,
    /// Only the timestamp, the values and the data CRC.
    Values,
}

/// The open plugin file.
#[derive(Debug)]
pub struct PluginFile {
    path: PathBuf,
    file: File,
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

impl PluginFile {
    /// Opens (creating it, mode `0600`) the file `name` in the directory
    /// `dir` (created, mode `0755`, when missing), as the
    /// [module](self) docs say.
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
        let fd = rustix::fs::openat(
            &dfd,
            name,
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| match e {
            Errno::LOOP => RrddError::Unsafe {
                path: path.clone(),
                why: "it is a symbolic link".into(),
            },
            e => io(&path, "cannot open")(e),
        })?;
        let st = rustix::fs::fstat(&fd).map_err(io(&path, "cannot stat"))?;
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
            return Err(RrddError::Unsafe { path, why });
        }
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o600)).map_err(io(&path, "cannot chmod"))?;
        #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
        let len = st.st_size as u64;
        let mut f = PluginFile {
            path,
            file: File::from(fd),
            len,
            last: None,
        };
        f.grow(MIN_BYTES)?;
        Ok(f)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn grow(&mut self, need: u64) -> Result<(), RrddError> {
        if need <= self.len {
            return Ok(());
        }
        let len = need.div_ceil(PAGE).saturating_mul(PAGE);
        rustix::fs::ftruncate(&self.file, len).map_err(io(&self.path, "cannot size"))?;
        self.len = len;
        Ok(())
    }

    fn pwrite(&self, bytes: &[u8], at: usize) -> Result<(), RrddError> {
        let mut done = 0;
        while done < bytes.len() {
            let off = (at + done) as u64;
            let rest = bytes.get(done..).unwrap_or_default();
            match rustix::io::pwrite(&self.file, rest, off) {
                Ok(0) => return Err(io(&self.path, "cannot write")(Errno::NOSPC)),
                Ok(n) => done += n,
                Err(Errno::INTR) => {}
                Err(e) => return Err(io(&self.path, "cannot write")(e)),
            }
        }
        Ok(())
    }

    /// Writes `frame` in place, in the order the [module](self) docs
    /// give.
    ///
    /// # Errors
    ///
    /// [`RrddError::Io`]: sizing or writing failed (a full tmpfs).
    pub fn write(&mut self, frame: &Frame) -> Result<Written, RrddError> {
        let bytes = frame.bytes();
        let (crc, count, meta) = frame.layout_key();
        let same = self
            .last
            .as_ref()
            .is_some_and(|(c, n, m)| *c == crc && *n == count && m == meta);
        let crc_at = frame.data_crc_range();
        let written = if same {
            let r = frame.data_range();
            self.pwrite(bytes.get(r.clone()).unwrap_or_default(), r.start)?;
            Written::Values
        } else {
            self.grow(bytes.len() as u64)?;
            self.pwrite(bytes.get(..crc_at.start).unwrap_or_default(), 0)?;
            self.pwrite(bytes.get(crc_at.end..).unwrap_or_default(), crc_at.end)?;
            self.last = Some((crc, count, meta.to_vec()));
            Written::Full
        };
        self.pwrite(bytes.get(crc_at.clone()).unwrap_or_default(), crc_at.start)?;
        Ok(written)
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
        let on_disk = || std::fs::read(dir.join("p")).unwrap();
        assert_eq!(on_disk().len() as u64, MIN_BYTES);
        let steps = [
            (frame(1.0, 4, 10), Written::Full),
            (frame(2.0, 4, 20), Written::Values),
            (frame(3.0, 2, 30), Written::Full),
            (frame(4.0, 2, 40), Written::Values),
        ];
        for (fr, want) in steps {
            assert_eq!(f.write(&fr).unwrap(), want);
            assert!(on_disk().starts_with(fr.bytes()));
        }
        // A frame larger than the file grows it, in whole pages.
        let big = frame(5.0, 2000, 1);
        assert_eq!(f.write(&big).unwrap(), Written::Full);
        let len = on_disk().len() as u64;
        assert!(len >= big.bytes().len() as u64 && len % PAGE == 0);
        assert!(on_disk().starts_with(big.bytes()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
