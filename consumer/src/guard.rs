//! Loads from shared memory that survive the memory going away: a file
//! truncated while it is mapped makes loads of the lost pages fault with
//! `SIGBUS`, which would kill the reader. The loads of [`crate::mem`]
//! go through the few routines below, written in assembly so that their
//! address range is known; a process-wide `SIGBUS` handler sends a fault
//! inside that range to the routines' error exit, the way the kernel's
//! exception tables treat a faulting `copy_from_user`. The caller sees
//! "faulted" and reports the table as lost, never dies.
//!
//! Built on Linux x86-64 outside Miri (`GUARDED` is true there); on other
//! targets and under Miri the same functions are relaxed atomic loads and
//! a fault is not survived.
//!
//! # Soundness
//!
//! - The routines only load from the shared memory (plain `mov`s of 1, 2,
//!   4 or 8 aligned bytes) and store into memory the caller owns
//!   exclusively (`dst`, `out`). On x86-64 an aligned `mov` of up to 8
//!   bytes is single-copy atomic, and it is the very instruction a Rust
//!   `Relaxed` atomic load compiles to. So each routine's effect is one the
//!   Rust abstract machine can produce with relaxed atomic loads (what the
//!   inline-assembly rules ask of an `asm` block); a racing store of the
//!   producer is not a data race. Whatever values a racy copy holds, the
//!   seq protocol decides whether it is used: a copy is kept only when the
//!   seq was even and equal before and after it.
//! - Ordering. The seq read routine (`seq_copy`) loads the seq (S1), the
//!   words, then the seq again (S3) in program order. x86-64 never
//!   reorders a load with an older load (TSO), so the acquire fences of S1
//!   and S3 in `vstats_abi::seqlock`, which compile to no instruction on
//!   x86-64, are implied; the routine being an opaque call, the compiler
//!   cannot move our other accesses across it either. The fences that
//!   remain in Rust are the acquire fence after the magic in
//!   `MemView::copy_prefix` (publication of the head) and those of the
//!   atomic path (Miri, other targets).
//! - Recovery. The routines are leaf functions that push nothing, so at a
//!   fault inside them the stack is as at entry: the handler rewrites the
//!   saved instruction pointer to the error exit, which returns 1 to the
//!   caller. Stores already made into `dst` are to the caller's memory and
//!   are discarded by it.
//! - The handler ([`install`]) is installed once, with `SA_SIGINFO |
//!   SA_ONSTACK`. A `SIGBUS` whose instruction pointer is outside the
//!   routines goes to the handler that was there before (the standard
//!   library's stack-overflow handler, say); when there was none (or it
//!   ignored the signal, which a fault cannot be), the default action is
//!   restored and the signal raised again, so the process dies of it as it
//!   would have without us.

#[cfg(all(target_os = "linux", target_arch = "x86_64", not(miri)))]
mod imp {
    use core::{
        ffi::{c_int, c_void},
        ptr,
    };
    use std::sync::{Once, OnceLock};

