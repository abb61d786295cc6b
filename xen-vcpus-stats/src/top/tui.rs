//! `top`'s interactive view (ratatui on crossterm): refreshed in place
//! every `--delay`; keys to move, expand a VM into its vCPUs, sort, filter,
//! reset and quit. The terminal is restored on exit, on error and on
//! panic.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::{
    style::{Modifier, Style},
    text::Line,
    widgets::Paragraph,
};
use vstats_consumer::{
    overview::{Frame, Overview, SortKey, View},
    sample::SampleOptions,
};

use super::{batch, elide, Layout, TopArgs};

/// The keys, for the footer.
pub const KEYS: &str = "q quit  Enter expand  n/i/v/c/r/b/t/s sort  R reverse  / filter  z reset";

/// Restores the terminal when dropped: on return, on error, and while a
/// panic unwinds (ratatui's panic hook restores it before the message).
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// What the view shows besides the rows.
#[derive(Debug, Default)]
struct State {
    view: View,
    /// Names of the expanded VMs.
    expanded: HashSet<String>,
    /// The selected VM's position among the rows last drawn.
    selected: usize,
    /// The selected VM's name: the selection follows the VM when a
    /// refresh reorders the rows, so `Enter` expands the VM marked.
    selected_name: Option<String>,
    /// The names of the rows last drawn, in order.
    shown: Vec<String>,
    /// The filter being typed, when `/` was pressed.
    typing: Option<String>,
    /// A message for the status line (a reset, a rescan error).
    message: Option<String>,
    /// Expand (or collapse) the selected VM at the next draw.
    toggle: bool,
}

/// Runs the view until `q` (or `--iterations` refreshes).
///
/// # Errors
///
/// The root cannot be read at the start; the terminal failed.
pub fn run(args: &TopArgs) -> anyhow::Result<()> {
    let mut top = Overview::new(&args.root, SampleOptions::default());
    let mut frame = top.refresh()?;
    let mut terminal = ratatui::init();
    let _restore = Restore;
    let mut st = State {
        view: args.view(),
        // Why no Xen domain is shown, until the first key.
        message: (frame.xen_unavailable.as_ref()).map(|n| format!("no Xen domains listed: {n}")),
        ..State::default()
    };
    let mut refreshes: u64 = 0;
    let mut next = Instant::now() + args.delay;
    loop {
        terminal.draw(|f| draw(f, &frame, &mut st))?;
        let left = next.saturating_duration_since(Instant::now());
        if event::poll(left.min(Duration::from_millis(250)))? {
            if let Event::Key(k) = event::read()? {
                if k.kind != KeyEventKind::Release && key(k, &mut st, &mut top) {
                    return Ok(());
                }
            }
        }
        if Instant::now() >= next {
            next += args.delay;
            match top.refresh() {
                Ok(f) => frame = f,
                Err(e) => st.message = Some(format!("rescan failed: {e}")),
            }
            refreshes += 1;
            if args.iterations.is_some_and(|n| refreshes >= n) {
                return Ok(());
            }
        }
        // Too far behind (a suspended terminal): no burst of refreshes.
        if next < Instant::now() {
            next = Instant::now() + args.delay;
        }
    }
}

