//! The C API of vstats, for hypervisors written in C (Xen) and C readers.
//!
//! This crate builds `libvstats_capi.a` (installed as `libvstats.a` and
//! `libvstats.so`), a library that exports the functions declared in the
//! hand-written headers of `capi/include/`:
//!
//! | header | what |
//! |---|---|
//! | `xen/stats_table.h` | the ABI itself, Xen-style (`struct xen_stats_header`, the records, magics, resource ids); a consumer can include it without linking anything |
//! | `vstats_producer.h` | the producer API (this module's [`vstats_layout`], `vstats_table_*`, `vstats_writer_*`, `vstats_publication_*`) |
//! | `vstats_reader.h` | the reader API (feature `reader`, on by default: `vstats_reader_*`, `vstats_snapshot_*`) |
//! | `vstats_errno.h` | the `VSTATS_E*` codes both share |
//! | `vstats.h` | the compatibility header of r2 for one release: the producer API and the old `VSTATS_*` names of the ABI |
//!
//! The functions are thin: the layout arithmetic is
//! [`vstats_abi::layout`], table initialisation and the seq protocol are
//! [`vstats_producer`]. The library allocates nothing: the table state
//! (`struct vstats_table`) and one writer per record (`struct
//! vstats_writer`) live in storage the caller provides, and the caller
//! keeps them in place while the table is used. Every function returns 0
//! or a negative `VSTATS_E*` code and never panics.
//!
//! # Linking it into a C program
//!
//! ```text
//! cargo build -p vstats-capi --release
//! cc -std=c11 -I capi/include -c hv.c
//! cc hv.o target/release/libvstats_capi.a -lpthread -ldl -lm -o hv
//! ```
//!
//! The default build links Rust's `std` into the archive (its panic
//! machinery; nothing here uses it), hence `-lpthread -ldl -lm`. A
//! freestanding hypervisor without libc builds it without `std`, for its
//! bare-metal target, with a panic handler that only satisfies the linker:
//!
//! ```text
//! RUSTFLAGS="-C panic=abort" cargo build -p vstats-capi --release \
//!     --no-default-features --features panic-handler --target x86_64-unknown-none
//! ```
//!
//! and links `target/x86_64-unknown-none/release/libvstats_capi.a` with no
//! extra libraries.
//!
//! # Using it from C
//!
//! ```c
//! #include "vstats_producer.h"
//!
//! static struct vstats_table table;
//! static struct vstats_writer writers[NR_VCPUS];
//!
//! struct vstats_layout l;                      // r3, clock CLOCK_MONOTONIC
//! vstats_layout(NR_VCPUS, sizeof(struct xen_vcpu_stats),
//!               sizeof(struct xen_vcpu_stats), 0,
//!               VSTATS_DEFAULT_PAGE_SIZE, VSTATS_DEFAULT_CACHELINE, &l);
//! void *mem = alloc_pages(l.frames);           // l.mapping_len bytes
//! vstats_table_init_contiguous(&table, mem, l.mapping_len, XEN_VCPU_STATS_MAGIC,
//!                              &l, NULL, boot_id, writers, NR_VCPUS);
//!
//! struct vstats_writer *w;
//! vstats_writer_get(&table, vcpu_id, &w);      // once per vCPU
//! if (vstats_writer_begin(w) == 0) {           // on each runstate change
//!     vstats_writer_set(w, VSTATS_VCPU_W_RUNNING, running_ns);
//!     vstats_writer_set_runstate(w, RUNSTATE_blocked, now_ns);
//!     vstats_writer_end(w);
//! }
//! ```
//!
//! Frames that are not virtually contiguous go to
//! `vstats_table_init_pages` instead, as an array of page pointers that
//! must outlive the table.
//!
//! Reading from C (`vstats_reader.h`; the library maps and validates the
//! table and copies records with the seq protocol, as `vstats-consumer`
//! does, since it is that crate underneath):
//!
//! ```c
//! #include "vstats_reader.h"
//!
//! struct vstats_reader *r;
//! vstats_reader_open("/dev/shm/vstats/vm1/vcpu", &r);
//! size_t n = vstats_snapshot_size(r);
//! struct vstats_snapshot *s = malloc(n);
//! vstats_snapshot_init(s, n, r);
//! vstats_snapshot_take(r, s, 0);               // 0: read the table's clock
//! uint64_t t[4]; uint32_t state; int ext;
//! vstats_snapshot_runstate(s, vcpu, t, &state, &ext);   // R26, up to date
//! free(s);
//! vstats_reader_close(r);
//! ```
//!
//! # Design
//!
//! `vstats_table_init_*` builds the producer's `Table` in the caller's
//! `struct vstats_table`, splits it once into its enable switch and one
//! `RecordWriter` per record, and moves those into the caller's array of
//! `struct vstats_writer` (one cacheline each, so two vCPUs' writers never
//! share a line). `vstats_writer_get` then hands out any record's writer,
//! in any order, at most once: it only flips an atomic flag in the
//! writer's slot, so no second `&mut Table` is ever created. The Rust
//! values borrow the frames, the page list and each other for as long as
//! the table is used; that is the promise the C caller makes by keeping
//! them valid and in place (the header says so at each function).
//!
//! `begin`/`set`/`end` map onto one producer update kept open across
//! calls (the producer's writer keeps its seq privately); if the table is
//! disabled in the middle, the update is abandoned and the record reads
//! busy until the first update after re-enabling.
//!
//! The same functions are callable from Rust (their `# Safety` sections
//! state the promises), which is how the unit tests exercise them.
#![no_std]
#![deny(unsafe_code)]

