//! `vstats-exporter`: vstats tables for fleets. A thin front end over
//! [`vstats_consumer`]: [`serve`] answers Prometheus scrapes with a
//! snapshot taken at scrape time, [`rrdd`] writes an xcp-rrdd plugin file
//! (protocol v2) every interval.
#![forbid(unsafe_code)]

pub mod cli;
pub mod rrdd;
pub mod scrape;
pub mod serve;
