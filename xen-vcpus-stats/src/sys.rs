//! The few system calls the standard library does not wrap. The only
//! module of the tool that uses `unsafe`.
#![allow(unsafe_code)]

use std::io;

/// Sends `signal` to process `pid`.
///
/// # Errors
///
/// The OS error of `kill(2)`, or `InvalidInput` for a pid that is not a
/// positive `pid_t`.
pub fn send_signal(pid: u32, signal: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `kill` takes plain integers and touches no memory of ours.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Asks the kernel to send `signal` to this process when its parent
/// exits (`PR_SET_PDEATHSIG`), so a producer started by `demo` never
/// outlives a `demo` that was killed.
///
/// # Errors
///
/// The OS error of `prctl(2)`.
pub fn set_parent_death_signal(signal: libc::c_int) -> io::Result<()> {
    let sig = libc::c_ulong::try_from(signal)
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let zero: libc::c_ulong = 0;
    // SAFETY: PR_SET_PDEATHSIG takes the signal number by value and reads
    // no memory; the unused arguments are zero as prctl(2) asks.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig, zero, zero, zero) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_reach_only_real_processes() {
        // The clock's assertions moved with it to vstats-producer
        // (`clock::tests`).
        assert!(send_signal(0, 0).is_err());
        send_signal(std::process::id(), 0).unwrap();
    }
}