    // Intel syntax (the default). The routines between `start` and `end`
    // may fault on their loads from `src`/`seq`; `fixup` is their error
    // exit. Symbols carry the crate and a version, and are hidden, so two
    // copies of the crate in one binary do not clash.
    core::arch::global_asm!(
        ".text",
        ".p2align 4",
        ".globl vstats_consumer_guard_v1_start",
        ".hidden vstats_consumer_guard_v1_start",
        "vstats_consumer_guard_v1_start:",
        // seq_copy(seq: rdi, src: rsi, dst: rdx, n: rcx, seqs: r8) -> eax
        // Loads seq into seqs[0]; when even, copies n words from src to
        // dst; loads seq again into seqs[1] (seqs[1] = seqs[0] when odd).
        ".globl vstats_consumer_guard_v1_seq_copy",
        ".hidden vstats_consumer_guard_v1_seq_copy",
        "vstats_consumer_guard_v1_seq_copy:",
        "    xor eax, eax",
        "    mov r9d, dword ptr [rdi]",
        "    mov dword ptr [r8], r9d",
        "    test r9d, 1",
        "    jnz 6f",
        "    test rcx, rcx",
        "    jz 5f",
        "4:",
        "    mov r10, qword ptr [rsi]",
        "    mov qword ptr [rdx], r10",
        "    add rsi, 8",
        "    add rdx, 8",
        "    dec rcx",
        "    jnz 4b",
        "5:",
        "    mov r9d, dword ptr [rdi]",
        "6:",
        "    mov dword ptr [r8 + 4], r9d",
        "    ret",
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

    extern "C" {
        fn vstats_consumer_guard_v1_start();
        fn vstats_consumer_guard_v1_end();
        fn vstats_consumer_guard_v1_fixup();
        fn vstats_consumer_guard_v1_seq_copy(
            seq: *const u32,
            src: *const u64,
            dst: *mut u64,
            n: usize,
            seqs: *mut u32,
        ) -> u32;
        fn vstats_consumer_guard_v1_load64(src: *const u64, out: *mut u64) -> u32;
        fn vstats_consumer_guard_v1_load32(src: *const u32, out: *mut u32) -> u32;
        fn vstats_consumer_guard_v1_load16(src: *const u16, out: *mut u16) -> u32;
        fn vstats_consumer_guard_v1_load8(src: *const u8, out: *mut u8) -> u32;
    }

    pub(crate) const GUARDED: bool = true;

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

    /// The handler: only atomic loads, `sigaction` and `raise`, all
    /// async-signal safe.
    extern "C" fn on_sigbus(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
        let start = vstats_consumer_guard_v1_start as *const () as usize;
        let end = vstats_consumer_guard_v1_end as *const () as usize;
        let fixup = vstats_consumer_guard_v1_fixup as *const () as usize;
        let uc = ctx.cast::<libc::ucontext_t>();
        if !uc.is_null() {
            // SAFETY: with `SA_SIGINFO` the kernel passes the interrupted
            // context as the third argument, a valid `ucontext_t` that the
            // handler may modify; the new instruction pointer takes effect
            // on return.
            let rip = unsafe { &mut (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] };
            let pc = *rip as usize;
            if (start..end).contains(&pc) {
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

    /// One attempt of the seq protocol: `Some([s1, s3])` (`s3 == s1` when
    /// `s1` is odd and nothing was copied), `None` when a load faulted.
    ///
    /// # Safety
    ///
    /// `seq` (4-aligned) and `src..src + n` (8-aligned) lie in a region of
    /// `crate::raw` (invariants 2 and 3, or a mapping that shrank);
    /// `dst` is valid for `n` writes.
    #[inline]
    pub(crate) unsafe fn seq_copy(
        seq: *const u32,
        src: *const u64,
        dst: *mut u64,
        n: usize,
    ) -> Option<[u32; 2]> {
        let mut seqs = [0u32; 2];
        // SAFETY: the caller's promise; the routine loads only from `seq`
        // and `src..src + n`, stores only into `dst` and `seqs`.
        let r = unsafe { vstats_consumer_guard_v1_seq_copy(seq, src, dst, n, seqs.as_mut_ptr()) };
        (r == 0).then_some(seqs)
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

#[cfg(not(all(target_os = "linux", target_arch = "x86_64", not(miri))))]
mod imp {
    use core::sync::atomic::{fence, AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};

    pub(crate) const GUARDED: bool = false;

    /// Nothing to install here: faults are not survived.
    pub(crate) fn install() -> bool {
        false
    }

    /// As the guarded version, with relaxed atomic loads and the acquire
    /// fences of `vstats_abi::seqlock`; never `None`.
    ///
    /// # Safety
    ///
    /// As the guarded version.
    #[inline]
    pub(crate) unsafe fn seq_copy(
        seq: *const u32,
        src: *const u64,
        dst: *mut u64,
        n: usize,
    ) -> Option<[u32; 2]> {
        // SAFETY: `seq` is an aligned, live atomic location (the caller's
        // promise; atomics are `UnsafeCell`s, so sharing them is fine).
        let seq = unsafe { &*seq.cast::<AtomicU32>() };
        let s1 = seq.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if s1 & 1 == 1 {
            return Some([s1, s1]);
        }
        for i in 0..n {
            // SAFETY: `src + i` is an aligned, live word (caller), and
            // `dst + i` is valid for writes (caller).
            unsafe {
                let w = &*src.add(i).cast::<AtomicU64>();
                dst.add(i).write(w.load(Ordering::Relaxed));
            }
        }
        fence(Ordering::Acquire);
        Some([s1, seq.load(Ordering::Relaxed)])
    }

    macro_rules! load_fn {
        ($name:ident, $t:ty, $a:ty) => {
            /// A relaxed atomic load; never `None`.
            ///
            /// # Safety
            ///
            /// `src` is aligned and lies in a region of `crate::raw`.
            #[inline]
            pub(crate) unsafe fn $name(src: *const $t) -> Option<$t> {
                // SAFETY: the caller's promise; `$a` has the size and
                // alignment of `$t`.
                Some(unsafe { &*src.cast::<$a>() }.load(Ordering::Relaxed))
            }
        };
    }
    load_fn!(load_u64, u64, AtomicU64);
    load_fn!(load_u32, u32, AtomicU32);
    load_fn!(load_u16, u16, AtomicU16);
    load_fn!(load_u8, u8, AtomicU8);
}

pub(crate) use imp::{install, load_u16, load_u32, load_u64, load_u8, seq_copy, GUARDED};
