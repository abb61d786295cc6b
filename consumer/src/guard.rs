//! Loads from shared memory that survive the memory going away, and the
//! consistent copy of records that every snapshot goes through.
//!
//! A file truncated while it is mapped makes loads of the lost pages fault
//! with `SIGBUS`, which would kill the reader. The loads of [`crate::mem`]
//! and the record copies of [`crate::Table`] go through the few routines
//! below, written in assembly so that their address ranges are known; a
//! process-wide `SIGBUS` handler sends a fault inside one of those ranges
//! to that routine's error exit, the way the kernel's exception tables
//! treat a faulting `copy_from_user`. The caller sees "faulted" and reports
//! the table as lost, never dies.
//!
//! Built on Linux x86-64 outside Miri (`GUARDED` is true there); on other
//! targets and under Miri (and loom) every copy is the per-word atomic
//! path below ([`CopyPath::Atomic`]) and a fault is not survived. On
//! 32-bit targets that path loads each word as two 32-bit halves
//! (`vstats_abi::seqlock::Word`; its module docs, "32-bit consumers",
//! give the argument).
//!
//! # The record sweep
//!
//! `sweep` copies, from each of `nrec` records `stride` bytes apart, a
//! list of runs of counter words, each inside the record's own seq window:
//! load the seq (S1); when even, copy every run; load the seq again (S3);
//! store both seqs for the caller, who keeps a record's copy only when
//! `s1` is even and `s1 == s3`, and retries the others one by one. One call
//! reads a whole table, so the per-record cost is the seq protocol and the
//! copy, not a function call and its bookkeeping. The status is fused into
//! the loop: the routine also says whether any record was odd or changed,
//! so a table read consistently in one pass costs no second pass over its
//! seqs. Four implementations:
//!
//! | [`CopyPath`] | copy of a run | where |
//! |---|---|---|
//! | `Atomic` | one relaxed `AtomicU64` load per word (two `AtomicU32` loads on 32-bit targets), acquire fences at S1 and S3 | every target; the only one under Miri and loom |
//! | `Scalar` | one 8-byte `mov` per word | Linux x86-64 |
//! | `Sse2` | 16-byte `movdqu` loads, an 8-byte `mov` for an odd tail | Linux x86-64 (SSE2 is baseline) |
//! | `Avx2` | 32-byte `vmovdqu` loads, then 16 and 8 | Linux x86-64 CPUs with AVX2 (run-time detection) |
//!
//! A sweep of exactly one run of 1 to 16 words (a whole record of up to
//! 17 words, or a few counters of a subset) goes, on the SSE2 and AVX2
//! paths, to a routine without a copy loop: a fixed two or four vector
//! loads (one 8-byte load for one word), the first at the run's start and
//! the last ending at its end, overlapping in between when the run is not
//! a multiple of the vector. Runs of other lengths, several runs, and the
//! scalar path go through the copy loops.
//!
//! The fastest available path is chosen once per process (AVX2 when the
//! CPU has it, else SSE2); `VSTATS_COPY_PATH=atomic|scalar|sse2|avx2` in
//! the environment, read at that moment, or [`crate::mem::set_copy_path`]
//! choose another (tests and benchmarks run every path).
//!
//! # Soundness
//!
//! - What the assembly does, in Rust's terms. The routines only load from
//!   the shared memory and store into memory the caller owns exclusively
//!   (`dst`, `seqs`, the argument block). Inline and global assembly is
//!   outside Rust's memory model: the rules ask only that its effect be
//!   one the abstract machine could produce. A load of the shared memory
//!   by these routines is, in effect, a relaxed atomic load of each of the
//!   bytes it covers (racing stores of the producer are then not a data
//!   race, and the bytes may come from different stores); the 8-byte
//!   `mov`s are exactly what a `Relaxed` `AtomicU64` load compiles to. A
//!   racy copy may hold any mixture of old and new bytes, and that is
//!   allowed: what decides whether a copy is used is the seq protocol
//!   (the argument `atomic-maybe-uninit` and the kernel's user-copy
//!   routines rest on), never the values copied.
//! - What the assembly may assume: every seq is 4-aligned and every run
//!   8-aligned and inside a mapping of `crate::raw` (its bounds and
//!   alignment check ran once for the whole sweep), and the destination
//!   is private. Vector loads need no more than 8-byte alignment
//!   (`movdqu`/`vmovdqu` take any address); no 16- or 32-byte atomicity is
//!   assumed, only that each byte of the run is loaded at least once
//!   between S1 and S3 and no byte outside it is loaded. The short-run
//!   routines load some bytes twice (overlapping loads); the later load's
//!   value is the one stored, and both lie between S1 and S3, so the
//!   argument is unchanged: the copy is used only when `s1 == s3`.
//! - Ordering. S1, the copy and S3 are loads in program order. x86-64
//!   never reorders a load with an older load (TSO), and that holds for
//!   `movdqu` and `vmovdqu` as for `mov` (only non-temporal loads and
//!   string operations are weaker, and none is used), so the acquire
//!   fences after S1 and before S3 in `vstats_abi::seqlock`, which compile
//!   to no instruction on x86-64, are implied. The routines are opaque
//!   calls, so the compiler moves none of our accesses across them. The
//!   fences that remain in Rust are the acquire fence after the magic in
//!   `MemView::copy_prefix` (publication of the head) and those of the
//!   atomic path.
//! - The deliberately broken path (feature `broken-copy`, used only by the
//!   test that shows the protocol catches tearing) skips S3 and reports
//!   `s3 = s1`; it is never chosen unless a test asks for it by name.
//! - Recovery. The single loads are leaf routines that push nothing, so at
//!   a fault the stack is as at entry: the handler rewrites the saved
//!   instruction pointer to their error exit, which returns 1. The sweeps
//!   push six callee-saved registers before their first load of shared
//!   memory and pop nothing before their last, so their error exits pop
//!   the six and return 1 (the AVX2 ones clear the upper vector halves
//!   first, as their normal exits do). A sweep's error exit stores the number
//!   of records left (the faulting one included, in a register the
//!   routine keeps) into its argument block, so the caller knows which
//!   records were read before the fault. Stores already
//!   made into `dst` are to the caller's memory and are discarded by it.
//! - The handler ([`install`]) is installed once, with `SA_SIGINFO |
//!   SA_ONSTACK`. A `SIGBUS` whose instruction pointer is outside the
//!   routines goes to the handler that was there before (the standard
//!   library's stack-overflow handler, say); when there was none (or it
//!   ignored the signal, which a fault cannot be), the default action is
//!   restored and the signal raised again, so the process dies of it as it
//!   would have without us.

use core::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicU8, Ordering};

use vstats_abi::seqlock::Word;

/// The routine every consistent copy of record words goes through; see
/// [`crate::mem::copy_path`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CopyPath {
    /// Relaxed `AtomicU64` loads (two `AtomicU32` loads per word on 32-bit
    /// targets) with the acquire fences of `vstats_abi::seqlock`: every
    /// target, and the only path under Miri and loom. Not fault-guarded: where it is chosen on Linux x86-64, a
    /// truncated table file kills the reader.
    Atomic,
    /// Fault-guarded assembly, one 8-byte load per word (Linux x86-64).
    Scalar,
    /// Fault-guarded assembly with 16-byte SSE2 loads (Linux x86-64).
    Sse2,
    /// Fault-guarded assembly with 32-byte AVX2 loads (Linux x86-64 CPUs
    /// with AVX2).
    Avx2,
    /// A deliberately broken copy that does not re-read the seq after the
    /// copy: for the test that shows tearing is caught, never otherwise.
    #[cfg(feature = "broken-copy")]
    #[doc(hidden)]
    BrokenNoRecheck,
}

