//! The Xen backend is [`vstats_consumer::xen`]; this adds what only the
//! tool's `check` needs: a domain's raw table as the invariant checker's
//! [`vstats_invariants::RawView`].
#![allow(unsafe_code)]

use std::ops::Deref;

pub use vstats_consumer::xen::{
    DomainEntry, Error, Result, XenStore, FOREIGNMEMORY_LIB, FOREIGNMEMORY_LIB_ENV, MAX_FRAMES,
    XENSTORE_LIB, XENSTORE_LIB_ENV, XEN_FRAME_SIZE,
};

/// The consumer's [`vstats_consumer::xen::Xen`], with [`Xen::map_raw`]
/// for the checker.
#[derive(Clone, Debug)]
pub struct Xen(pub vstats_consumer::xen::Xen);

impl Deref for Xen {
    type Target = vstats_consumer::xen::Xen;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Xen {
    /// As [`vstats_consumer::xen::Xen::load`].
    ///
    /// # Errors
    ///
    /// As [`vstats_consumer::xen::Xen::load`].
    pub fn load() -> Result<Xen> {
        vstats_consumer::xen::Xen::load().map(Xen)
    }

    /// As [`vstats_consumer::xen::Xen::map_raw`], as the checker's view.
    ///
    /// # Errors
    ///
    /// As [`vstats_consumer::xen::Xen::map_raw`].
    pub fn map_raw(&self, domid: u16, id: u32) -> Result<vstats_invariants::RawView> {
        let (ptr, len, owner) = self.0.map_raw(domid, id)?.into_parts();
        // SAFETY: `RawMapping::into_parts` promises that `[ptr, ptr + len)`
        // stays mapped and readable until `owner` is dropped, which the view
        // does after its last access; this process never writes it.
        let view = unsafe {
            vstats_invariants::RawView::from_raw_parts(ptr.as_ptr().cast_const(), len, owner)
        };
        // `into_parts` gives an 8-aligned, non-null pointer.
        view.ok_or_else(|| Error::Map {
            domid,
            what: if id == 0 { "vCPU" } else { "domain" },
            nr_frames: len.div_ceil(XEN_FRAME_SIZE as usize) as u64,
            io: std::io::Error::other("the mapping is not 8-byte aligned"),
        })
    }
}
