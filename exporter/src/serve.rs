//! Serving Prometheus: `GET /metrics` answers with a snapshot of every VM
//! of the host taken at scrape time ([`crate::scrape`]), in OpenMetrics
//! 1.0 when the scraper's `Accept` header asks for
//! `application/openmetrics-text`, in the text format 0.0.4 otherwise.
//!
//! HTTP is [`tiny_http`]: synchronous, a handful of dependencies, no async
//! runtime. [`WORKERS`] threads take requests from the one listener, so
//! scrapes run concurrently, each with its own reused exposition and
//! output buffer. Other paths are 404, other methods on `/metrics` 405.
//! SIGTERM and SIGINT stop the workers after the request they are
//! answering; [`run`] then returns and the process exits 0.

use std::{
    net::{SocketAddr, ToSocketAddrs},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::Context;
use clap::Args;
use tiny_http::{Header, Method, Request, Response, Server, StatusCode};
use vstats_consumer::encode::openmetrics::{Exposition, Syntax};

use crate::scrape::Scraper;

/// Threads answering requests.
pub const WORKERS: usize = 4;

/// How often an idle worker checks for a stop request.
const POLL: Duration = Duration::from_millis(100);

/// The options of serving Prometheus.
#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on (HOST:PORT; port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9477")]
    pub listen: String,
    /// The root directory.
    #[command(flatten)]
    pub root: crate::cli::RootArg,
}

/// Resolves `--listen`: one address, or a clear error.
///
/// # Errors
///
/// Not `HOST:PORT`, or a host that does not resolve.
pub fn listen_addr(s: &str) -> anyhow::Result<SocketAddr> {
    s.to_socket_addrs()
        .with_context(|| format!("--listen {s}: not an address (HOST:PORT, e.g. 127.0.0.1:9477)"))?
        .next()
        .with_context(|| format!("--listen {s}: resolves to no address"))
}

/// Binds the listener.
///
/// # Errors
///
/// The address cannot be bound (in use, not local, no permission).
pub fn bind(addr: SocketAddr) -> anyhow::Result<Server> {
    Server::http(addr).map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))
}

/// Serves until SIGTERM or SIGINT. Prints
/// `vstats-exporter: listening on http://ADDR/metrics` to stderr once
/// listening (with the port chosen when `--listen` gave port 0).
///
/// # Errors
///
/// A bad `--listen`, an address that cannot be bound, a signal handler
/// that cannot be installed.
pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let addr = listen_addr(&args.listen)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    let server = bind(addr)?;
    let bound = server.server_addr().to_ip().unwrap_or(addr);
    eprintln!("vstats-exporter: listening on http://{bound}/metrics");
    serve(&server, &Scraper::new(args.root.dir()), &stop);
    Ok(())
}

/// Answers requests on `server` with [`WORKERS`] threads until `stop` is
/// set.
pub fn serve(server: &Server, scraper: &Scraper, stop: &AtomicBool) {
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| worker(server, scraper, stop));
        }
    });
}

fn worker(server: &Server, scraper: &Scraper, stop: &AtomicBool) {
    let mut e = Exposition::new();
    let mut out = String::new();
    while !stop.load(Ordering::Relaxed) {
        match server.recv_timeout(POLL) {
            Ok(Some(req)) => answer(req, scraper, &mut e, &mut out),
            Ok(None) => {}
            Err(err) => {
                eprintln!("vstats-exporter: accepting a request: {err}");
                std::thread::sleep(POLL);
            }
        }
    }
}

fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

fn text(status: u16, body: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    let r = Response::from_string(body).with_status_code(status);
    match header("Content-Type", "text/plain; charset=utf-8") {
        Some(h) => r.with_header(h),
        None => r,
    }
}

/// Answers one request. Errors writing the answer (the scraper went
/// away) are ignored.
fn answer(req: Request, scraper: &Scraper, e: &mut Exposition, out: &mut String) {
    let path = req.url().split('?').next().unwrap_or("");
    if path != "/metrics" {
        let _ = req.respond(text(404, "not found: the metrics are at /metrics\n"));
        return;
    }
    // tiny_http sends no body to HEAD.
    match req.method() {
        Method::Get | Method::Head => {}
        _ => {
            let mut r = text(405, "method not allowed: GET /metrics\n");
            if let Some(h) = header("Allow", "GET, HEAD") {
                r = r.with_header(h);
            }
            let _ = req.respond(r);
            return;
        }
    };
    let accept = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("Accept"))
        .map(|h| h.value.as_str().to_owned());
    let syntax = Syntax::negotiate(accept.as_deref());
    scraper.scrape(e, syntax, out);
    let headers = header("Content-Type", syntax.content_type())
        .into_iter()
        .collect();
    let body = out.as_bytes();
    // The whole body is at hand: a Content-Length, never chunks.
    let r = Response::new(StatusCode(200), headers, body, Some(body.len()), None)
        .with_chunked_threshold(usize::MAX);
    let _ = req.respond(r);
}
