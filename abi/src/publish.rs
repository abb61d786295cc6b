//! The publication directory's names and its one name rule.
//!
//! A producer that runs in user space publishes a VM's tables as files in
//! one directory per VM: `<root>/<name>/vcpu` and `<root>/<name>/domain`,
//! where `<root>` is [`DEFAULT_ROOT`] unless the environment variable
//! [`ROOT_ENV`] (or a front end's option) says otherwise. Producers and
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

/// The root a library uses when its caller names none, given the value of
/// [`ROOT_ENV`] (`None` when unset): that value unless it is empty, else
/// [`DEFAULT_ROOT`]. The one rule the producer's and the consumer's
/// `root_from_env` share; the environment is read by them (no I/O here).
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
