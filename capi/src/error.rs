//! The C API's error codes: negative, errno-style values (Linux numbering)
//! that `include/vstats_errno.h` defines as `VSTATS_E*` for the producer
//! and the reader API, their messages, and the mapping from the Rust
//! crates' errors.

use core::ffi::{c_int, CStr};

use vstats_abi::Rule;

/// Success.
pub const VSTATS_OK: c_int = 0;
/// Reader: no such file, or no counter of that name.
pub const VSTATS_ENOENT: c_int = -2;
/// Reader: the table's file was truncated while it was read (or another
/// I/O error without an errno).
pub const VSTATS_EIO: c_int = -5;
/// Reader: the table exceeds the reader's resource limits (head, records,
/// counter words): a limit of this library, not an invalid table.
pub const VSTATS_E2BIG: c_int = -7;
/// The table is disabled: no update was started or finished.
pub const VSTATS_EAGAIN: c_int = -11;
/// A NULL or misaligned pointer, or a pointer that is not the object it
/// should be (a writer, a reader, a snapshot).
pub const VSTATS_EFAULT: c_int = -14;
/// The record's writer was already handed out; reader: the record was
/// mid-update at every attempt.
pub const VSTATS_EBUSY: c_int = -16;
/// An argument is invalid: a magic, a layout `vstats_layout` would not
/// produce, or a table that was not initialised.
pub const VSTATS_EINVAL: c_int = -22;
/// The memory (or the writer storage) is smaller than the layout needs.
pub const VSTATS_ENOSPC: c_int = -28;
/// A record index, counter word, counter index or bucket is out of range.
pub const VSTATS_ERANGE: c_int = -34;
/// Reader: the value is absent (inactive, outside the record, or the
/// record was not read consistently).
pub const VSTATS_ENODATA: c_int = -61;
/// `begin`/`set`/`end` called out of order.
pub const VSTATS_EPROTO: c_int = -71;
/// A descriptor breaks rule R11, R12 or R13 of `docs/abi.md`; reader: the
/// table breaks a rule of `docs/abi.md`.
pub const VSTATS_EBADMSG: c_int = -74;
/// The layout does not fit the header's 32-bit fields.
pub const VSTATS_EOVERFLOW: c_int = -75;
/// Reader: the producer changed or retired the table since it was opened.
pub const VSTATS_ESTALE: c_int = -116;
/// An internal error of the library (a bug): a panic was caught at the C
/// boundary.
pub const VSTATS_ENOTRECOVERABLE: c_int = -131;

/// The message of an error code (any `int`), as `vstats_strerror` returns
/// it.
pub fn message(err: c_int) -> &'static CStr {
    match err {
        VSTATS_OK => c"success",
        VSTATS_ENOENT => c"no such file, or no counter of that name",
        VSTATS_EIO => c"the table's file was truncated while it was read, or an I/O error",
        VSTATS_E2BIG => c"the table exceeds the reader's resource limits",
        VSTATS_EAGAIN => c"the table is disabled: no update was started or finished",
        VSTATS_EFAULT => {
            c"a NULL or misaligned pointer, or a pointer that is not a writer, reader or snapshot"
        }
        VSTATS_EBUSY => {
            c"the record's writer was already handed out, or the record was read mid-update"
        }
        VSTATS_EINVAL => {
            c"invalid argument (magic, a layout vstats_layout would not produce, or an uninitialised table)"
        }
        VSTATS_ENOSPC => c"the memory or the writer storage is smaller than the layout needs",
        VSTATS_ERANGE => c"record, counter, word or bucket index out of range",
        VSTATS_ENODATA => c"the value is absent (inactive, outside the record, or not read)",
        VSTATS_EPROTO => c"begin, set and end called out of order",
        VSTATS_EBADMSG => c"a descriptor or a table breaks a rule of docs/abi.md",
        VSTATS_EOVERFLOW => c"the layout does not fit the header's 32-bit fields",
        VSTATS_ESTALE => c"the producer changed or retired the table",
        VSTATS_ENOTRECOVERABLE => c"internal error of the vstats library",
        _ => c"unknown vstats error",
    }
}

