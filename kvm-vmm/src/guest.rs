//! The guest programs: hand-assembled 16-bit real-mode x86 code.
//!
//! [`GuestMode`] picks one per VM ([`crate::VmConfig::guest_mode`]):
//! [`GUEST_CODE`], the default, computes, reports and halts in a loop (below);
//! [`SPIN_CODE`] reports once and then spins without a single exit (see
//! [`GuestMode::SpinNoExit`]).
//!
//! # The default program
//!
//! 29 bytes. Every vCPU runs the same code from [`GUEST_LOAD_ADDR`] with `CS.base = 0`.
//! The VMM seeds the registers: `ESI` = spin iterations (`N`, at least 1),
//! `EBX` = `EDI` = 0. Nothing touches memory, so the vCPUs share the code
//! page without interfering. One iteration of the endless outer loop is:
//!
//! 1. compute: `EBX += N + (N-1) + ... + 1` in a `dec`/`jnz` loop;
//! 2. report: `EDI += 1`, then `out` the iteration count to
//!    [`REPORT_PORT`] and the checksum `EBX` to [`CHECKSUM_PORT`]; each
//!    `out` is a `KVM_EXIT_IO` the VMM handles in userspace;
//! 3. `hlt`: with no in-kernel irqchip KVM returns `KVM_EXIT_HLT` with RIP
//!    already past the `hlt`; the VMM blocks the vCPU thread until its
//!    wake-up timer fires and re-enters `KVM_RUN`, which resumes at the
//!    `jmp` back to step 1.
//!
//! How long step 1 takes depends wildly on the host: about one inner
//! iteration per cycle with hardware virtualization, but hundreds of
//! nanoseconds where KVM emulates real mode instruction by instruction
//! (e.g. nested, software-based KVM). The VMM therefore calibrates: while
//! the vCPU is halted it may rewrite `ESI` so the next computation phase
//! approaches [`crate::VmConfig::guest_compute`].
//!
//! The checksum after iterations with spin counts `N1, N2, ...` is the
//! wrapping sum of [`checksum_step`]`(Ni)`; the VMM keeps that sum and
//! compares it with every checksum report.

/// Guest physical address the code is loaded at (and the initial RIP).
pub const GUEST_LOAD_ADDR: u64 = 0x1000;
/// Port the guest writes its iteration count to (32-bit `out`).
pub const REPORT_PORT: u16 = 0x0510;
/// Port the guest writes its checksum to; always `REPORT_PORT + 1` because
/// the code reaches it with `inc dx`.
pub const CHECKSUM_PORT: u16 = REPORT_PORT + 1;

const PORT_LO: u8 = (REPORT_PORT & 0xff) as u8;
const PORT_HI: u8 = (REPORT_PORT >> 8) as u8;

/// The machine code. Offsets in the comments are from the load address.
/// `66` is the operand-size prefix that makes 16-bit real-mode code use
/// 32-bit registers.
#[rustfmt::skip]
pub const GUEST_CODE: [u8; 29] = [
    // 0x00 outer: mov ecx, esi        ; ECX = N (spin count)
    0x66, 0x89, 0xF1,
    // 0x03 spin:  add ebx, ecx        ; checksum += ECX
    0x66, 0x01, 0xCB,
    // 0x06        dec ecx
    0x66, 0x49,
    // 0x08        jnz spin            ; rel8 -7 -> 0x03
    0x75, 0xF9,
    // 0x0a        inc edi             ; iteration count
    0x66, 0x47,
    // 0x0c        mov eax, edi
    0x66, 0x89, 0xF8,
    // 0x0f        mov dx, REPORT_PORT
    0xBA, PORT_LO, PORT_HI,
    // 0x12        out dx, eax         ; KVM_EXIT_IO: iteration count
    0x66, 0xEF,
    // 0x14        mov eax, ebx
    0x66, 0x89, 0xD8,
    // 0x17        inc dx              ; CHECKSUM_PORT
    0x42,
    // 0x18        out dx, eax         ; KVM_EXIT_IO: checksum
    0x66, 0xEF,
    // 0x1a        hlt                 ; KVM_EXIT_HLT: blocked until woken
    0xF4,
    // 0x1b        jmp outer           ; rel8 -29 -> 0x00
    0xEB, 0xE3,
];

