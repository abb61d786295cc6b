//! Applying the patch series to an empty tree, for the files the harness
//! compiles: a small applier of unified diffs as `git format-patch` writes
//! them (shared by `build.rs` and `tests/patch.rs`).

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

/// One file's contents as lines, each with its `\n` (the last may lack
/// it), and the patch that last changed it.
#[derive(Debug, Default)]
pub struct File {
    pub lines: Vec<String>,
    pub last_patch: String,
}

/// Splits `"a,b"` or `"a"` (count 1) of a hunk header.
fn range(s: &str) -> Option<(usize, usize)> {
    match s.split_once(',') {
        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
        None => Some((s.parse().ok()?, 1)),
    }
}

/// Applies the sections of one patch (a `git format-patch` mail or a
/// plain `git diff`) that concern `wanted` files.
pub fn apply_patch(
    text: &str,
    patch: &str,
    wanted: &[&str],
    tree: &mut BTreeMap<String, File>,
) -> Result<(), String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut i = 0;
    while i < lines.len() {
        let Some(rest) = lines[i].strip_prefix("diff --git ") else {
            i += 1;
            continue;
        };
        let rest = rest.trim_end();
        // "a/P b/P": the two names are equal unless the section renames.
        let target = rest
            .split_once(" b/")
            .map(|(_, b)| b.to_owned())
            .ok_or_else(|| format!("line {}: cannot parse {rest:?}", i + 1))?;
        let concerned = |p: &str| wanted.contains(&p);
        i += 1;
        // The extended header, up to the first hunk or the next section.
        let (mut new_file, mut deleted) = (false, false);
        let mut old_name = None;
        while i < lines.len()
            && !lines[i].starts_with("@@ ")
            && !lines[i].starts_with("diff --git ")
        {
            let l = lines[i].trim_end();
            if l.starts_with("new file mode") {
                new_file = true;
            } else if l.starts_with("deleted file mode") {
                deleted = true;
            } else if let Some(n) = l
                .strip_prefix("rename from ")
                .or(l.strip_prefix("copy from "))
            {
                old_name = Some(n.to_owned());
            } else if (l.starts_with("GIT binary patch") || l.starts_with("Binary files "))
                && concerned(&target)
            {
                return Err(format!("{target}: a binary patch"));
            }
            i += 1;
        }
        if let Some(old) = &old_name {
            if concerned(old) || concerned(&target) {
                return Err(format!(
                    "{old} -> {target}: renames and copies are not supported"
                ));
            }
        }
        if !concerned(&target) {
            continue;
        }
        if deleted {
            tree.remove(&target);
            // Skip its hunks.
            continue;
        }
        let mut file = if new_file {
            if tree.contains_key(&target) {
                return Err(format!("{target}: created twice"));
            }
            File::default()
        } else {
            tree.remove(&target).ok_or_else(|| {
                format!("{target}: changed, but no earlier patch of the series creates it")
            })?
        };
        // Hunks, each consumed by its counts (so a content line can never
        // be taken for a header).
        let mut delta: isize = 0;
        while i < lines.len() && lines[i].starts_with("@@ ") {
            let header = lines[i];
            let mut parts = header.split(' ');
            let (old, new) = match (parts.next(), parts.next(), parts.next()) {
                (Some("@@"), Some(o), Some(n)) => (
                    o.strip_prefix('-').and_then(range),
                    n.strip_prefix('+').and_then(range),
                ),
                _ => (None, None),
            };
            let (Some((old_start, old_len)), Some((_, new_len))) = (old, new) else {
                return Err(format!("line {}: bad hunk header {header:?}", i + 1));
            };
            i += 1;
            let mut before: Vec<String> = Vec::new();
            let mut after: Vec<String> = Vec::new();
            // Which side(s) the last line went to, for "\ No newline".
            let mut last = (false, false);
            while before.len() < old_len
                || after.len() < new_len
                || lines.get(i).is_some_and(|l| l.starts_with('\\'))
            {
                let l = lines
                    .get(i)
                    .ok_or_else(|| format!("{target}: hunk at {header:?} ends early"))?;
                i += 1;
                let body = l.get(1..).unwrap_or("").to_owned();
                match l.as_bytes().first() {
                    Some(b' ') => {
                        before.push(body.clone());
                        after.push(body);
                        last = (true, true);
                    }
                    // An empty context line may lose its space in transit.
                    Some(b'\n') => {
                        before.push("\n".into());
                        after.push("\n".into());
                        last = (true, true);
                    }
                    Some(b'-') => {
                        before.push(body);
                        last = (true, false);
                    }
                    Some(b'+') => {
                        after.push(body);
                        last = (false, true);
                    }
                    Some(b'\\') => {
                        if last.0 {
                            strip_newline(&mut before);
                        }
                        if last.1 {
                            strip_newline(&mut after);
                        }
                    }
                    _ => return Err(format!("{target}: bad hunk line {l:?} in {header:?}")),
                }
                if before.len() > old_len || after.len() > new_len {
                    return Err(format!("{target}: hunk {header:?} longer than its counts"));
                }
            }
            // "-a,0" inserts after line a; otherwise the hunk starts at a.
            let start = if old_len == 0 {
                old_start
            } else {
                old_start.saturating_sub(1)
            };
            let at = usize::try_from(start as isize + delta)
                .map_err(|_| format!("{target}: hunk {header:?} before the file"))?;
            let end = at + old_len;
            if file.lines.get(at..end) != Some(&before[..]) {
                return Err(format!(
                    "{target}: hunk {header:?} does not match the file as the series left it"
                ));
            }
            file.lines.splice(at..end, after);
            delta += new_len as isize - old_len as isize;
        }
        file.last_patch = patch.to_owned();
        tree.insert(target, file);
    }
    Ok(())
}

fn strip_newline(v: &mut [String]) {
    if let Some(l) = v.last_mut() {
        if l.ends_with('\n') {
            l.pop();
        }
    }
}

/// Applies the patches of `dir` in name order to an empty tree and returns
/// the files of `wanted` they leave.
pub fn apply_series(dir: &Path, wanted: &[&str]) -> Result<BTreeMap<String, File>, String> {
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| format!("cannot read the directory: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "patch"))
        .collect();
    names.sort();
    if names.is_empty() {
        return Err("no *.patch file".into());
    }
    let mut tree = BTreeMap::new();
    for p in &names {
        // Cargo reruns the build script when a patch changes (build.rs
        // only; a test ignores the line).
        println!("cargo:rerun-if-changed={}", p.display());
        let text = fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        apply_patch(&text, &name, wanted, &mut tree).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(tree)
}
