//! The publication directory's names and its one name rule.
//!
//! A producer that runs in user space publishes a VM's tables as files in
//! one directory per VM: `<root>/<name>/vcpu` and `<root>/<name>/domain`,
//! where `<root>` is chosen by [`default_root`] (the system root
//! [`DEFAULT_ROOT`] for root, one of each user's own otherwise) unless the
//! environment variable [`ROOT_ENV`] (or a front end's option) says
//! otherwise. Producers and
//! consumers agree on these names and on which VM names are allowed
//! ([`check_name`]); this module only names them, it does no I/O.
//!
//! # Examples
//!
//! ```
//! use vstats_abi::publish::{check_name, NameError, DEFAULT_ROOT, VCPU_FILE};
//!
//! assert_eq!(DEFAULT_ROOT, "/dev/shm/vstats");
//! assert_eq!(VCPU_FILE, "vcpu");
//! assert_eq!(check_name("vm-1.prod"), Ok(()));
//! assert_eq!(check_name(".."), Err(NameError::DotName));
//! assert_eq!(check_name("a/b"), Err(NameError::BadChar { at: 1, byte: b'/' }));
//! ```

use core::fmt;

/// Where VM directories live unless told otherwise: `/dev/shm/vstats`.
pub const DEFAULT_ROOT: &str = "/dev/shm/vstats";
/// The environment variable that names another root (a front end's
/// explicit option wins over it).
pub const ROOT_ENV: &str = "VSTATS_ROOT";
/// File name of a VM's vCPU table in its directory.
pub const VCPU_FILE: &str = "vcpu";
/// File name of a VM's domain table in its directory.
pub const DOMAIN_FILE: &str = "domain";
/// Longest VM name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// The root named by [`ROOT_ENV`]'s value (`None` when unset): that value
/// unless it is empty, else [`DEFAULT_ROOT`], whoever asks. Libraries use
/// [`default_root`], which gives each user a root of their own.
///
/// ```
/// use vstats_abi::publish::{root_from, DEFAULT_ROOT};
/// assert_eq!(root_from(None), DEFAULT_ROOT.as_bytes());
/// assert_eq!(root_from(Some(b"")), DEFAULT_ROOT.as_bytes());
/// assert_eq!(root_from(Some(b"/run/vstats")), b"/run/vstats");
/// ```
pub fn root_from(env: Option<&[u8]>) -> &[u8] {
    match env {
        Some(r) if !r.is_empty() => r,
        _ => DEFAULT_ROOT.as_bytes(),
    }
}

/// The environment variable of a user's runtime directory (XDG Base
/// Directory specification), under which a non-root user's default root
/// lies.
pub const RUNTIME_DIR_ENV: &str = "XDG_RUNTIME_DIR";

/// Longest tail a [`DefaultRoot`] appends to its base: `-` and a `u32` in
/// decimal, or `/vstats`.
const TAIL_CAP: usize = 11;

/// The default root of one user, as the base path and a tail to append
/// to it ([`DefaultRoot::parts`]); made by [`default_root`], without
/// allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefaultRoot<'a> {
    base: &'a [u8],
    tail: [u8; TAIL_CAP],
    tail_len: u8,
    kind: RootKind,
}

/// Which rule of [`default_root`] chose the root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RootKind {
    /// [`ROOT_ENV`] was set and not empty: that path, as given.
    Env,
    /// The effective user is root: [`DEFAULT_ROOT`], the system root.
    System,
    /// A non-root user with an absolute [`RUNTIME_DIR_ENV`]:
    /// `$XDG_RUNTIME_DIR/vstats`.
    Runtime,
    /// A non-root user without one: `/dev/shm/vstats-<uid>`.
    PerUser,
}