/// Handles a key; `true` to quit.
fn key(k: KeyEvent, st: &mut State, top: &mut Overview) -> bool {
    if let Some(t) = st.typing.as_mut() {
        match k.code {
            KeyCode::Enter => {
                st.view.filter = st.typing.take().unwrap_or_default();
                st.selected = 0;
                st.selected_name = None;
            }
            KeyCode::Esc => st.typing = None,
            KeyCode::Backspace => {
                t.pop();
            }
            KeyCode::Char(c) if !c.is_control() && t.len() < 64 => t.push(c),
            _ => {}
        }
        return false;
    }
    // A message stays until the next key; then the keys' help is back.
    st.message = None;
    let sort = |st: &mut State, key: SortKey| {
        st.view.sort = key;
        st.message = Some(format!("sorted by {key}"));
    };
    match k.code {
        KeyCode::Char('q') | KeyCode::Esc => return true,
        KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => return true,
        KeyCode::Up | KeyCode::Char('k') => select(st, st.selected.saturating_sub(1)),
        KeyCode::Down | KeyCode::Char('j') => select(st, st.selected.saturating_add(1)),
        KeyCode::Enter | KeyCode::Char(' ') | KeyCode::Char('e') => st.toggle = true,
        KeyCode::Char('n') => sort(st, SortKey::Name),
        KeyCode::Char('i') => sort(st, SortKey::Id),
        KeyCode::Char('v') => sort(st, SortKey::Vcpus),
        KeyCode::Char('c') => sort(st, SortKey::Cpu),
        KeyCode::Char('r') => sort(st, SortKey::Runnable),
        KeyCode::Char('b') => sort(st, SortKey::Blocked),
        KeyCode::Char('t') => sort(st, SortKey::Rate),
        KeyCode::Char('s') => sort(st, SortKey::State),
        KeyCode::Char('>') | KeyCode::Tab => {
            let next = st.view.sort.next();
            sort(st, next);
        }
        KeyCode::Char('R') => {
            st.view.reverse = !st.view.reverse;
            st.message = Some(format!("reversed: {}", st.view.reverse));
        }
        KeyCode::Char('/') => st.typing = Some(st.view.filter.clone()),
        KeyCode::Char('z') => {
            top.reset();
            st.message = Some("reset: totals and histograms count from now".into());
        }
        _ => {}
    }
    false
}

/// Selects the row at `i` of those last drawn (the last one past the
/// end).
fn select(st: &mut State, i: usize) {
    st.selected = i.min(st.shown.len().saturating_sub(1));
    st.selected_name = st.shown.get(st.selected).cloned();
}

/// Draws the frame: a summary line, the column header, the rows (with
/// the expanded VMs' vCPUs), a status line.
fn draw(f: &mut ratatui::Frame<'_>, frame: &Frame, st: &mut State) {
    let area = f.area();
    let width = usize::from(area.width);
    let layout = Layout::for_width(width);
    let mut rows = frame.rows.clone();
    st.view.apply(&mut rows);
    // The selected VM where it is now; the same position when it went away.
    if let Some(i) = st
        .selected_name
        .as_ref()
        .and_then(|n| rows.iter().position(|r| &r.name == n))
    {
        st.selected = i;
    }
    st.shown = rows.iter().map(|r| r.name.clone()).collect();
    select(st, st.selected);
    if std::mem::take(&mut st.toggle) {
        if let Some(r) = rows.get(st.selected) {
            if !st.expanded.remove(&r.name) {
                st.expanded.insert(r.name.clone());
            }
        }
    }
    let sort = format!(
        "{}{}",
        st.view.sort,
        if st.view.reverse { " (reversed)" } else { "" }
    );
    let mut lines = vec![
        Line::raw(batch::summary(&rows, &sort, width)),
        Line::styled(
            layout.header(),
            Style::new().add_modifier(Modifier::REVERSED),
        ),
    ];
    // The body: (line, row index, whether it is the VM's own line), so
    // the selection can be kept visible and marked.
    let mut body: Vec<(String, usize, bool)> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        body.push((layout.vm_line(r), i, true));
        if let Some(n) = batch::note_line(r, width) {
            body.push((n, i, false));
        }
        if st.expanded.contains(&r.name) {
            if let Some(t) = layout.totals_line(r) {
                body.push((t, i, false));
            }
            for v in &r.vcpu_rows {
                body.extend(layout.vcpu_lines(v).into_iter().map(|l| (l, i, false)));
            }
        }
    }
    let room = usize::from(area.height).saturating_sub(3);
    let first_sel = body
        .iter()
        .position(|(_, i, _)| *i == st.selected)
        .unwrap_or(0);
    let skip = first_sel.saturating_sub(room.saturating_sub(1));
    for (l, i, own) in body.into_iter().skip(skip).take(room) {
        let style = if i == st.selected && own {
            Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
        } else {
            Style::new()
        };
        lines.push(Line::styled(l, style));
    }
    while lines.len() + 1 < usize::from(area.height) {
        lines.push(Line::raw(""));
    }
    let status = match (&st.typing, &st.message) {
        (Some(t), _) => format!("filter: {t}_  (Enter apply, Esc cancel)"),
        (None, Some(m)) => m.clone(),
        (None, None) if !st.view.filter.is_empty() => {
            format!("filter {:?}  {KEYS}", st.view.filter)
        }
        (None, None) => KEYS.to_owned(),
    };
    lines.push(Line::raw(elide(&status, width)));
    f.render_widget(Paragraph::new(lines), area);
}