impl CopyPath {
    fn code(self) -> u8 {
        match self {
            CopyPath::Atomic => 1,
            CopyPath::Scalar => 2,
            CopyPath::Sse2 => 3,
            CopyPath::Avx2 => 4,
            #[cfg(feature = "broken-copy")]
            CopyPath::BrokenNoRecheck => 5,
        }
    }

    fn from_code(c: u8) -> Option<CopyPath> {
        Some(match c {
            1 => CopyPath::Atomic,
            2 => CopyPath::Scalar,
            3 => CopyPath::Sse2,
            4 => CopyPath::Avx2,
            #[cfg(feature = "broken-copy")]
            5 => CopyPath::BrokenNoRecheck,
            _ => return None,
        })
    }

    /// The path's name, as `VSTATS_COPY_PATH` spells it.
    pub fn name(self) -> &'static str {
        match self {
            CopyPath::Atomic => "atomic",
            CopyPath::Scalar => "scalar",
            CopyPath::Sse2 => "sse2",
            CopyPath::Avx2 => "avx2",
            #[cfg(feature = "broken-copy")]
            CopyPath::BrokenNoRecheck => "broken-no-recheck",
        }
    }

    /// Every path this build and CPU can run, slowest first.
    pub fn available() -> Vec<CopyPath> {
        [
            CopyPath::Atomic,
            CopyPath::Scalar,
            CopyPath::Sse2,
            CopyPath::Avx2,
        ]
        .into_iter()
        .filter(|p| imp::can_run(*p))
        .collect()
    }
}

/// The chosen path's code; 0 until first use.
static PATH: AtomicU8 = AtomicU8::new(0);

/// The path copies go through (chosen at first use).
#[inline]
pub(crate) fn copy_path() -> CopyPath {
    match CopyPath::from_code(PATH.load(Ordering::Relaxed)) {
        Some(p) => p,
        None => choose_path(),
    }
}

/// The first use's choice of [`copy_path`].
#[cold]
fn choose_path() -> CopyPath {
    let wanted = std::env::var("VSTATS_COPY_PATH").ok().and_then(|v| {
        [
            CopyPath::Atomic,
            CopyPath::Scalar,
            CopyPath::Sse2,
            CopyPath::Avx2,
        ]
        .into_iter()
        .find(|p| p.name() == v && imp::can_run(*p))
    });
    let p = wanted.unwrap_or_else(imp::best);
    // A racing first use chooses the same path (or the one a caller set).
    let _ = PATH.compare_exchange(0, p.code(), Ordering::Relaxed, Ordering::Relaxed);
    CopyPath::from_code(PATH.load(Ordering::Relaxed)).unwrap_or(p)
}

/// Chooses `p` for every later copy in this process; false (nothing
/// changes) when this build or CPU cannot run it.
pub(crate) fn set_copy_path(p: CopyPath) -> bool {
    if !imp::can_run(p) {
        return false;
    }
    PATH.store(p.code(), Ordering::Relaxed);
    true
}

/// One run of counter words copied from each record of a sweep: `words`
/// words from byte `src` of the record to byte `dst` of the record's
/// destination. The layout is the assembly's (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    /// Byte offset of the run in the record (a multiple of 8).
    pub(crate) src: u32,
    /// Byte offset of the run in the destination record (a multiple of 8).
    pub(crate) dst: u32,
    /// Words in the run.
    pub(crate) words: u32,
    pub(crate) _pad: u32,
}

impl Run {
    /// Counter words `[first, first + words)` of a record (word 0 at byte
    /// 8), to the same words of the destination.
    pub(crate) fn counters(first: u32, words: u32) -> Run {
        Run {
            src: first.saturating_mul(8).saturating_add(8),
            dst: first.saturating_mul(8),
            words,
            _pad: 0,
        }
    }

    /// Byte just past the run in the record.
    pub(crate) fn src_end(&self) -> u64 {
        u64::from(self.src) + 8 * u64::from(self.words)
    }

    /// Word just past the run in the destination.
    pub(crate) fn dst_end_word(&self) -> usize {
        (self.dst / 8) as usize + self.words as usize
    }
}

const _: () = assert!(core::mem::size_of::<Run>() == 16);

/// The per-word atomic sweep ([`CopyPath::Atomic`]): the reader side of
/// `vstats_abi::seqlock` (S1-S4) with relaxed loads and acquire fences,
/// each word loaded by [`Word::load_relaxed`] (in two halves on 32-bit
/// targets). Never fails.
///
/// # Safety
///
/// As for [`sweep`].
unsafe fn sweep_atomic(
    rec: *const u8,
    stride: usize,
    nrec: usize,
    runs: &[Run],
    dst: *mut u64,
    dst_stride: usize,
    seqs: *mut [u32; 2],
) -> bool {
    let mut bad = 0;
    for k in 0..nrec {
        let r = rec.wrapping_add(k.wrapping_mul(stride));
        let d = dst.wrapping_add(k.wrapping_mul(dst_stride));
        // SAFETY: the seq of record `k` is an aligned, live atomic location
        // (the caller's promise; atomics are `UnsafeCell`s, so sharing
        // them is fine).
        let seq = unsafe { &*r.cast::<AtomicU32>() };
        let s1 = seq.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        let s3 = if s1 & 1 == 1 {
            s1
        } else {
            for run in runs {
                let src = r.wrapping_add(run.src as usize).cast::<AtomicU64>();
                let out = d.wrapping_add((run.dst / 8) as usize);
                for i in 0..run.words as usize {
                    // SAFETY: word `i` of the run is an aligned, live
                    // atomic word of record `k` (caller).
                    let w = unsafe { &*src.wrapping_add(i) }.load_relaxed();
                    // SAFETY: the destination word is valid for writes and
                    // ours (caller).
                    unsafe { out.wrapping_add(i).write(w) };
                }
            }
            fence(Ordering::Acquire);
            seq.load(Ordering::Relaxed)
        };
        bad |= (s1 ^ s3) | (s1 & 1);
        // SAFETY: `seqs` is valid for `nrec` writes (caller).
        unsafe { seqs.wrapping_add(k).write([s1, s3]) };
    }
    bad != 0
}

/// One pass of the seq protocol over `nrec` records: for record `k` at
/// `rec + k * stride`, loads its seq (S1), copies every run when it is
/// even into `dst + k * dst_stride` (words), loads the seq again (S3) and
/// stores `[s1, s3]` into `seqs[k]` (`s3 == s1` when `s1` is odd and
/// nothing was copied). `Ok(bad)`: `bad` is false when every record was
/// read consistently (each `s1` even and equal to its `s3`), so the
/// caller need not look at `seqs` at all. `Err(done)` when a load faulted
/// while record `done` was read: records before it are complete, the rest
/// are not.
///
/// # Safety
///
/// The caller promises, for every `k < nrec`: the seq at `rec + k *
/// stride` (4-aligned) and each run's words at `rec + k * stride +
/// run.src` (8-aligned) lie in a region of `crate::raw` (invariants 2 and
/// 3, or a mapping that shrank); `dst + k * dst_stride + run.dst / 8` is
/// valid for `run.words` writes for each run and no one else accesses it;
/// `seqs` is valid for `nrec` writes.
#[inline]
pub(crate) unsafe fn sweep(
    rec: *const u8,
    stride: usize,
    nrec: usize,
    runs: &[Run],
    dst: *mut u64,
    dst_stride: usize,
    seqs: *mut [u32; 2],
) -> Result<bool, usize> {
    // SAFETY: the caller's promise, passed on.
    unsafe { imp::sweep(rec, stride, nrec, runs, dst, dst_stride, seqs) }
}

#[cfg(all(target_os = "linux", target_arch = "x86_64", not(miri), not(loom)))]
mod imp {
    use core::{
        ffi::{c_int, c_void},
        ptr,
    };
    use std::sync::{Once, OnceLock};

    use super::{CopyPath, Run};

