//! Runs in dom0 under the real-Xen test: maps tables through the Xen
//! backend as a program would and prints which [`xen::Error`] variant each
//! attempt ends in, one line each: `variant <what> <domid> <Variant>`.
//!
//! Usage: `xen-variant-probe DOMID...`: for each domain, its vCPU table,
//! its domain table, and both together (`map_domain`).

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
    for arg in std::env::args().skip(1) {
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
    }
    ExitCode::SUCCESS
}
