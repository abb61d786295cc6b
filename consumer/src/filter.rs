//! Which counters and which vCPUs: `--names` and `--vcpus` filters as
//! QEMU's `query-stats` has them.

use std::fmt;

/// A set of vCPU indices from `0,2-3,7`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VcpuList(pub Vec<u32>);

impl std::str::FromStr for VcpuList {
    type Err = String;

    /// Parses a comma-separated list of indices and inclusive ranges
    /// (`0,2-3`), sorted and without duplicates.
    fn from_str(s: &str) -> Result<VcpuList, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim) {
            let num = |t: &str| {
                t.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("{t:?} is not a vCPU number (expected e.g. 0,2-3)"))
            };
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (num(a)?, num(b)?);
                    if a > b {
                        return Err(format!("range {part:?} is empty"));
                    }
                    if b - a >= 1 << 20 {
                        return Err(format!("range {part:?} is too large"));
                    }
                    out.extend(a..=b);
                }
                None => out.push(num(part)?),
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(VcpuList(out))
    }
}

impl fmt::Display for VcpuList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// Counter name patterns from `--names exits,halt_*`: exact names, or
/// shell-style patterns with `*` (any run of characters) and `?` (one
/// character).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameFilter(Vec<String>);

impl NameFilter {
    /// A filter from patterns (each may itself be comma-separated).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> NameFilter {
        NameFilter(
            patterns
                .iter()
                .flat_map(|p| p.as_ref().split(','))
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    /// Whether no pattern was given (everything passes).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The patterns.
    pub fn patterns(&self) -> &[String] {
        &self.0
    }

    /// Whether `name` passes: no patterns, or one of them matches.
    pub fn matches(&self, name: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|p| glob(p.as_bytes(), name.as_bytes()))
    }
}

/// Whether a VM's `name` passes a name filter typed by a user: a
/// shell-style pattern ([`glob`]) when `pattern` holds `*` or `?`, else a
/// case-insensitive substring; an empty pattern passes everything.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    if pattern.contains(['*', '?']) {
        glob(pattern.as_bytes(), name.as_bytes())
    } else {
        name.to_lowercase().contains(&pattern.to_lowercase())
    }
}

/// Shell-style match of `name` against `pat` (`*`, `?`), iterative with
/// one backtracking point: linear in practice, never recursive.
pub fn glob(pat: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pat.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcpu_lists() {
        let l: VcpuList = "3,0-1, 1".parse().unwrap();
        assert_eq!(l.0, vec![0, 1, 3]);
        assert_eq!(l.to_string(), "0,1,3");
        for bad in ["", "a", "1-", "3-1", "-1", "0-99999999"] {
            assert!(bad.parse::<VcpuList>().is_err(), "{bad}");
        }
    }

    #[test]
    fn globs() {
        for (p, n, m) in [
            ("exits", "exits", true),
            ("exits", "io_exits", false),
            ("*exits", "io_exits", true),
            ("halt_*", "halt_exits", true),
            ("halt_*", "exits", false),
            ("h?lt*s", "halt_exits", true),
            ("*", "", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
        ] {
            assert_eq!(glob(p.as_bytes(), n.as_bytes()), m, "{p} {n}");
        }
        let f = NameFilter::new(&["exits,halt_*", " "]);
        assert_eq!(f.patterns(), ["exits", "halt_*"]);
        assert!(f.matches("halt_wakeup") && !f.matches("io_exits"));
        assert!(NameFilter::default().matches("anything"));
    }

    #[test]
    fn vm_name_filters() {
        assert!(name_matches("", "vm1"));
        assert!(name_matches("WEB", "prod-web-3"));
        assert!(!name_matches("db", "prod-web-3"));
        assert!(name_matches("prod-*-3", "prod-web-3"));
        assert!(
            !name_matches("web*", "prod-web-3"),
            "a pattern matches the whole name"
        );
    }
}