    // Intel syntax (the default). The routines between `start` and `end`
    // may fault on their loads from `src`; `fixup` is their error exit.
    // Symbols carry the crate and a version, and are hidden, so two copies
    // of the crate in one binary do not clash.
    core::arch::global_asm!(
        ".text",
        ".p2align 4",
        ".globl vstats_consumer_guard_v1_start",
        ".hidden vstats_consumer_guard_v1_start",
        "vstats_consumer_guard_v1_start:",
        // load_N(src: rdi, out: rsi) -> eax
        ".globl vstats_consumer_guard_v1_load64",
        ".hidden vstats_consumer_guard_v1_load64",
        "vstats_consumer_guard_v1_load64:",
        "    mov rcx, qword ptr [rdi]",
        "    mov qword ptr [rsi], rcx",
        "    xor eax, eax",
        "    ret",
        ".globl vstats_consumer_guard_v1_load32",
        ".hidden vstats_consumer_guard_v1_load32",
        "vstats_consumer_guard_v1_load32:",
        "    mov ecx, dword ptr [rdi]",
        "    mov dword ptr [rsi], ecx",
        "    xor eax, eax",
        "    ret",
        ".globl vstats_consumer_guard_v1_load16",
        ".hidden vstats_consumer_guard_v1_load16",
        "vstats_consumer_guard_v1_load16:",
        "    movzx ecx, word ptr [rdi]",
        "    mov word ptr [rsi], cx",
        "    xor eax, eax",
        "    ret",
        ".globl vstats_consumer_guard_v1_load8",
        ".hidden vstats_consumer_guard_v1_load8",
        "vstats_consumer_guard_v1_load8:",
        "    movzx ecx, byte ptr [rdi]",
        "    mov byte ptr [rsi], cl",
        "    xor eax, eax",
        "    ret",
        ".globl vstats_consumer_guard_v1_end",
        ".hidden vstats_consumer_guard_v1_end",
        "vstats_consumer_guard_v1_end:",
        ".globl vstats_consumer_guard_v1_fixup",
        ".hidden vstats_consumer_guard_v1_fixup",
        "vstats_consumer_guard_v1_fixup:",
        "    mov eax, 1",
        "    ret",
    );

    /// One sweep routine in two entries, its end symbol and its error
    /// exit: `name(args: rdi) -> eax` for any number of runs and
    /// `name_1(args: rdi) -> eax` for exactly one, with `args` a
    /// [`SweepArgs`]. `$copy` copies `rcx` words from `rsi` to `rdx` (may
    /// clobber `rax`, `rcx`, `rsi`, `rdx`, `xmm0`/`ymm0`); `$s3` loads the
    /// second seq into `eax` (`r8` points at the record's seq, `[r11]`
    /// holds the first); `$leave` runs before every return.
    ///
    /// Registers: rdi the argument block (never changed), r8 record, r9
    /// records left, r10 destination record, r11 seqs, r12 stride, r13
    /// destination stride; multi-run: r14 runs, r15 run count, rbx run,
    /// rbp runs left; one run: r14 its source offset, r15 its destination
    /// offset, rbp its words. The error exit stores r9 (records left, the
    /// faulting one included) into the block.
    macro_rules! sweep_asm {
        ($name:literal, $copy:literal, $s3:literal, $leave:literal) => {
            core::arch::global_asm!(
                ".text",
                ".p2align 4",
                concat!(".globl ", $name),
                concat!(".hidden ", $name),
                concat!($name, ":"),
                "    push rbx",
                "    push rbp",
                "    push r12",
                "    push r13",
                "    push r14",
                "    push r15",
                "    mov r8, qword ptr [rdi]",
                "    mov r12, qword ptr [rdi + 8]",
                "    mov r9, qword ptr [rdi + 16]",
                "    mov r14, qword ptr [rdi + 24]",
                "    mov r15, qword ptr [rdi + 32]",
                "    mov r10, qword ptr [rdi + 40]",
                "    mov r13, qword ptr [rdi + 48]",
                "    mov r11, qword ptr [rdi + 56]",
                "2:",
                "    test r9, r9",
                "    jz 9f",
                // S1
                "    mov eax, dword ptr [r8]",
                "    mov dword ptr [r11], eax",
                "    test eax, 1",
                "    jnz 8f",
                "    mov rbx, r14",
                "    mov rbp, r15",
                "3:",
                "    test rbp, rbp",
                "    jz 6f",
                "    mov esi, dword ptr [rbx]",
                "    add rsi, r8",
                "    mov edx, dword ptr [rbx + 4]",
                "    add rdx, r10",
                "    mov ecx, dword ptr [rbx + 8]",
                $copy,
                "    add rbx, 16",
                "    dec rbp",
                "    jmp 3b",
                "6:",
                // S3
                $s3,
                "7:",
                "    mov dword ptr [r11 + 4], eax",
                // Status: s1 ^ s3 is nonzero for a changed record.
                "    xor eax, dword ptr [r11]",
                "    or dword ptr [rdi + 72], eax",
                "    add r8, r12",
                "    add r10, r13",
                "    add r11, 8",
                "    dec r9",
                "    jmp 2b",
                // An odd s1: nothing copied, s3 = s1, the record is busy.
                "8:",
                "    or dword ptr [rdi + 72], 1",
                "    jmp 7b",
                // The one-run entry.
                ".p2align 4",
                concat!(".globl ", $name, "_1"),
                concat!(".hidden ", $name, "_1"),
                concat!($name, "_1:"),
                "    push rbx",
                "    push rbp",
                "    push r12",
                "    push r13",
                "    push r14",
                "    push r15",
                "    mov r8, qword ptr [rdi]",
                "    mov r12, qword ptr [rdi + 8]",
                "    mov r9, qword ptr [rdi + 16]",
                "    mov rax, qword ptr [rdi + 24]",
                "    mov r14d, dword ptr [rax]",
                "    mov r15d, dword ptr [rax + 4]",
                "    mov ebp, dword ptr [rax + 8]",
                "    mov r10, qword ptr [rdi + 40]",
                "    mov r13, qword ptr [rdi + 48]",
                "    mov r11, qword ptr [rdi + 56]",
                "    test r9, r9",
                "    jz 9f",
                ".p2align 4",
                "2:",
                // S1
                "    mov eax, dword ptr [r8]",
                "    mov dword ptr [r11], eax",
                "    test eax, 1",
                "    jnz 8f",
                "    lea rsi, [r8 + r14]",
                "    lea rdx, [r10 + r15]",
                "    mov rcx, rbp",
                $copy,
                // S3
                $s3,
                "7:",
                "    mov dword ptr [r11 + 4], eax",
                // Status: s1 ^ s3 is nonzero for a changed record.
                "    xor eax, dword ptr [r11]",
                "    or dword ptr [rdi + 72], eax",
                "    add r8, r12",
                "    add r10, r13",
                "    add r11, 8",
                "    dec r9",
                "    jnz 2b",
                "9:",
                $leave,
                "    pop r15",
                "    pop r14",
                "    pop r13",
                "    pop r12",
                "    pop rbp",
                "    pop rbx",
                "    xor eax, eax",
                "    ret",
                "8:",
                "    or dword ptr [rdi + 72], 1",
                "    jmp 7b",
                concat!(".globl ", $name, "_end"),
                concat!(".hidden ", $name, "_end"),
                concat!($name, "_end:"),
                concat!(".globl ", $name, "_fixup"),
                concat!(".hidden ", $name, "_fixup"),
                concat!($name, "_fixup:"),
                "    mov qword ptr [rdi + 64], r9",
                $leave,
                "    pop r15",
                "    pop r14",
                "    pop r13",
                "    pop r12",
                "    pop rbp",
                "    pop rbx",
                "    mov eax, 1",
                "    ret",
            );
        };
    }

