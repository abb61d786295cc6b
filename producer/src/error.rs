//! The producer's error type.

/// Why a table could not be initialised or planned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The frames hold fewer bytes than the layout needs.
    #[error("frames hold {have} bytes, the table needs {need}")]
    FramesTooSmall {
        /// Bytes needed.
        need: u64,
        /// Bytes given.
        have: u64,
    },
    /// A frame is not 8-byte aligned.
    #[error("a frame is not 8-byte aligned")]
    FramesMisaligned,
    /// The frame list's page size differs from the layout's.
    #[error("frames are {frames}-byte pages, the layout uses {layout}-byte pages")]
    PageSizeMismatch {
        /// The layout's page size.
        layout: u32,
        /// The frames' page size.
        frames: u64,
    },
    /// The magic is not a table magic of this revision.
    #[error("{magic:#010x} is not a stats table magic")]
    BadMagic {
        /// The magic asked for.
        magic: u32,
    },
    /// The spec gives a different number of descriptors than its layout
    /// has room for.
    #[error("{given} descriptors given, the layout has {layout}")]
    DescriptorCount {
        /// Descriptors given.
        given: usize,
        /// The layout's `desc_count`.
        layout: u32,
    },
    /// A counter given to a [`crate::builder::TableBuilder`] has the name
    /// of an earlier descriptor of the table.
    #[error("descriptor {index} repeats the name of descriptor {first}")]
    NameTaken {
        /// Index the new descriptor would have had.
        index: u32,
        /// Index of the descriptor that has the name.
        first: u32,
    },
    /// A counter given to a [`crate::builder::TableBuilder`] breaks a rule
    /// of the spec on its own (name, kind, unit, scale, count).
    #[error("descriptor {index}: {source}")]
    BadCounter {
        /// Index the descriptor would have had.
        index: u32,
        /// The rule it breaks.
        source: vstats_abi::Error,
    },
    /// The layout or the descriptors break a rule of the ABI.
    #[error("invalid table: {0}")]
    Abi(#[from] vstats_abi::Error),
}

/// Result type of this crate.
pub type Result<T> = core::result::Result<T, Error>;
