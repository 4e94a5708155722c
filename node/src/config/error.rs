//! The one error type configuration loading returns.
//!
//! An operator who gets a config error has a directory of YAML and needs to know *where* to look, so every
//! message names the file, the resource (`Kind/namespace/name`) and the field path inside it
//! (`spec.rules[0].backendRefs[1].priority`); YAML syntax errors name the file, line and column instead,
//! because there is no resource yet. Messages never contain secret values: the loader redacts anything
//! read from a `Secret` before it gets here.

use std::fmt;
use std::path::{Path, PathBuf};

/// A configuration that cannot be loaded. `Display` gives one line an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file or directory could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A directory was given but holds no `*.yaml` / `*.yml` file.
    #[error("{}: no *.yaml or *.yml files in this directory", path.display())]
    EmptyDirectory {
        /// The directory.
        path: PathBuf,
    },
    /// The file is not valid YAML.
    #[error("{}:{line}:{column}: YAML syntax error: {message}", file.display())]
    Yaml {
        /// The file.
        file: PathBuf,
        /// 1-based line (0 when the parser could not tell).
        line: u64,
        /// 1-based column (0 when the parser could not tell).
        column: u64,
        /// What the parser said.
        message: String,
    },
    /// A resource is invalid: bad field, dangling reference, failed validation.
    #[error("{}: {resource}: {field}: {message}", file.display())]
    Resource {
        /// The file the resource was read from.
        file: PathBuf,
        /// `Kind/namespace/name`, or `document N` when the document has no usable identity.
        resource: String,
        /// Path of the offending field inside the resource (`spec.rules[0].backendRefs[1].name`).
        field: String,
        /// What is wrong, and where relevant what was expected.
        message: String,
    },
}

/// Identifies one resource in messages: `Kind/namespace/name`, plus the file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResourceId {
    /// File the resource was read from.
    pub(crate) file: PathBuf,
    /// `kind` as written.
    pub(crate) kind: String,
    /// `metadata.namespace` (defaulted).
    pub(crate) namespace: String,
    /// `metadata.name`.
    pub(crate) name: String,
}

impl ResourceId {
    /// An error about `field` of this resource.
    pub(crate) fn error(
        &self,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Resource {
            file: self.file.clone(),
            resource: self.to_string(),
            field: field.into(),
            message: message.into(),
        }
    }

    /// A warning line about `field` of this resource, in the same shape as errors.
    pub(crate) fn warning(&self, field: impl AsRef<str>, message: impl AsRef<str>) -> String {
        format!(
            "{}: {}: {}: {}",
            self.file.display(),
            self,
            field.as_ref(),
            message.as_ref()
        )
    }

    /// `namespace/name`, the key used for lookups and in [`super::model::Config::backends`].
    pub(crate) fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// An error about a document that has no identity yet (no `kind` or `metadata.name`).
pub(crate) fn document_error(
    file: &Path,
    index: usize,
    field: impl Into<String>,
    message: impl Into<String>,
) -> ConfigError {
    ConfigError::Resource {
        file: file.to_path_buf(),
        resource: format!("document {}", index + 1),
        field: field.into(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_errors_name_file_resource_and_field() {
        let id = ResourceId {
            file: PathBuf::from("/etc/sy/route.yaml"),
            kind: "AIGatewayRoute".into(),
            namespace: "default".into(),
            name: "r".into(),
        };
        let msg = id
            .error("spec.rules[0].backendRefs[1].priority", "must be >= 0")
            .to_string();
        assert_eq!(
            msg,
            "/etc/sy/route.yaml: AIGatewayRoute/default/r: spec.rules[0].backendRefs[1].priority: must be >= 0"
        );
        assert_eq!(id.key(), "default/r");
    }

    #[test]
    fn yaml_errors_name_file_and_line() {
        let e = ConfigError::Yaml {
            file: PathBuf::from("a.yaml"),
            line: 3,
            column: 7,
            message: "mapping values are not allowed here".into(),
        };
        assert_eq!(
            e.to_string(),
            "a.yaml:3:7: YAML syntax error: mapping values are not allowed here"
        );
    }
}