    sweep_asm!(
        "vstats_consumer_guard_v2_sweep_scalar",
        "    test rcx, rcx
             jz 15f
         14: mov rax, qword ptr [rsi]
             mov qword ptr [rdx], rax
             add rsi, 8
             add rdx, 8
             dec rcx
             jnz 14b
         15:",
        "    mov eax, dword ptr [r8]",
        "    nop"
    );

    sweep_asm!(
        "vstats_consumer_guard_v2_sweep_sse2",
        "    cmp rcx, 2
             jb 13f
         12: movdqu xmm0, xmmword ptr [rsi]
             movdqu xmmword ptr [rdx], xmm0
             add rsi, 16
             add rdx, 16
             sub rcx, 2
             cmp rcx, 2
             jae 12b
         13: test rcx, rcx
             jz 15f
             mov rax, qword ptr [rsi]
             mov qword ptr [rdx], rax
         15:",
        "    mov eax, dword ptr [r8]",
        "    nop"
    );

    sweep_asm!(
        "vstats_consumer_guard_v2_sweep_avx2",
        "    cmp rcx, 4
             jb 13f
         12: vmovdqu ymm0, ymmword ptr [rsi]
             vmovdqu ymmword ptr [rdx], ymm0
             add rsi, 32
             add rdx, 32
             sub rcx, 4
             cmp rcx, 4
             jae 12b
         13: cmp rcx, 2
             jb 14f
             vmovdqu xmm0, xmmword ptr [rsi]
             vmovdqu xmmword ptr [rdx], xmm0
             add rsi, 16
             add rdx, 16
             sub rcx, 2
         14: test rcx, rcx
             jz 15f
             mov rax, qword ptr [rsi]
             mov qword ptr [rdx], rax
         15:",
        "    mov eax, dword ptr [r8]",
        "    vzeroupper"
    );

    // The broken copy: the SSE2 routine without S3 (the first seq is
    // reported again). Only the tearing test selects it.
    #[cfg(feature = "broken-copy")]
    sweep_asm!(
        "vstats_consumer_guard_v2_sweep_broken",
        "    cmp rcx, 2
             jb 13f
         12: movdqu xmm0, xmmword ptr [rsi]
             movdqu xmmword ptr [rdx], xmm0
             add rsi, 16
             add rdx, 16
             sub rcx, 2
             cmp rcx, 2
             jae 12b
         13: test rcx, rcx
             jz 15f
             mov rax, qword ptr [rsi]
             mov qword ptr [rdx], rax
         15:",
        "    mov eax, dword ptr [r11]",
        "    nop"
    );

    /// The short-run sweeps: exactly one run, of a few words, copied
    /// with a fixed number of possibly overlapping loads and stores and no
    /// loop (`name(args: rdi) -> eax`, with `args` a [`SweepArgs`] whose
    /// `tail` is the run's bytes minus the bytes one pair of `$copy`'s
    /// loads covers). The status pass is fused into the loop: `bad` is
    /// nonzero when some record's `s1` was odd or differed from its `s3`.
    ///
    /// Registers: rdi the argument block, r8 record, r9 records left, r10
    /// destination record, r11 seqs, r12 stride, r13 destination stride,
    /// r14 the run's source offset, r15 its destination offset, rbp the
    /// source offset of its tail, rbx the destination offset of its tail,
    /// esi the status, eax s1, ecx s3. `$copy` may use rdx and xmm0-xmm3 /
    /// ymm0-ymm3 only. The error exit stores r9 into the block.
    macro_rules! sweep_short_asm {
        ($name:literal, $copy:literal, $leave:literal) => {
            sweep_short_asm!($name, $copy, "    xor ecx, eax", $leave);
        };
        ($name:literal, $copy:literal, $status:literal, $leave:literal) => {
            core::arch::global_asm!(
                ".text",
                ".p2align 4",
                concat!(".globl ", $name),
                concat!(".hidden ", $name),
                concat!($name, ":"),
                "    push rbx",
                "    push rbp",
                "    push r12",
                "    push r13",
                "    push r14",
                "    push r15",
                "    mov r8, qword ptr [rdi]",
                "    mov r12, qword ptr [rdi + 8]",
                "    mov r9, qword ptr [rdi + 16]",
                "    mov rax, qword ptr [rdi + 24]",
                "    mov r14d, dword ptr [rax]",
                "    mov r15d, dword ptr [rax + 4]",
                "    mov rbp, qword ptr [rdi + 80]",
                "    lea rbx, [r15 + rbp]",
                "    add rbp, r14",
                "    mov r10, qword ptr [rdi + 40]",
                "    mov r13, qword ptr [rdi + 48]",
                "    mov r11, qword ptr [rdi + 56]",
                "    xor esi, esi",
                "    test r9, r9",
                "    jz 9f",
                ".p2align 4",
                "2:",
                // S1
                "    mov eax, dword ptr [r8]",
                "    mov dword ptr [r11], eax",
                "    test eax, 1",
                "    jnz 8f",
                $copy,
                // S3, and the status: s1 ^ s3 is nonzero for a changed
                // record.
                "    mov ecx, dword ptr [r8]",
                "    mov dword ptr [r11 + 4], ecx",
                $status,
                "    or esi, ecx",
                "7:",
                "    add r8, r12",
                "    add r10, r13",
                "    add r11, 8",
                "    dec r9",
                "    jnz 2b",
                "9:",
                "    mov dword ptr [rdi + 72], esi",
                $leave,
                "    pop r15",
                "    pop r14",
                "    pop r13",
                "    pop r12",
                "    pop rbp",
                "    pop rbx",
                "    xor eax, eax",
                "    ret",
                // An odd s1: nothing copied, s3 = s1, the record is busy.
                "8:",
                "    mov dword ptr [r11 + 4], eax",
                "    or esi, 1",
                "    jmp 7b",
                concat!(".globl ", $name, "_end"),
                concat!(".hidden ", $name, "_end"),
                concat!($name, "_end:"),
                concat!(".globl ", $name, "_fixup"),
                concat!(".hidden ", $name, "_fixup"),
                concat!($name, "_fixup:"),
                "    mov qword ptr [rdi + 64], r9",
                $leave,
                "    pop r15",
                "    pop r14",
                "    pop r13",
                "    pop r12",
                "    pop rbp",
                "    pop rbx",
                "    mov eax, 1",
                "    ret",
            );
        };
    }

    // One word (tail 0).
    sweep_short_asm!(
        "vstats_consumer_guard_v3_sweep_w1",
        "    mov rdx, qword ptr [r8 + r14]
             mov qword ptr [r10 + r15], rdx",
        "    nop"
    );

    // 2 to 4 words: two 16-byte loads, at the start and at the end of the
    // run (tail = bytes - 16; they overlap for 3 words, coincide for 2).
    sweep_short_asm!(
        "vstats_consumer_guard_v3_sweep_x2",
        "    movdqu xmm0, xmmword ptr [r8 + r14]
             movdqu xmm1, xmmword ptr [r8 + rbp]
             movdqu xmmword ptr [r10 + r15], xmm0
             movdqu xmmword ptr [r10 + rbx], xmm1",
        "    nop"
    );

    // 5 to 8 words, SSE2: the first 32 bytes and the last 32 (tail =
    // bytes - 32).
    sweep_short_asm!(
        "vstats_consumer_guard_v3_sweep_x4",
        "    movdqu xmm0, xmmword ptr [r8 + r14]
             movdqu xmm1, xmmword ptr [r8 + r14 + 16]
             movdqu xmm2, xmmword ptr [r8 + rbp]
             movdqu xmm3, xmmword ptr [r8 + rbp + 16]
             movdqu xmmword ptr [r10 + r15], xmm0
             movdqu xmmword ptr [r10 + r15 + 16], xmm1
             movdqu xmmword ptr [r10 + rbx], xmm2
             movdqu xmmword ptr [r10 + rbx + 16], xmm3",
        "    nop"
    );

