//! The node deny list (`--deny-nodes`, `--deny-nodes-file`): node ids whose certificates still chain to the
//! cluster CA but that must not take part any more — a lost machine, a leaked key — until the CA is
//! rotated. The transport refuses their connections and the core forgets their membership and evidence
//! ([`super::transport::Transport::set_denied`], [`super::ClusterCore::set_denied`]).
//!
//! The flag is fixed for the process; the file is re-read on every reload (SIGHUP, `POST /reload`), so a
//! node can be denied, or let back in, without a restart. This module only reads and checks the list.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::certs;

/// Why the deny list could not be read; the running list is kept.
#[derive(Debug, thiserror::Error)]
pub enum DenyListError {
    /// The file could not be read.
    #[error("cannot read the deny list {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An entry is not a node id.
    #[error(
        "{from}: {entry:?} is not a node id (a DNS name, as in `switchyard certs node --node-id`)"
    )]
    BadId {
        /// `--deny-nodes` or `FILE:LINE`.
        from: String,
        /// The entry.
        entry: String,
    },
}

/// Where the deny list comes from.
#[derive(Debug, Clone, Default)]
pub struct DenySource {
    /// `--deny-nodes`.
    pub ids: Vec<String>,
    /// `--deny-nodes-file`: one node id per line, `#` comments and blank lines ignored.
    pub file: Option<PathBuf>,
}

impl DenySource {
    /// Reads the current list: the flag's ids and the file's, checked.
    pub fn read(&self) -> Result<BTreeSet<String>, DenyListError> {
        let mut out = BTreeSet::new();
        for id in &self.ids {
            out.insert(check(id.trim(), || "--deny-nodes".to_string())?);
        }
        if let Some(path) = &self.file {
            let text = std::fs::read_to_string(path).map_err(|source| DenyListError::Read {
                path: path.clone(),
                source,
            })?;
            out.extend(parse(&text, path)?);
        }
        Ok(out)
    }
}

/// Parses a deny-list file's text.
pub fn parse(text: &str, path: &Path) -> Result<BTreeSet<String>, DenyListError> {
    let mut out = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or_default().trim();
        if entry.is_empty() {
            continue;
        }
        out.insert(check(entry, || format!("{}:{}", path.display(), n + 1))?);
    }
    Ok(out)
}

fn check(entry: &str, from: impl FnOnce() -> String) -> Result<String, DenyListError> {
    certs::validate_node_id(entry).map_err(|_| DenyListError::BadId {
        from: from(),
        entry: entry.to_string(),
    })?;
    Ok(entry.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn files_and_flags_are_parsed_and_checked() {
        let p = Path::new("/etc/switchyard/deny");
        // (name, text, expected ids or the error's location)
        type Row<'a> = (&'a str, &'a str, Result<&'a [&'a str], &'a str>);
        let rows: [Row; 5] = [
            ("empty", "", Ok(&[])),
            (
                "comments and blanks",
                "# lost laptop\n\n  n3  # leaked key\n",
                Ok(&["n3"]),
            ),
            (
                "several, deduplicated",
                "n1\nn2.dc1\nn1\n",
                Ok(&["n1", "n2.dc1"]),
            ),
            (
                "bad entry names its line",
                "n1\nnot a node\n",
                Err("/etc/switchyard/deny:2"),
            ),
            ("IP is not a node id", "10.0.0.1\n", Err("deny:1")),
        ];
        for (name, text, want) in rows {
            match (parse(text, p), want) {
                (Ok(got), Ok(ids)) => {
                    let ids: BTreeSet<String> = ids.iter().map(|s| s.to_string()).collect();
                    assert_eq!(got, ids, "{name}");
                }
                (Err(e), Err(at)) => assert!(e.to_string().contains(at), "{name}: {e}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn the_source_joins_flag_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("deny");
        std::fs::write(&file, "n2\n").unwrap();
        let src = DenySource {
            ids: vec!["n1".into()],
            file: Some(file.clone()),
        };
        assert_eq!(
            src.read().unwrap(),
            ["n1".to_string(), "n2".to_string()].into()
        );
        std::fs::remove_file(&file).unwrap();
        assert!(src.read().unwrap_err().to_string().contains("deny"));
        let bad = DenySource {
            ids: vec!["a b".into()],
            file: None,
        };
        assert!(bad.read().unwrap_err().to_string().contains("--deny-nodes"));
    }
}
