//! Builds the Xen stats-table producer exactly as the patch series in
//! `xen/patches` adds it to Xen.
//!
//! 1. Applies every `xen/patches/*.patch`, in file-name order, to an empty
//!    tree, keeping only the two producer files (`xen/common/stats_table.c`
//!    and `xen/include/xen/stats_table.h`). A patch that creates, changes
//!    or deletes either is applied hunk by hunk with exact context (no fuzz,
//!    no offset search): a hunk that does not match is a build error. The
//!    other files of the series (the Xen glue) are skipped.
//! 2. Lays out an include directory in `OUT_DIR`: the extracted
//!    `xen/stats_table.h`, and `public/stats_table.h`, which is the one
//!    public header of the repository (`capi/include/xen/stats_table.h`),
//!    as the series copies it into Xen.
//! 3. Compiles the extracted `stats_table.c`, unmodified, with the `cc`
//!    crate against that directory and the crate's `shim/` (the few Xen
//!    headers the file may include), with Xen's own C flags.
//!
//! The extracted sources are also kept in `OUT_DIR/xen-src` and named in
//! `OUT_DIR/sources.txt` (which patch last touched each file), so the
//! tests can say what they tested.

use std::{
    collections::BTreeMap,
    env, fs,
    path::{Path, PathBuf},
};

/// The files the harness compiles, by their path in the Xen tree.
const PRODUCER_C: &str = "xen/common/stats_table.c";
const PRODUCER_H: &str = "xen/include/xen/stats_table.h";

/// One file's contents as lines, each with its `\n` (the last may lack
/// it), and the patch that last changed it.
#[derive(Debug, Default)]
struct File {
    lines: Vec<String>,
    last_patch: String,
}

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest.join("../..");
    let patches_dir = root.join("xen/patches");
    let public_header = root.join("capi/include/xen/stats_table.h");
    let shim = manifest.join("shim");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));

    println!("cargo:rerun-if-changed={}", patches_dir.display());
    println!("cargo:rerun-if-changed={}", public_header.display());
    println!("cargo:rerun-if-changed={}", shim.display());

    let files = match apply_series(&patches_dir, &[PRODUCER_C, PRODUCER_H]) {
        Ok(f) => f,
        Err(e) => panic!(
            "extracting the producer from {}: {e}",
            patches_dir.display()
        ),
    };

    let src = out.join("xen-src");
    let include = out.join("include");
    let mut sources = String::new();
    for path in [PRODUCER_C, PRODUCER_H] {
        let f = files.get(path).unwrap_or_else(|| {
            panic!(
                "no patch in {} creates {path}: the series must add the producer",
                patches_dir.display()
            )
        });
        write(&src.join(path), &f.lines.concat());
        sources.push_str(&format!("{path} {}\n", f.last_patch));
    }
    write(&out.join("sources.txt"), &sources);
    // <xen/stats_table.h> as the series adds it, <public/stats_table.h> as
    // the series copies it.
    write(
        &include.join("xen/stats_table.h"),
        &files[PRODUCER_H].lines.concat(),
    );
    let public = fs::read_to_string(&public_header)
        .unwrap_or_else(|e| panic!("reading {}: {e}", public_header.display()));
    write(&include.join("public/stats_table.h"), &public);

    let mut build = cc::Build::new();
    build
        .file(src.join(PRODUCER_C))
        .file(shim.join("shim.c"))
        .include(&include)
        .include(&shim)
        // Xen's flags (Config.mk, xen/Makefile) that change what this file
        // means or whether it compiles; -Werror as Xen builds.
        .std("gnu99")
        .flag("-fno-strict-aliasing")
        .flag("-Wall")
        .flag("-Wstrict-prototypes")
        .flag("-Wdeclaration-after-statement")
        .warnings_into_errors(true)
        // ASSERT() active, as in a Xen debug build.
        .debug(true)
        .opt_level(2);
    build.compile("xen_stats_table");
}

fn write(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    }
    fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// Applies the patches of `dir` in name order to an empty tree and returns
/// the files of `wanted` they leave.
fn apply_series(dir: &Path, wanted: &[&str]) -> Result<BTreeMap<String, File>, String> {
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

/// Splits `"a,b"` or `"a"` (count 1) of a hunk header.
fn range(s: &str) -> Option<(usize, usize)> {
    match s.split_once(',') {
        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
        None => Some((s.parse().ok()?, 1)),
    }
}

/// Applies the sections of one patch (a `git format-patch` mail or a
/// plain `git diff`) that concern `wanted` files.
fn apply_patch(
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