    // 5 to 8 words, AVX2: two 32-byte loads (tail = bytes - 32).
    sweep_short_asm!(
        "vstats_consumer_guard_v3_sweep_y2",
        "    vmovdqu ymm0, ymmword ptr [r8 + r14]
             vmovdqu ymm1, ymmword ptr [r8 + rbp]
             vmovdqu ymmword ptr [r10 + r15], ymm0
             vmovdqu ymmword ptr [r10 + rbx], ymm1",
        "    vzeroupper"
    );

    // 9 to 16 words, AVX2: the first 64 bytes and the last 64 (tail =
    // bytes - 64).
    sweep_short_asm!(
        "vstats_consumer_guard_v3_sweep_y4",
        "    vmovdqu ymm0, ymmword ptr [r8 + r14]
             vmovdqu ymm1, ymmword ptr [r8 + r14 + 32]
             vmovdqu ymm2, ymmword ptr [r8 + rbp]
             vmovdqu ymm3, ymmword ptr [r8 + rbp + 32]
             vmovdqu ymmword ptr [r10 + r15], ymm0
             vmovdqu ymmword ptr [r10 + r15 + 32], ymm1
             vmovdqu ymmword ptr [r10 + rbx], ymm2
             vmovdqu ymmword ptr [r10 + rbx + 32], ymm3",
        "    vzeroupper"
    );

    // 17 words and more, AVX2: a loop of four 32-byte loads (128 bytes)
    // over the first `lead` bytes (`tail` = `lead`, the largest multiple
    // of 128 below the run's bytes; `neg` = -`lead`), then the run's last
    // 128 bytes (at `back` = bytes - 128 - `lead` from the loop's end).
    // The copy uses rax, so the status reloads s1 from the seqs.
    sweep_short_asm!(
        "vstats_consumer_guard_v3_sweep_ylong",
        "    lea rdx, [r8 + rbp]
             lea rcx, [r10 + rbx]
             mov rax, qword ptr [rdi + 88]
         16: vmovdqu ymm0, ymmword ptr [rdx + rax]
             vmovdqu ymm1, ymmword ptr [rdx + rax + 32]
             vmovdqu ymm2, ymmword ptr [rdx + rax + 64]
             vmovdqu ymm3, ymmword ptr [rdx + rax + 96]
             vmovdqu ymmword ptr [rcx + rax], ymm0
             vmovdqu ymmword ptr [rcx + rax + 32], ymm1
             vmovdqu ymmword ptr [rcx + rax + 64], ymm2
             vmovdqu ymmword ptr [rcx + rax + 96], ymm3
             add rax, 128
             jnz 16b
             mov rax, qword ptr [rdi + 96]
             vmovdqu ymm0, ymmword ptr [rdx + rax]
             vmovdqu ymm1, ymmword ptr [rdx + rax + 32]
             vmovdqu ymm2, ymmword ptr [rdx + rax + 64]
             vmovdqu ymm3, ymmword ptr [rdx + rax + 96]
             vmovdqu ymmword ptr [rcx + rax], ymm0
             vmovdqu ymmword ptr [rcx + rax + 32], ymm1
             vmovdqu ymmword ptr [rcx + rax + 64], ymm2
             vmovdqu ymmword ptr [rcx + rax + 96], ymm3",
        "    xor ecx, dword ptr [r11]",
        "    vzeroupper"
    );

    // 9 words and more, SSE2: as the AVX2 one with four 16-byte loads (64
    // bytes a round; `lead` a multiple of 64, the last 64 bytes after).
    sweep_short_asm!(
        "vstats_consumer_guard_v3_sweep_xlong",
        "    lea rdx, [r8 + rbp]
             lea rcx, [r10 + rbx]
             mov rax, qword ptr [rdi + 88]
         16: movdqu xmm0, xmmword ptr [rdx + rax]
             movdqu xmm1, xmmword ptr [rdx + rax + 16]
             movdqu xmm2, xmmword ptr [rdx + rax + 32]
             movdqu xmm3, xmmword ptr [rdx + rax + 48]
             movdqu xmmword ptr [rcx + rax], xmm0
             movdqu xmmword ptr [rcx + rax + 16], xmm1
             movdqu xmmword ptr [rcx + rax + 32], xmm2
             movdqu xmmword ptr [rcx + rax + 48], xmm3
             add rax, 64
             jnz 16b
             mov rax, qword ptr [rdi + 96]
             movdqu xmm0, xmmword ptr [rdx + rax]
             movdqu xmm1, xmmword ptr [rdx + rax + 16]
             movdqu xmm2, xmmword ptr [rdx + rax + 32]
             movdqu xmm3, xmmword ptr [rdx + rax + 48]
             movdqu xmmword ptr [rcx + rax], xmm0
             movdqu xmmword ptr [rcx + rax + 16], xmm1
             movdqu xmmword ptr [rcx + rax + 32], xmm2
             movdqu xmmword ptr [rcx + rax + 48], xmm3",
        "    xor ecx, dword ptr [r11]",
        "    nop"
    );

    /// The sweeps' argument block (offsets are the assembly's).
    #[repr(C)]
    struct SweepArgs {
        rec: *const u8,
        stride: usize,
        nrec: usize,
        runs: *const Run,
        nruns: usize,
        dst: *mut u64,
        /// Bytes.
        dst_stride: usize,
        seqs: *mut [u32; 2],
        /// Records not yet read (the faulting one included), stored by
        /// the error exit.
        left: usize,
        /// Nonzero when some record was found odd or changed (stored by
        /// a routine that returns 0; 0 on entry).
        bad: u32,
        _pad: u32,
        /// The short-run routines' tail offset (bytes into the run); the
        /// long-run ones' `lead`.
        tail: usize,
        /// The long-run routines' `-lead` (wrapping).
        neg: usize,
        /// The long-run routines' `bytes - unit - lead` (wrapping).
        back: usize,
    }
    const _: () = assert!(core::mem::offset_of!(SweepArgs, seqs) == 56);
    const _: () = assert!(core::mem::offset_of!(SweepArgs, left) == 64);
    const _: () = assert!(core::mem::offset_of!(SweepArgs, bad) == 72);
    const _: () = assert!(core::mem::offset_of!(SweepArgs, tail) == 80);
    const _: () = assert!(core::mem::offset_of!(SweepArgs, back) == 96);

    type SweepFn = unsafe extern "C" fn(*mut SweepArgs) -> u32;