#[cfg(test)]
mod tests {
    use ratatui::{backend::TestBackend, Terminal};
    use vstats_consumer::{discover::Backend, overview::VmRow};

    use super::*;

    fn row(name: &str, cpu: f64) -> VmRow {
        VmRow {
            name: name.into(),
            backend: Backend::File,
            domid: None,
            vcpus: 1,
            cpu: Some(cpu),
            runnable: None,
            blocked: None,
            rates: Vec::new(),
            state: None,
            note: None,
            vcpu_rows: Vec::new(),
        }
    }

    fn frame(rows: Vec<VmRow>) -> Frame {
        Frame {
            rows,
            xen_unavailable: None,
        }
    }

    fn press(code: KeyCode, st: &mut State, top: &mut Overview) {
        assert!(
            !key(KeyEvent::from(code), st, top),
            "{code:?} does not quit"
        );
    }

    /// A refresh that reorders the rows moves the selection with its VM,
    /// and `Enter` expands the VM selected, not the one now at its place.
    #[test]
    fn the_selection_follows_its_vm() {
        let mut term = Terminal::new(TestBackend::new(80, 24)).expect("test terminal");
        let mut top = Overview::new(
            std::path::Path::new("/nonexistent"),
            SampleOptions::default(),
        );
        let mut st = State {
            view: View {
                sort: SortKey::Cpu,
                ..View::default()
            },
            ..State::default()
        };
        let first = frame(vec![row("a", 10.0), row("b", 20.0), row("c", 30.0)]);
        term.draw(|f| draw(f, &first, &mut st)).expect("draw");
        assert_eq!(st.shown, ["c", "b", "a"]);
        assert_eq!(st.selected_name.as_deref(), Some("c"));
        st.message = Some("no Xen domains listed: not a Xen host".into());
        press(KeyCode::Down, &mut st, &mut top);
        assert_eq!(st.selected_name.as_deref(), Some("b"));
        assert_eq!(st.message, None, "a key clears the message");
        // b is the busiest now: it moves to the top, and stays selected.
        let second = frame(vec![row("a", 10.0), row("b", 50.0), row("c", 30.0)]);
        press(KeyCode::Enter, &mut st, &mut top);
        term.draw(|f| draw(f, &second, &mut st)).expect("draw");
        assert_eq!(st.shown, ["b", "c", "a"]);
        assert_eq!(st.selected, 0);
        assert_eq!(st.selected_name.as_deref(), Some("b"));
        assert!(
            st.expanded.contains("b") && st.expanded.len() == 1,
            "{:?}",
            st.expanded
        );
        // Past the end: the last row; a VM that went away leaves the
        // selection at its position.
        for _ in 0..5 {
            press(KeyCode::Down, &mut st, &mut top);
        }
        assert_eq!(st.selected_name.as_deref(), Some("a"));
        let third = frame(vec![row("b", 50.0), row("c", 30.0)]);
        term.draw(|f| draw(f, &third, &mut st)).expect("draw");
        assert_eq!(st.selected, 1);
        assert_eq!(st.selected_name.as_deref(), Some("c"));
    }

    /// The summary counts the VMs shown: those the filter keeps, as in
    /// batch mode.
    #[test]
    fn the_summary_counts_the_vms_shown() {
        let mut term = Terminal::new(TestBackend::new(80, 24)).expect("test terminal");
        let top_line = |term: &Terminal<TestBackend>| -> String {
            let buf = term.backend().buffer();
            (0..buf.area.width).map(|x| buf[(x, 0)].symbol()).collect()
        };
        let mut st = State::default();
        let f = frame(vec![row("a", 10.0), row("b", 20.0), row("c", 30.0)]);
        term.draw(|fr| draw(fr, &f, &mut st)).expect("draw");
        assert!(top_line(&term).contains(" 3 VMs: "), "{}", top_line(&term));
        st.view.filter = "a".into();
        term.draw(|fr| draw(fr, &f, &mut st)).expect("draw");
        assert!(top_line(&term).contains(" 1 VM: "), "{}", top_line(&term));
    }
}
