//! The patch applier `build.rs` extracts the producer with
//! (`build/patch.rs`): what it applies, and the clear error it gives for
//! each patch it cannot apply exactly.

use std::collections::BTreeMap;

#[path = "../build/patch.rs"]
mod patch;

use patch::{apply_patch, apply_series, File};

const C: &str = "xen/common/stats_table.c";
const WANTED: &[&str] = &[C];

fn apply(patches: &[&str]) -> Result<BTreeMap<String, File>, String> {
    let mut tree = BTreeMap::new();
    for (k, p) in patches.iter().enumerate() {
        apply_patch(p, &format!("{k:04}.patch"), WANTED, &mut tree)?;
    }
    Ok(tree)
}

fn text(tree: &BTreeMap<String, File>) -> String {
    tree[C].lines.concat()
}

const CREATE: &str = "From 0 Mon Sep 17 00:00:00 2001
Subject: [PATCH 1/2] add

A message line that is not a diff.
---
diff --git a/xen/common/other.c b/xen/common/other.c
new file mode 100644
--- /dev/null
+++ b/xen/common/other.c
@@ -0,0 +1,2 @@
+diff --git a/xen/common/stats_table.c b/xen/common/stats_table.c
+int other;
diff --git a/xen/common/stats_table.c b/xen/common/stats_table.c
new file mode 100644
index 0000000..1111111
--- /dev/null
+++ b/xen/common/stats_table.c
@@ -0,0 +1,4 @@
+a
+b
+
+d
-- 
2.39.2
";

const CHANGE: &str = "diff --git a/xen/common/stats_table.c b/xen/common/stats_table.c
index 1111111..2222222 100644
--- a/xen/common/stats_table.c
+++ b/xen/common/stats_table.c
@@ -1,2 +1,3 @@ int f(void)
 a
-b
+B
+b2
@@ -4 +5 @@
-d
+D
\\ No newline at end of file
";

#[test]
fn creates_then_changes() {
    let t = apply(&[CREATE]).unwrap();
    assert_eq!(text(&t), "a\nb\n\nd\n");
    assert_eq!(t[C].last_patch, "0000.patch");
    // Files not asked for are skipped, whatever their lines say.
    assert_eq!(t.len(), 1);
    let t = apply(&[CREATE, CHANGE]).unwrap();
    assert_eq!(text(&t), "a\nB\nb2\n\nD");
    assert_eq!(t[C].last_patch, "0001.patch");
}

#[test]
fn a_context_mismatch_is_refused() {
    let bad = CHANGE.replace(" a\n-b", " x\n-b");
    let e = apply(&[CREATE, &bad]).unwrap_err();
    assert!(
        e.contains("does not match the file as the series left it"),
        "{e}"
    );
}

#[test]
fn a_change_to_a_file_no_patch_created_is_refused() {
    let e = apply(&[CHANGE]).unwrap_err();
    assert!(
        e.contains("no earlier patch of the series creates it"),
        "{e}"
    );
}

#[test]
fn a_file_created_twice_is_refused() {
    let e = apply(&[CREATE, CREATE]).unwrap_err();
    assert!(e.contains("created twice"), "{e}");
}

#[test]
fn a_truncated_hunk_is_refused() {
    let cut = &CREATE[..CREATE.find("+d\n").unwrap()];
    let e = apply(&[cut]).unwrap_err();
    assert!(e.contains("ends early"), "{e}");
}

#[test]
fn a_bad_hunk_line_or_header_is_refused() {
    let e = apply(&[&CREATE.replace("+b\n", "*b\n")]).unwrap_err();
    assert!(e.contains("bad hunk line"), "{e}");
    let e = apply(&[&CREATE.replace("@@ -0,0 +1,4 @@", "@@ -0,0 +x @@")]).unwrap_err();
    assert!(e.contains("bad hunk header"), "{e}");
}

#[test]
fn renames_and_deletions() {
    let rename = "diff --git a/xen/common/old.c b/xen/common/stats_table.c
similarity index 100%
rename from xen/common/old.c
rename to xen/common/stats_table.c
";
    let e = apply(&[rename]).unwrap_err();
    assert!(e.contains("renames and copies are not supported"), "{e}");
    let delete = "diff --git a/xen/common/stats_table.c b/xen/common/stats_table.c
deleted file mode 100644
--- a/xen/common/stats_table.c
+++ /dev/null
@@ -1,4 +0,0 @@
-a
-b
-
-d
";
    let t = apply(&[CREATE, delete]).unwrap();
    assert!(t.is_empty());
}

/// The public header the series adds to Xen is the project's one public
/// header, byte for byte: patch 1 must be regenerated after any change to
/// `capi/include/xen/stats_table.h`.
#[test]
fn the_series_public_header_is_the_projects() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let public = "xen/include/public/stats_table.h";
    let tree = apply_series(&root.join("xen/patches"), &[public]).unwrap();
    let from_series = tree
        .get(public)
        .unwrap_or_else(|| panic!("no patch creates {public}"))
        .lines
        .concat();
    let capi = std::fs::read_to_string(root.join("capi/include/xen/stats_table.h")).unwrap();
    assert!(
        from_series == capi,
        "{public} in xen/patches differs from capi/include/xen/stats_table.h: regenerate patch 1"
    );
}