    extern "C" {
        fn vstats_consumer_guard_v1_start();
        fn vstats_consumer_guard_v1_end();
        fn vstats_consumer_guard_v1_fixup();
        fn vstats_consumer_guard_v1_load64(src: *const u64, out: *mut u64) -> u32;
        fn vstats_consumer_guard_v1_load32(src: *const u32, out: *mut u32) -> u32;
        fn vstats_consumer_guard_v1_load16(src: *const u16, out: *mut u16) -> u32;
        fn vstats_consumer_guard_v1_load8(src: *const u8, out: *mut u8) -> u32;
        fn vstats_consumer_guard_v2_sweep_scalar(args: *mut SweepArgs) -> u32;
        fn vstats_consumer_guard_v2_sweep_scalar_1(args: *mut SweepArgs) -> u32;
        fn vstats_consumer_guard_v2_sweep_scalar_end();
        fn vstats_consumer_guard_v2_sweep_scalar_fixup();
        fn vstats_consumer_guard_v2_sweep_sse2(args: *mut SweepArgs) -> u32;
        fn vstats_consumer_guard_v2_sweep_sse2_end();
        fn vstats_consumer_guard_v2_sweep_sse2_fixup();
        fn vstats_consumer_guard_v2_sweep_avx2(args: *mut SweepArgs) -> u32;
        fn vstats_consumer_guard_v2_sweep_avx2_end();
        fn vstats_consumer_guard_v2_sweep_avx2_fixup();
        fn vstats_consumer_guard_v3_sweep_w1(args: *mut SweepArgs) -> u32;
        fn vstats_consumer_guard_v3_sweep_w1_end();
        fn vstats_consumer_guard_v3_sweep_w1_fixup();
        fn vstats_consumer_guard_v3_sweep_x2(args: *mut SweepArgs) -> u32;
        fn vstats_consumer_guard_v3_sweep_x2_end();
        fn vstats_consumer_guard_v3_sweep_x2_fixup();
        fn vstats_consumer_guard_v3_sweep_x4(args: *mut SweepArgs) -> u32;
        fn vstats_consumer_guard_v3_sweep_x4_end();
        fn vstats_consumer_guard_v3_sweep_x4_fixup();
        fn vstats_consumer_guard_v3_sweep_y2(args: *mut SweepArgs) -> u32;
        fn vstats_consumer_guard_v3_sweep_y2_end();
        fn vstats_consumer_guard_v3_sweep_y2_fixup();
        fn vstats_consumer_guard_v3_sweep_y4(args: *mut SweepArgs) -> u32;
        fn vstats_consumer_guard_v3_sweep_y4_end();
        fn vstats_consumer_guard_v3_sweep_y4_fixup();
        fn vstats_consumer_guard_v3_sweep_ylong(args: *mut SweepArgs) -> u32;
        fn vstats_consumer_guard_v3_sweep_ylong_end();
        fn vstats_consumer_guard_v3_sweep_ylong_fixup();
        fn vstats_consumer_guard_v3_sweep_xlong(args: *mut SweepArgs) -> u32;
        fn vstats_consumer_guard_v3_sweep_xlong_end();
        fn vstats_consumer_guard_v3_sweep_xlong_fixup();
    }

    #[cfg(feature = "broken-copy")]
    extern "C" {
        fn vstats_consumer_guard_v2_sweep_broken(args: *mut SweepArgs) -> u32;
        fn vstats_consumer_guard_v2_sweep_broken_1(args: *mut SweepArgs) -> u32;
        fn vstats_consumer_guard_v2_sweep_broken_end();
        fn vstats_consumer_guard_v2_sweep_broken_fixup();
    }

    pub(crate) const GUARDED: bool = true;

    /// Whether this CPU can run `p`.
    pub(super) fn can_run(p: CopyPath) -> bool {
        match p {
            CopyPath::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            _ => true,
        }
    }

    /// The fastest path this CPU runs.
    pub(super) fn best() -> CopyPath {
        if can_run(CopyPath::Avx2) {
            CopyPath::Avx2
        } else {
            CopyPath::Sse2
        }
    }

    /// As [`super::sweep`].
    ///
    /// # Safety
    ///
    /// As [`super::sweep`].
    #[inline]
    pub(super) unsafe fn sweep(
        rec: *const u8,
        stride: usize,
        nrec: usize,
        runs: &[Run],
        dst: *mut u64,
        dst_stride: usize,
        seqs: *mut [u32; 2],
    ) -> Result<bool, usize> {
        // SAFETY: the caller's promise, passed on.
        unsafe {
            sweep_on(
                super::copy_path(),
                rec,
                stride,
                nrec,
                runs,
                dst,
                dst_stride,
                seqs,
            )
        }
    }