/// The second program, 13 bytes: `out` 1 to [`REPORT_PORT`] once (one
/// `KVM_EXIT_IO`), then `jmp $` forever. Nothing in it leaves the guest
/// again: with no in-kernel irqchip no interrupt is injected, and host
/// interrupts and preemption of the vCPU thread are handled inside
/// `KVM_RUN` without returning to the VMM, so only a signal to the vCPU
/// thread (or `kvm_run.immediate_exit`) ends the `KVM_RUN` call.
#[rustfmt::skip]
pub const SPIN_CODE: [u8; 13] = [
    // 0x00        mov eax, 1          ; the one report: "iteration 1"
    0x66, 0xB8, 0x01, 0x00, 0x00, 0x00,
    // 0x06        mov dx, REPORT_PORT
    0xBA, PORT_LO, PORT_HI,
    // 0x09        out dx, eax         ; KVM_EXIT_IO: the VMM marks the vCPU spinning
    0x66, 0xEF,
    // 0x0b spin:  jmp spin            ; rel8 -2 -> 0x0b: no exit ever again
    0xEB, 0xFE,
];

/// Which guest program every vCPU of a VM runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum GuestMode {
    /// [`GUEST_CODE`]: compute, report, halt until the VMM's timer wakes
    /// the vCPU, repeat. Many exits per second; the calibration of
    /// [`crate::VmConfig::guest_compute`] applies.
    #[default]
    Default,
    /// [`SPIN_CODE`]: one report to [`REPORT_PORT`] (the VMM checkpoints
    /// the vCPU as running and counts it in
    /// [`crate::RunningVm::vcpus_spinning`], and its reports say
    /// [`crate::VcpuReport::guest_spinning`]), then a `jmp $` that never
    /// exits: the vCPU is 100 % running while the VMM, which accounts only
    /// at exits, writes nothing. Stopping it takes the kick signal
    /// ([`crate::RunningVm::stop`]). The configuration's spin count and
    /// compute target are not used.
    SpinNoExit,
}

impl GuestMode {
    /// The machine code of this mode, loaded at [`GUEST_LOAD_ADDR`].
    pub const fn code(self) -> &'static [u8] {
        match self {
            GuestMode::Default => &GUEST_CODE,
            GuestMode::SpinNoExit => &SPIN_CODE,
        }
    }
}

/// What one outer iteration with `spin` inner iterations adds to the
/// guest's 32-bit checksum: `spin(spin+1)/2 mod 2^32`.
pub fn checksum_step(spin: u32) -> u32 {
    let spin = u64::from(spin);
    (spin * (spin + 1) / 2) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_targets() {
        // jnz at 0x08 (2 bytes) jumps back to 0x03.
        assert_eq!(0x0a + i32::from(GUEST_CODE[0x09] as i8), 0x03);
        // jmp at 0x1b (2 bytes) jumps back to 0x00.
        assert_eq!(0x1d + i32::from(GUEST_CODE[0x1c] as i8), 0x00);
        assert_eq!(GUEST_CODE[0x1a], 0xF4);
    }

    #[test]
    fn spin_program() {
        // mov eax, imm32 loads 1; mov dx loads the report port.
        assert_eq!(u32::from_le_bytes(SPIN_CODE[2..6].try_into().unwrap()), 1);
        assert_eq!(
            u16::from_le_bytes([SPIN_CODE[7], SPIN_CODE[8]]),
            REPORT_PORT
        );
        assert_eq!(&SPIN_CODE[9..11], &[0x66, 0xEF], "out dx, eax");
        // jmp at 0x0b (2 bytes) jumps to itself.
        assert_eq!(SPIN_CODE[0x0b], 0xEB);
        assert_eq!(0x0d + i32::from(SPIN_CODE[0x0c] as i8), 0x0b);
        assert_eq!(SPIN_CODE.len(), 0x0d);
        assert_eq!(GuestMode::SpinNoExit.code(), &SPIN_CODE);
        assert_eq!(GuestMode::default().code(), &GUEST_CODE);
    }

    #[test]
    fn checksum_model() {
        assert_eq!(checksum_step(1), 1);
        assert_eq!(checksum_step(4), 10);
        // Wraps like the guest's 32-bit EBX.
        assert_eq!(
            checksum_step(u32::MAX),
            (u64::from(u32::MAX) * (1 << 32) / 2) as u32
        );
        assert_eq!(
            checksum_step(1_000_000),
            (1_000_000u64 * 1_000_001 / 2) as u32
        );
    }
}
