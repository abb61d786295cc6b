//! `top -b` and `top --csv`: the rows as plain text (or CSV) every
//! `--delay`, `--iterations` times, like `xentop -b`.

use std::{
    io::Write,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use vstats_consumer::{
    live::Liveness,
    overview::{Frame, Overview, VmRow},
    sample::SampleOptions,
};

use super::{elide, Layout, TopArgs};

/// The CSV columns.
pub const CSV_HEADER: &str = "iteration,time,name,backend,domid,vcpus,cpu_pct,runnable_pct,\
                              blocked_pct,state,busiest,busiest_per_sec,note";

/// Sleeps until `deadline`; `false` when `stop` was set first.
fn sleep_until(deadline: Instant, stop: &AtomicBool) -> bool {
    while !stop.load(Ordering::Relaxed) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
    false
}

/// Takes the baselines, then writes a frame every `args.delay`,
/// `args.iterations` times (or until `stop`).
///
/// # Errors
///
/// The root cannot be read; writing failed.
pub fn run(args: &TopArgs, out: &mut dyn Write, stop: &AtomicBool) -> anyhow::Result<()> {
    let mut top = Overview::new(&args.root, SampleOptions::default());
    if let Some(note) = top.refresh()?.xen_unavailable {
        eprintln!("xen-vcpus-stats: note: no Xen domains listed: {note}");
    }
    let view = args.view();
    let layout = Layout::for_width(args.width.into());
    if args.csv {
        writeln!(out, "{CSV_HEADER}")?;
    }
    let start = Instant::now();
    let mut n: u64 = 0;
    while args.iterations.is_none_or(|max| n < max) {
        let next = u32::try_from(n + 1).unwrap_or(u32::MAX);
        if !sleep_until(start + args.delay.saturating_mul(next), stop) {
            break;
        }
        n += 1;
        let mut frame = top.refresh()?;
        view.apply(&mut frame.rows);
        if args.csv {
            write_csv(&frame, n, out)?;
        } else {
            write_text(&frame, args, &layout, out)?;
        }
        out.flush()?;
    }
    Ok(())
}

/// The first line of a frame: the time, how many of the VMs shown (the
/// rows after the filter) are in which state, the sort; elided to `width`.
pub fn summary(rows: &[VmRow], sort: &str, width: usize) -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let count = |s| rows.iter().filter(|r| r.state == Some(s)).count();
    let line = format!(
        "vstats top {:02}:{:02}:{:02} UTC  {} VM{}: {} live, {} stopped, {} dead  sort {sort}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60,
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        count(Liveness::Live),
        count(Liveness::Stopped),
        count(Liveness::Dead),
    );
    elide(&line, width)
}

/// A row's note line, when it has one.
pub fn note_line(r: &VmRow, width: usize) -> Option<String> {
    r.note
        .as_ref()
        .map(|n| elide(&format!("  ! {}: {n}", r.name), width))
}

fn write_text(
    frame: &Frame,
    args: &TopArgs,
    layout: &Layout,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let width = usize::from(args.width);
    let sort = format!(
        "{}{}",
        args.sort,
        if args.reverse { " (reversed)" } else { "" }
    );
    writeln!(out, "{}", summary(&frame.rows, &sort, width))?;
    writeln!(out, "{}", layout.header())?;
    for r in &frame.rows {
        writeln!(out, "{}", layout.vm_line(r))?;
        if let Some(n) = note_line(r, width) {
            writeln!(out, "{n}")?;
        }
        if args.vcpus {
            if let Some(t) = layout.totals_line(r) {
                writeln!(out, "{t}")?;
            }
            for v in &r.vcpu_rows {
                for l in layout.vcpu_lines(v) {
                    writeln!(out, "{l}")?;
                }
            }
        }
    }
    writeln!(out)
}

/// A CSV field: quoted when it holds a comma, a quote or a line break.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn num(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| format!("{v:.3}"))
}

fn write_csv(frame: &Frame, n: u64, out: &mut dyn Write) -> std::io::Result<()> {
    let time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    for r in &frame.rows {
        let busiest = r.busiest();
        writeln!(
            out,
            "{n},{time:.3},{},{},{},{},{},{},{},{},{},{},{}",
            field(&r.name),
            r.backend.as_str(),
            r.domid.map_or(String::new(), |d| d.to_string()),
            r.vcpus,
            num(r.cpu),
            num(r.runnable),
            num(r.blocked),
            r.state.map_or("", Liveness::as_str),
            busiest.map_or("", |b| b.counter.name()),
            num(busiest.map(vstats_consumer::overview::Rate::scaled)),
            field(r.note.as_deref().unwrap_or("")),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted() {
        assert_eq!(field("vm1"), "vm1");
        assert_eq!(field("a,\"b\""), "\"a,\"\"b\"\"\"");
        assert_eq!(CSV_HEADER.split(',').count(), 13);
    }
}