    /// As [`sweep`], on `path` (one this CPU runs: `copy_path` and the
    /// tests choose only such paths).
    ///
    /// # Safety
    ///
    /// As [`super::sweep`], and `can_run(path)`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) unsafe fn sweep_on(
        path: CopyPath,
        rec: *const u8,
        stride: usize,
        nrec: usize,
        runs: &[Run],
        dst: *mut u64,
        dst_stride: usize,
        seqs: *mut [u32; 2],
    ) -> Result<bool, usize> {
        if path == CopyPath::Atomic {
            // SAFETY: the caller's promise, which is the atomic sweep's.
            return Ok(unsafe {
                super::sweep_atomic(rec, stride, nrec, runs, dst, dst_stride, seqs)
            });
        }
        let (f, tail, unit) = choose(path, runs);
        // A long-run routine's loop covers `lead` bytes (`tail`), a
        // multiple of `unit` below the run's bytes, then its last `unit`.
        let bytes = match runs {
            [r] => 8 * r.words as usize,
            _ => 0,
        };
        let (neg, back) = if unit == 0 {
            (0, 0)
        } else {
            (
                tail.wrapping_neg(),
                bytes.wrapping_sub(unit).wrapping_sub(tail),
            )
        };
        let mut args = SweepArgs {
            rec,
            stride,
            nrec,
            runs: runs.as_ptr(),
            nruns: runs.len(),
            dst,
            dst_stride: dst_stride.wrapping_mul(8),
            seqs,
            left: nrec,
            bad: 0,
            _pad: 0,
            tail,
            neg,
            back,
        };
        // SAFETY: the caller's promise: the routine loads only the seqs
        // and runs of the `nrec` records, stores only into the
        // destinations, `seqs` and `args` (ours); the AVX2 routine is
        // chosen only on a CPU with AVX2 (`set_copy_path`, `best`); the
        // one-run and short-run entries only with exactly one run, the
        // short ones only for the words they cover, with the tail that
        // keeps their loads inside the run (`choose`).
        let r = unsafe { f(&mut args) };
        if r == 0 {
            Ok(args.bad != 0)
        } else {
            Err(nrec.saturating_sub(args.left))
        }
    }

    /// The routine for `path` (not the atomic one) and `runs`, the tail
    /// offset (or `lead`) it needs, and a long-run routine's unit (0 for
    /// the others). On SSE2 and AVX2, one run of 1 to 8 words (16 with
    /// AVX2) goes to a routine without a copy loop, a longer one to a
    /// routine whose loop moves four vectors a round and whose last round
    /// ends at the run's end; the loads of both cover exactly the run's
    /// bytes (some twice).
    #[inline]
    fn choose(path: CopyPath, runs: &[Run]) -> (SweepFn, usize, usize) {
        let short = match runs {
            [r] => r.words as usize,
            _ => 0,
        };
        let bytes = short * 8;
        // The largest multiple of `unit` below `bytes` (at least `unit`
        // where it is used: bytes > unit).
        let lead = |unit: usize| (bytes - 1) / unit * unit;
        match (path, short) {
            (CopyPath::Sse2 | CopyPath::Avx2, 1) => (vstats_consumer_guard_v3_sweep_w1, 0, 0),
            (CopyPath::Sse2 | CopyPath::Avx2, 2..=4) => {
                (vstats_consumer_guard_v3_sweep_x2, bytes - 16, 0)
            }
            (CopyPath::Sse2, 5..=8) => (vstats_consumer_guard_v3_sweep_x4, bytes - 32, 0),
            (CopyPath::Sse2, 9..) => (vstats_consumer_guard_v3_sweep_xlong, lead(64), 64),
            (CopyPath::Avx2, 5..=8) => (vstats_consumer_guard_v3_sweep_y2, bytes - 32, 0),
            (CopyPath::Avx2, 9..=16) => (vstats_consumer_guard_v3_sweep_y4, bytes - 64, 0),
            (CopyPath::Avx2, 17..) => (vstats_consumer_guard_v3_sweep_ylong, lead(128), 128),
            (CopyPath::Scalar, 0) => (vstats_consumer_guard_v2_sweep_scalar, 0, 0),
            (CopyPath::Sse2, 0) => (vstats_consumer_guard_v2_sweep_sse2, 0, 0),
            #[cfg(feature = "broken-copy")]
            (CopyPath::BrokenNoRecheck, 0) => (vstats_consumer_guard_v2_sweep_broken, 0, 0),
            #[cfg(feature = "broken-copy")]
            (CopyPath::BrokenNoRecheck, _) => (vstats_consumer_guard_v2_sweep_broken_1, 0, 0),
            (CopyPath::Scalar, _) => (vstats_consumer_guard_v2_sweep_scalar_1, 0, 0),
            // The atomic path never gets here (`sweep`); AVX2 otherwise.
            (CopyPath::Avx2 | CopyPath::Atomic, _) => (vstats_consumer_guard_v2_sweep_avx2, 0, 0),
        }
    }

    /// The handler that was installed before ours.
    static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();
    static INSTALL: Once = Once::new();

    /// Installs the `SIGBUS` handler, once per process. Returns whether it
    /// is installed.
    pub(crate) fn install() -> bool {
        INSTALL.call_once(|| {
            // SAFETY: `sigaction` with a null new action only reads the
            // current one into `old`, which is plain data we own.
            let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
            // SAFETY: as above.
            if unsafe { libc::sigaction(libc::SIGBUS, ptr::null(), &mut old) } != 0 {
                return;
            }
            // Stored before ours is installed, so the handler always finds
            // it (a handler installed by another thread in between is
            // lost: install ours first in such programs).
            let _ = PREVIOUS.set(old);
            // SAFETY: zeroed is a valid `sigaction` (empty mask, no flags).
            let mut new: libc::sigaction = unsafe { core::mem::zeroed() };
            new.sa_sigaction = on_sigbus as *const () as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            // SAFETY: `new` is a valid action whose handler is async-signal
            // safe (see `on_sigbus`); `sa_mask` is empty (zeroed).
            unsafe { libc::sigaction(libc::SIGBUS, &new, ptr::null_mut()) };
        });
        PREVIOUS.get().is_some()
    }

    /// The error exit for a fault at `pc`, when `pc` is inside one of the
    /// routines.
    fn fixup_for(pc: usize) -> Option<usize> {
        let a = |f: unsafe extern "C" fn()| f as *const () as usize;
        let s = |f: SweepFn| f as *const () as usize;
        let ranges = [
            (
                a(vstats_consumer_guard_v1_start),
                a(vstats_consumer_guard_v1_end),
                a(vstats_consumer_guard_v1_fixup),
            ),
            (
                s(vstats_consumer_guard_v2_sweep_scalar),
                a(vstats_consumer_guard_v2_sweep_scalar_end),
                a(vstats_consumer_guard_v2_sweep_scalar_fixup),
            ),
            (
                s(vstats_consumer_guard_v2_sweep_sse2),
                a(vstats_consumer_guard_v2_sweep_sse2_end),
                a(vstats_consumer_guard_v2_sweep_sse2_fixup),
            ),
            (
                s(vstats_consumer_guard_v2_sweep_avx2),
                a(vstats_consumer_guard_v2_sweep_avx2_end),
                a(vstats_consumer_guard_v2_sweep_avx2_fixup),
            ),
            (
                s(vstats_consumer_guard_v3_sweep_w1),
                a(vstats_consumer_guard_v3_sweep_w1_end),
                a(vstats_consumer_guard_v3_sweep_w1_fixup),
            ),
            (
                s(vstats_consumer_guard_v3_sweep_x2),
                a(vstats_consumer_guard_v3_sweep_x2_end),
                a(vstats_consumer_guard_v3_sweep_x2_fixup),
            ),
            (
                s(vstats_consumer_guard_v3_sweep_x4),
                a(vstats_consumer_guard_v3_sweep_x4_end),
                a(vstats_consumer_guard_v3_sweep_x4_fixup),
            ),
            (
                s(vstats_consumer_guard_v3_sweep_y2),
                a(vstats_consumer_guard_v3_sweep_y2_end),
                a(vstats_consumer_guard_v3_sweep_y2_fixup),
            ),
            (
                s(vstats_consumer_guard_v3_sweep_y4),
                a(vstats_consumer_guard_v3_sweep_y4_end),
                a(vstats_consumer_guard_v3_sweep_y4_fixup),
            ),
            (
                s(vstats_consumer_guard_v3_sweep_ylong),
                a(vstats_consumer_guard_v3_sweep_ylong_end),
                a(vstats_consumer_guard_v3_sweep_ylong_fixup),
            ),
            (
                s(vstats_consumer_guard_v3_sweep_xlong),
                a(vstats_consumer_guard_v3_sweep_xlong_end),
                a(vstats_consumer_guard_v3_sweep_xlong_fixup),
            ),
            #[cfg(feature = "broken-copy")]
            (
                s(vstats_consumer_guard_v2_sweep_broken),
                a(vstats_consumer_guard_v2_sweep_broken_end),
                a(vstats_consumer_guard_v2_sweep_broken_fixup),
            ),
        ];
        ranges
            .iter()
            .find(|(start, end, _)| (*start..*end).contains(&pc))
            .map(|r| r.2)
    }

    /// The handler: only address comparisons, `sigaction` and `raise`, all
    /// async-signal safe.
    extern "C" fn on_sigbus(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
        let uc = ctx.cast::<libc::ucontext_t>();
        if !uc.is_null() {
            // SAFETY: with `SA_SIGINFO` the kernel passes the interrupted
            // context as the third argument, a valid `ucontext_t` that the
            // handler may modify; the new instruction pointer takes effect
            // on return.
            let rip = unsafe { &mut (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] };
            if let Some(fixup) = fixup_for(*rip as usize) {
                *rip = fixup as i64;
                return;
            }
        }
        let prev = PREVIOUS.get();
        let handler = prev.map_or(libc::SIG_DFL, |p| p.sa_sigaction);
        if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
            // SAFETY: zeroed is a valid `sigaction` (empty mask, no
            // flags, and `SIG_DFL` is 0).
            let mut dfl: libc::sigaction = unsafe { core::mem::zeroed() };
            dfl.sa_sigaction = libc::SIG_DFL;
            // SAFETY: restoring the default action, then raising the
            // signal again (blocked while we run, so delivered as we
            // return): the process dies of it as it would have.
            unsafe { libc::sigaction(sig, &dfl, ptr::null_mut()) };
            // SAFETY: `raise` is async-signal safe.
            unsafe { libc::raise(sig) };
        } else if prev.is_some_and(|p| p.sa_flags & libc::SA_SIGINFO != 0) {
            // SAFETY: the previous handler was installed with
            // `SA_SIGINFO`, so it has this signature and expects these
            // arguments.
            let f: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) =
                unsafe { core::mem::transmute(handler) };
            f(sig, info, ctx);
        } else {
            // SAFETY: a handler installed without `SA_SIGINFO` takes the
            // signal number only.
            let f: extern "C" fn(c_int) = unsafe { core::mem::transmute(handler) };
            f(sig);
        }
    }

    macro_rules! load_fn {
        ($name:ident, $t:ty, $sym:ident) => {
            /// One guarded load; `None` when it faulted.
            ///
            /// # Safety
            ///
            /// `src` is aligned and lies in a region of `crate::raw`.
            #[inline]
            pub(crate) unsafe fn $name(src: *const $t) -> Option<$t> {
                let mut out: $t = 0;
                // SAFETY: the caller's promise; the routine stores only
                // into `out`.
                let r = unsafe { $sym(src, &mut out) };
                (r == 0).then_some(out)
            }
        };
    }
    load_fn!(load_u64, u64, vstats_consumer_guard_v1_load64);
    load_fn!(load_u32, u32, vstats_consumer_guard_v1_load32);
    load_fn!(load_u16, u16, vstats_consumer_guard_v1_load16);
    load_fn!(load_u8, u8, vstats_consumer_guard_v1_load8);
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64", not(miri), not(loom))))]
mod imp {
    use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};

    use vstats_abi::seqlock::Word;

    use super::{CopyPath, Run};

    pub(crate) const GUARDED: bool = false;

    /// Nothing to install here: faults are not survived.
    pub(crate) fn install() -> bool {
        false
    }

    /// Only the atomic path runs here.
    pub(super) fn can_run(p: CopyPath) -> bool {
        p == CopyPath::Atomic
    }

    /// The atomic path.
    pub(super) fn best() -> CopyPath {
        CopyPath::Atomic
    }

    /// The atomic sweep; never fails.
    ///
    /// # Safety
    ///
    /// As [`super::sweep`].
    #[inline]
    pub(super) unsafe fn sweep(
        rec: *const u8,
        stride: usize,
        nrec: usize,
        runs: &[Run],
        dst: *mut u64,
        dst_stride: usize,
        seqs: *mut [u32; 2],
    ) -> Result<bool, usize> {
        // SAFETY: the caller's promise, which is the atomic sweep's.
        Ok(unsafe { super::sweep_atomic(rec, stride, nrec, runs, dst, dst_stride, seqs) })
    }

    /// As [`sweep`]: only the atomic path runs here.
    ///
    /// # Safety
    ///
    /// As [`super::sweep`].
    #[cfg(test)]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn sweep_on(
        _path: CopyPath,
        rec: *const u8,
        stride: usize,
        nrec: usize,
        runs: &[Run],
        dst: *mut u64,
        dst_stride: usize,
        seqs: *mut [u32; 2],
    ) -> Result<bool, usize> {
        // SAFETY: the caller's promise.
        unsafe { sweep(rec, stride, nrec, runs, dst, dst_stride, seqs) }
    }

    macro_rules! load_fn {
        ($name:ident, $t:ty, $a:ty, $load:expr) => {
            /// A relaxed atomic load; never `None`.
            ///
            /// # Safety
            ///
            /// `src` is aligned and lies in a region of `crate::raw`.
            #[inline]
            pub(crate) unsafe fn $name(src: *const $t) -> Option<$t> {
                // SAFETY: the caller's promise; `$a` has the size and
                // alignment of `$t`.
                let a = unsafe { &*src.cast::<$a>() };
                Some($load(a))
            }
        };
    }
    // In two 32-bit halves on 32-bit targets (`Word`).
    load_fn!(load_u64, u64, AtomicU64, Word::load_relaxed);
    load_fn!(load_u32, u32, AtomicU32, |a: &AtomicU32| a
        .load(Ordering::Relaxed));
    load_fn!(load_u16, u16, AtomicU16, |a: &AtomicU16| a
        .load(Ordering::Relaxed));
    load_fn!(load_u8, u8, AtomicU8, |a: &AtomicU8| a
        .load(Ordering::Relaxed));
}