impl<'a> DefaultRoot<'a> {
    fn new(base: &'a [u8], tail: &[u8], kind: RootKind) -> DefaultRoot<'a> {
        let mut buf = [0; TAIL_CAP];
        let n = tail.len().min(TAIL_CAP);
        buf[..n].copy_from_slice(&tail[..n]);
        DefaultRoot {
            base,
            tail: buf,
            tail_len: n as u8,
            kind,
        }
    }

    /// The path in two parts, to be concatenated (`parts().concat()`).
    pub fn parts(&self) -> [&[u8]; 2] {
        [self.base, &self.tail[..usize::from(self.tail_len)]]
    }

    /// The rule that chose it.
    pub fn kind(&self) -> RootKind {
        self.kind
    }
}

/// The root a library uses when its caller names none, for a process of
/// effective uid `euid` given the values of [`RUNTIME_DIR_ENV`] and
/// [`ROOT_ENV`] (`None` when unset). The one rule the producer's
/// `root_from_env` and the consumer's `discover::root` share:
///
/// 1. [`ROOT_ENV`] when set and not empty, as given;
/// 2. else, for root (uid 0), the system root [`DEFAULT_ROOT`];
/// 3. else `$XDG_RUNTIME_DIR/vstats` when that variable is an absolute
///    path (the specification says to ignore a relative one);
/// 4. else `/dev/shm/vstats-<uid>`.
///
/// So each user has a root of their own: a non-root user never meets the
/// system root, which root creates and owns. No I/O happens here.
///
/// ```
/// use vstats_abi::publish::{default_root, RootKind};
/// let path = |r: vstats_abi::publish::DefaultRoot<'_>| r.parts().concat();
/// assert_eq!(path(default_root(0, Some(b"/run/user/0"), None)), b"/dev/shm/vstats");
/// assert_eq!(path(default_root(1000, Some(b"/run/user/1000"), None)), b"/run/user/1000/vstats");
/// assert_eq!(path(default_root(1000, None, None)), b"/dev/shm/vstats-1000");
/// assert_eq!(path(default_root(1000, Some(b"run"), Some(b""))), b"/dev/shm/vstats-1000");
/// let r = default_root(1000, None, Some(b"/srv/vstats"));
/// assert_eq!((path(r), r.kind()), (b"/srv/vstats".to_vec(), RootKind::Env));
/// ```
pub fn default_root<'a>(
    euid: u32,
    runtime_dir: Option<&'a [u8]>,
    root_env: Option<&'a [u8]>,
) -> DefaultRoot<'a> {
    match (root_env, runtime_dir) {
        (Some(r), _) if !r.is_empty() => DefaultRoot::new(r, b"", RootKind::Env),
        _ if euid == 0 => DefaultRoot::new(DEFAULT_ROOT.as_bytes(), b"", RootKind::System),
        (_, Some(run)) if run.first() == Some(&b'/') => {
            let base = match run.iter().rposition(|&b| b != b'/') {
                Some(last) => &run[..=last],
                None => &run[..0],
            };
            DefaultRoot::new(base, b"/vstats", RootKind::Runtime)
        }
        _ => {
            let mut tail = [0u8; TAIL_CAP];
            tail[0] = b'-';
            let mut digits = [0u8; 10];
            let mut n = 0;
            let mut v = euid;
            loop {
                digits[n] = b'0' + (v % 10) as u8;
                n += 1;
                v /= 10;
                if v == 0 {
                    break;
                }
            }
            for i in 0..n {
                tail[1 + i] = digits[n - 1 - i];
            }
            DefaultRoot::new(DEFAULT_ROOT.as_bytes(), &tail[..=n], RootKind::PerUser)
        }
    }
}

/// The effective uid of this process, the first input of
/// [`default_root`] (feature `clock`, which brings the system-call layer).
#[cfg(feature = "clock")]
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Why a VM name cannot name a publication directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The name is `.` or `..`.
    DotName,
    /// Byte `at` is not an ASCII letter, digit, `.`, `_`, `-`, `+` or `:`
    /// (a `/`, a NUL, a space, a control or a non-ASCII byte).
    BadChar {
        /// Byte index of the first byte refused.
        at: usize,
        /// That byte.
        byte: u8,
    },
}

impl NameError {
    /// The rule broken, in a few words (without the position).
    pub const fn summary(&self) -> &'static str {
        match *self {
            NameError::Empty => "it is empty",
            NameError::TooLong { .. } => "it is longer than 64 bytes",
            NameError::DotName => "it is not a directory name",
            NameError::BadChar { byte: b'/', .. } => "it contains '/'",
            NameError::BadChar { byte: 0, .. } => "it contains a NUL byte",
            NameError::BadChar { .. } => "only ASCII letters, digits and . _ - + : are allowed",
        }
    }
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            NameError::Empty => f.write_str("it is empty"),
            NameError::TooLong { len } => {
                write!(f, "it is {len} bytes long, more than {MAX_NAME_LEN}")
            }
            NameError::DotName => f.write_str("it is not a directory name"),
            NameError::BadChar { at, byte } => {
                if byte.is_ascii_graphic() || byte == b' ' {
                    write!(f, "byte {at} ('{}')", char::from(byte))?;
                } else {
                    write!(f, "byte {at} ({byte:#04x})")?;
                }
                f.write_str(" is not allowed: only ASCII letters, digits and . _ - + : are")
            }
        }
    }
}