#[cfg(feature = "std")]
extern crate std;

pub mod error;
mod ffi;
#[cfg(feature = "reader")]
mod reader;

pub use error::{
    VSTATS_E2BIG, VSTATS_EAGAIN, VSTATS_EBADMSG, VSTATS_EBUSY, VSTATS_EFAULT, VSTATS_EINVAL,
    VSTATS_EIO, VSTATS_ENODATA, VSTATS_ENOENT, VSTATS_ENOSPC, VSTATS_ENOTRECOVERABLE,
    VSTATS_EOVERFLOW, VSTATS_EPROTO, VSTATS_ERANGE, VSTATS_ESTALE, VSTATS_OK,
};
pub use ffi::{
    vstats_domain_std_descs, vstats_layout, vstats_layout_r3, vstats_strerror,
    vstats_table_init_contiguous, vstats_table_init_pages, vstats_table_set_enabled,
    vstats_vcpu_std_descs, vstats_writer_begin, vstats_writer_end, vstats_writer_get,
    vstats_writer_set, vstats_writer_set_inactive, vstats_writer_set_runstate,
    vstats_writer_set_unused, vstats_writer_update, VstatsLayout, VstatsTable, VstatsWriter,
};
#[cfg(feature = "std")]
pub use ffi::{
    vstats_publication_close, vstats_publication_generation, vstats_publication_open,
    vstats_publication_table, VstatsPublication,
};
#[cfg(feature = "reader")]
pub use reader::{
    vstats_reader_clock, vstats_reader_close, vstats_reader_counter_count,
    vstats_reader_counter_index, vstats_reader_counter_info, vstats_reader_generation,
    vstats_reader_kind, vstats_reader_nr_records, vstats_reader_open, vstats_reader_open_memory,
    vstats_reader_validate, vstats_snapshot_init, vstats_snapshot_record_status,
    vstats_snapshot_runstate, vstats_snapshot_size, vstats_snapshot_take, vstats_snapshot_value,
    VstatsReader, VstatsSnapshot, VSTATS_RECORD_BUSY, VSTATS_RECORD_NOT_READ, VSTATS_RECORD_OK,
    VSTATS_RECORD_UNUSED, VSTATS_RUNSTATE_UNKNOWN,
};

/// The library never panics; this handler only satisfies the linker of a
/// freestanding build (feature `panic-handler` without `std`).
#[cfg(all(feature = "panic-handler", not(feature = "std"), not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests;