pub(crate) use imp::{install, load_u16, load_u32, load_u64, load_u8, GUARDED};

#[cfg(test)]
mod tests {
    use super::{imp, CopyPath, Run};

    /// Records of `stride` bytes: seq at byte 0 (even, except the records
    /// in `odd`), then words `1000 * k + j`.
    fn records(nrec: usize, stride: usize, odd: &[usize]) -> Vec<u64> {
        let per = stride / 8;
        let mut m = vec![0u64; nrec * per];
        for k in 0..nrec {
            let seq: u64 = if odd.contains(&k) { 7 } else { 2 * k as u64 };
            m[k * per] = seq;
            for j in 1..per {
                m[k * per + j] = 1000 * k as u64 + j as u64;
            }
        }
        m
    }

    /// Every path, every run length from 0 to 40 words (each short-run
    /// routine and the loops), one run and two, some records odd: the
    /// words copied are exactly the runs' (the rest of the destination
    /// untouched), the seqs are stored, and the status says whether a
    /// record was odd.
    #[test]
    fn every_path_copies_exactly_the_runs_and_reports_the_status() {
        let max_words = if cfg!(miri) { 10 } else { 40 };
        for path in CopyPath::available() {
            for words in 0..=max_words {
                for two in [false, true] {
                    for odd in [&[][..], &[1][..]] {
                        let stride = 8 * (words + 8);
                        let nrec = 3;
                        let m = records(nrec, stride, odd);
                        let runs: Vec<Run> = if two {
                            vec![Run::counters(0, 1), Run::counters(2, words as u32)]
                        } else {
                            vec![Run::counters(1, words as u32)]
                        };
                        let dst_stride = words + 4;
                        let mut dst = vec![u64::MAX; nrec * dst_stride];
                        let mut seqs = vec![[9u32, 9]; nrec];
                        // SAFETY: every record's seq and runs lie in `m`
                        // (aligned: a `u64` buffer, runs at multiples of
                        // 8), which nothing else accesses; each record's
                        // destination runs lie in `dst`; `seqs` holds
                        // `nrec` pairs; `path` runs here (`available`).
                        let r = unsafe {
                            imp::sweep_on(
                                path,
                                m.as_ptr().cast(),
                                stride,
                                nrec,
                                &runs,
                                dst.as_mut_ptr(),
                                dst_stride,
                                seqs.as_mut_ptr(),
                            )
                        };
                        let ctx = format!("{path:?} words {words} two {two} odd {odd:?}");
                        assert_eq!(r, Ok(!odd.is_empty()), "{ctx}");
                        for k in 0..nrec {
                            let s = if odd.contains(&k) {
                                [7, 7]
                            } else {
                                [2 * k as u32; 2]
                            };
                            assert_eq!(seqs[k], s, "{ctx}");
                            let mut want = vec![u64::MAX; dst_stride];
                            if !odd.contains(&k) {
                                for run in &runs {
                                    for i in 0..run.words as usize {
                                        let src = run.src as usize / 8 + i;
                                        want[run.dst as usize / 8 + i] =
                                            1000 * k as u64 + src as u64;
                                    }
                                }
                            }
                            assert_eq!(
                                &dst[k * dst_stride..(k + 1) * dst_stride],
                                &want[..],
                                "{ctx} record {k}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// The short-run routines load nothing past the run: a run that ends
    /// where the mapping's readable part ends (the next page is
    /// inaccessible, so a load past it would kill the test) reads back.
    #[cfg(all(target_os = "linux", target_arch = "x86_64", not(miri), not(loom)))]
    #[test]
    fn short_runs_load_nothing_past_their_end() {
        const PAGE: usize = 4096;
        // SAFETY: a fresh private anonymous mapping of two pages.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                2 * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        // SAFETY: the second page of our mapping.
        let r = unsafe {
            libc::mprotect(
                p.cast::<u8>().wrapping_add(PAGE).cast(),
                PAGE,
                libc::PROT_NONE,
            )
        };
        assert_eq!(r, 0);
        let words_of = p.cast::<u64>();
        for path in CopyPath::available() {
            for words in 1..=40usize {
                // One record whose run ends at the page's end.
                let rec = PAGE / 8 - words - 1;
                for j in 0..=words {
                    // SAFETY: inside the first page, ours, 8-aligned.
                    unsafe {
                        words_of
                            .wrapping_add(rec + j)
                            .write(if j == 0 { 4 } else { j as u64 })
                    };
                }
                let runs = [Run::counters(0, words as u32)];
                let mut dst = vec![0u64; words];
                let mut seqs = [[0u32; 2]];
                // SAFETY: the record's seq and run lie in the first page
                // (readable, aligned, written by no one meanwhile); `dst`
                // holds the run; `seqs` one pair; `path` runs here.
                let r = unsafe {
                    imp::sweep_on(
                        path,
                        words_of.wrapping_add(rec).cast::<u8>().cast_const(),
                        0,
                        1,
                        &runs,
                        dst.as_mut_ptr(),
                        words,
                        seqs.as_mut_ptr(),
                    )
                };
                assert_eq!(r, Ok(false), "{path:?} {words}");
                assert_eq!(seqs[0], [4, 4]);
                assert_eq!(dst, (1..=words as u64).collect::<Vec<_>>(), "{path:?}");
            }
        }
        // SAFETY: our mapping, no longer used.
        assert_eq!(unsafe { libc::munmap(p, 2 * PAGE) }, 0);
    }
}