impl core::error::Error for NameError {}

/// Whether `b` may appear in a VM name.
pub const fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+' | b':')
}

/// Checks that `name` can name a VM's publication directory: 1 to
/// [`MAX_NAME_LEN`] bytes, each an ASCII letter, digit, `.`, `_`, `-`,
/// `+` or `:`, and neither `.` nor `..`. Such a name is one path
/// component, safe to print and to put in a label.
///
/// # Errors
///
/// The first rule broken, as a [`NameError`].
pub fn check_name(name: &str) -> Result<(), NameError> {
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return Err(NameError::Empty);
    }
    if bytes.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { len: bytes.len() });
    }
    if name == "." || name == ".." {
        return Err(NameError::DotName);
    }
    match bytes.iter().position(|&b| !is_name_byte(b)) {
        Some(at) => Err(NameError::BadChar {
            at,
            byte: bytes[at],
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::string::ToString;

    use super::*;

    #[test]
    fn every_uid_gets_its_own_root() {
        let path = |r: DefaultRoot<'_>| r.parts().concat();
        assert_eq!(
            path(default_root(u32::MAX, None, None)),
            b"/dev/shm/vstats-4294967295"
        );
        assert_eq!(path(default_root(7, None, None)), b"/dev/shm/vstats-7");
        assert_eq!(default_root(7, None, None).kind(), RootKind::PerUser);
        assert_eq!(
            path(default_root(7, Some(b"/run/u/"), None)),
            b"/run/u/vstats"
        );
        assert_eq!(path(default_root(7, Some(b"/"), None)), b"/vstats");
        assert_eq!(path(default_root(7, Some(b""), None)), b"/dev/shm/vstats-7");
        assert_eq!(default_root(0, None, None).kind(), RootKind::System);
        assert_eq!(path(default_root(0, None, Some(b"/x"))), b"/x");
    }

    #[test]
    fn good_names() {
        for ok in ["vm1", "t-123", "a.b_c+d:e", "x-y_z", "...", ".a", "a.."] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        let longest = [b'x'; MAX_NAME_LEN];
        assert_eq!(check_name(core::str::from_utf8(&longest).unwrap()), Ok(()));
    }

    #[test]
    fn bad_names_say_why() {
        assert_eq!(check_name(""), Err(NameError::Empty));
        assert_eq!(check_name("."), Err(NameError::DotName));
        assert_eq!(check_name(".."), Err(NameError::DotName));
        let long = [b'x'; MAX_NAME_LEN + 1];
        assert_eq!(
            check_name(core::str::from_utf8(&long).unwrap()),
            Err(NameError::TooLong { len: 65 })
        );
        assert_eq!(
            check_name("a/b"),
            Err(NameError::BadChar { at: 1, byte: b'/' })
        );
        assert_eq!(
            check_name("/"),
            Err(NameError::BadChar { at: 0, byte: b'/' })
        );
        assert_eq!(
            check_name("a b"),
            Err(NameError::BadChar { at: 1, byte: b' ' })
        );
        assert_eq!(
            check_name("a\0"),
            Err(NameError::BadChar { at: 1, byte: 0 })
        );
        assert_eq!(
            check_name("é"),
            Err(NameError::BadChar { at: 0, byte: 0xc3 })
        );
        assert_eq!(
            check_name("a\nb"),
            Err(NameError::BadChar { at: 1, byte: b'\n' })
        );
        assert!(check_name("a/b").unwrap_err().to_string().contains("'/'"));
        assert_eq!(check_name("a/b").unwrap_err().summary(), "it contains '/'");
        assert_eq!(
            check_name("a\0").unwrap_err().summary(),
            "it contains a NUL byte"
        );
        assert_eq!(check_name("").unwrap_err().summary(), "it is empty");
        assert!(check_name("a\0").unwrap_err().to_string().contains("0x00"));
    }
}