/// The code of a publication error: a `VSTATS_E*` code where one fits,
/// else the negated `errno` of the failed system call.
#[cfg(feature = "std")]
pub(crate) fn from_publish(e: &vstats_producer::publish::PublishError) -> c_int {
    use vstats_producer::publish::PublishError as P;
    const EPERM: c_int = -1;
    const ENOTDIR: c_int = -20;
    const EIO: c_int = -5;
    match e {
        P::InUse { .. } => VSTATS_EBUSY,
        P::NoSpace { .. } => VSTATS_ENOSPC,
        P::Table { source, .. } => from_producer(*source),
        P::Name { .. } | P::FileName { .. } | P::Removed { .. } | P::BadPath { .. } => {
            VSTATS_EINVAL
        }
        P::NotADirectory { .. } => ENOTDIR,
        P::NotOwned { .. } | P::WritableByOthers { .. } => EPERM,
        P::Unstable { .. } => VSTATS_EAGAIN,
        P::Io { source, .. } => source.raw_os_error().map_or(EIO, |n| -n),
        _ => EIO,
    }
}

/// The code of an ABI error (layout arithmetic or descriptor checks).
pub(crate) fn from_abi(e: vstats_abi::Error) -> c_int {
    match e {
        vstats_abi::Error::Overflow { .. } => VSTATS_EOVERFLOW,
        e if matches!(e.rule(), Rule::R11 | Rule::R12 | Rule::R13 | Rule::R20) => VSTATS_EBADMSG,
        _ => VSTATS_EINVAL,
    }
}

/// The code of a producer error (table initialisation).
pub(crate) fn from_producer(e: vstats_producer::Error) -> c_int {
    match e {
        vstats_producer::Error::FramesTooSmall { .. } => VSTATS_ENOSPC,
        vstats_producer::Error::FramesMisaligned => VSTATS_EFAULT,
        vstats_producer::Error::Abi(e) => from_abi(e),
        // PageSizeMismatch, BadMagic and any later variant.
        _ => VSTATS_EINVAL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_own_message() {
        let codes = [
            VSTATS_OK,
            VSTATS_ENOENT,
            VSTATS_EIO,
            VSTATS_E2BIG,
            VSTATS_ENODATA,
            VSTATS_ESTALE,
            VSTATS_ENOTRECOVERABLE,
            VSTATS_EAGAIN,
            VSTATS_EFAULT,
            VSTATS_EBUSY,
            VSTATS_EINVAL,
            VSTATS_ENOSPC,
            VSTATS_ERANGE,
            VSTATS_EPROTO,
            VSTATS_EBADMSG,
            VSTATS_EOVERFLOW,
        ];
        for (i, a) in codes.iter().enumerate() {
            assert_ne!(message(*a), message(1), "{a} has a message");
            for b in &codes[i + 1..] {
                assert_ne!(message(*a), message(*b), "{a} and {b}");
            }
        }
        assert_eq!(message(i32::MIN), c"unknown vstats error");
    }

    #[test]
    fn producer_errors_map_to_codes() {
        use vstats_producer::Error as P;
        assert_eq!(
            from_producer(P::FramesTooSmall { need: 2, have: 1 }),
            VSTATS_ENOSPC
        );
        assert_eq!(from_producer(P::FramesMisaligned), VSTATS_EFAULT);
        assert_eq!(from_producer(P::BadMagic { magic: 1 }), VSTATS_EINVAL);
        assert_eq!(
            from_producer(P::Abi(vstats_abi::Error::DescNameEmpty { index: 0 })),
            VSTATS_EBADMSG
        );
        assert_eq!(
            from_abi(vstats_abi::Error::Overflow {
                what: vstats_abi::error::Quantity::RecordSize
            }),
            VSTATS_EOVERFLOW
        );
    }
}
