//! Runs in dom0 under the real-Xen test: maps tables through the Xen
//! backend as a program would and prints which [`xen::Error`] variant each
//! attempt ends in, one line each: `variant <what> <domid> <Variant>`.
//!
//! Usage: `xen-variant-probe DOMID...`: for each domain, its vCPU table,
//! its domain table, both together (`map_domain`), and its time frame
//! (`map_time_frame`).
//!
//! `xen-variant-probe --clock DOMID`: the library loaded, the domain's
//! time frame, the vCPU table's clock word and the reader attached to it,
//! and two readings of that clock 100 ms apart:
//!
//! ```text
//! library <the foreign-memory library's name>
//! time-frame <domid> <Variant>
//! table-clock <domid> <the header's clock word> <the attached reader's name, or "none">
//! now <domid> <first reading, ns, or "none"> <second reading>
//! ```

use std::process::ExitCode;

use xen_vcpus_stats::xen::{self, TableKind, Xen};

/// The variant's name: what a program matching on the error sees.
fn variant<T>(r: &xen::Result<T>) -> &'static str {
    match r {
        Ok(_) => "Ok",
        Err(xen::Error::NotOffered { .. }) => "NotOffered",
        Err(xen::Error::OwnDomain { .. }) => "OwnDomain",
        Err(xen::Error::NoSuchDomain { .. }) => "NoSuchDomain",
        Err(xen::Error::PermissionDenied { .. }) => "PermissionDenied",
        Err(xen::Error::SizeQuery { .. }) => "SizeQuery",
        Err(xen::Error::Map { .. }) => "Map",
        Err(xen::Error::TooLarge { .. }) => "TooLarge",
        Err(xen::Error::Invalid { .. }) => "Invalid",
        Err(xen::Error::Table { .. }) => "Table",
        Err(xen::Error::TimeFrameNotOffered { .. }) => "TimeFrameNotOffered",
        Err(xen::Error::TimeFrameMap { .. }) => "TimeFrameMap",
        Err(xen::Error::TimeFrameInvalid { .. }) => "TimeFrameInvalid",
        Err(_) => "Other",
    }
}

fn main() -> ExitCode {
    let x = match Xen::load() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("xen-variant-probe: {e}");
            return ExitCode::FAILURE;
        }
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, domid] = &args[..] {
        if flag == "--clock" {
            let Ok(domid) = domid.parse::<u16>() else {
                eprintln!("xen-variant-probe: not a domid: {domid}");
                return ExitCode::from(2);
            };
            return clock(&x, domid);
        }
    }
    for arg in args {
        let Ok(domid) = arg.parse::<u16>() else {
            eprintln!("xen-variant-probe: not a domid: {arg}");
            return ExitCode::from(2);
        };
        for kind in TableKind::ALL {
            let r = x.map_table(domid, kind);
            println!("variant {kind} {domid} {}", variant(&r));
            if let Err(e) = r {
                println!("message {kind} {domid} {e}");
            }
        }
        println!("variant both {domid} {}", variant(&x.map_domain(domid)));
        let r = x.map_time_frame(domid);
        println!("variant time-frame {domid} {}", variant(&r));
        if let Err(e) = r {
            println!("message time-frame {domid} {e}");
        }
    }
    ExitCode::SUCCESS
}

/// `--clock DOMID` (the module docs).
fn clock(x: &Xen, domid: u16) -> ExitCode {
    use xen_vcpus_stats::xen::Clock;
    println!("library {}", x.library());
    let frame = x.map_time_frame(domid);
    println!("time-frame {domid} {}", variant(&frame));
    if let Err(e) = &frame {
        println!("message time-frame {domid} {e}");
    }
    let show = |v: Option<u64>| v.map_or_else(|| "none".to_owned(), |n| n.to_string());
    if let Ok(f) = &frame {
        println!("frame-now {domid} {}", show(f.now_ns()));
    }
    let table = match x.map_table(domid, TableKind::Vcpu) {
        Ok(t) => t,
        Err(e) => {
            println!("message vCPU {domid} {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "table-clock {domid} {} {}",
        table.info().clock,
        table.clock_name().unwrap_or("none")
    );
    let a = table.clock_now();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let b = table.clock_now();
    println!("now {domid} {} {}", show(a), show(b));
    ExitCode::SUCCESS
}
