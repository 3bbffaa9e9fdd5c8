//! Configuration errors with file, line, column and a rustc-style source excerpt.

use std::{
    fmt, io,
    ops::Range,
    path::{Path, PathBuf},
};

/// Where in a rules file an error is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Location {
    /// Line, 1-based.
    pub line: usize,
    /// Column in characters, 1-based.
    pub column: usize,
    /// The text of the offending line, without its line break.
    pub source_line: String,
    /// How many characters from `column` to underline (at least 1).
    pub width: usize,
}

impl Location {
    /// Locates the byte range `span` in `text`.
    pub(crate) fn from_span(text: &str, span: Range<usize>) -> Location {
        let start = floor_boundary(text, span.start);
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let mut line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        if text[..line_end].ends_with('\r') && line_end > start {
            line_end -= 1;
        }
        let end = floor_boundary(text, span.end.clamp(start, line_end));
        Location {
            line: text[..start].matches('\n').count() + 1,
            column: text[line_start..start].chars().count() + 1,
            source_line: text[line_start..line_end.max(line_start)].to_owned(),
            width: text[start..end.max(start)].chars().count().max(1),
        }
    }
}

fn floor_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// An error in the rules configuration.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The rules directory could not be listed (missing, not a directory, permissions).
    DirUnreadable {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A rules file could not be read (permissions, dangling symlink, not UTF-8).
    FileUnreadable {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A file is not valid TOML, or a value has the wrong type, or a key is unknown or missing.
    Toml {
        /// The file.
        path: PathBuf,
        /// Where, when toml reported a span.
        location: Option<Location>,
        /// toml's message (without its own excerpt).
        message: String,
        /// What was expected / what to do.
        hint: String,
        /// The parser error.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// The TOML is well-formed but the rules are not (bad name, unknown reference, duplicate...).
    Invalid {
        /// The file (or the rules directory for errors about the whole set).
        path: PathBuf,
        /// Where, when the error is about one value.
        location: Option<Location>,
        /// What is wrong.
        message: String,
        /// What was expected / what to do.
        hint: String,
    },
}

impl ConfigError {
    /// Builds a [`ConfigError::Toml`] from a toml error on `text`.
    /// `span` is used when toml did not attach one.
    pub(super) fn toml(
        path: &Path,
        text: &str,
        err: toml::de::Error,
        span: Option<Range<usize>>,
    ) -> ConfigError {
        let message = err.message().trim_end().to_owned();
        ConfigError::Toml {
            path: path.to_owned(),
            location: err.span().or(span).map(|s| Location::from_span(text, s)),
            hint: toml_hint(&message).to_owned(),
            message,
            source: Box::new(err),
        }
    }

    /// The file or directory the error is about.
    pub(crate) fn path(&self) -> &Path {
        match self {
            ConfigError::DirUnreadable { path, .. }
            | ConfigError::FileUnreadable { path, .. }
            | ConfigError::Toml { path, .. }
            | ConfigError::Invalid { path, .. } => path,
        }
    }

    /// Line, column and source text, when known.
    pub(crate) fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Toml { location, .. } | ConfigError::Invalid { location, .. } => {
                location.as_ref()
            }
            ConfigError::DirUnreadable { .. } | ConfigError::FileUnreadable { .. } => None,
        }
    }

    /// What is wrong, without the location or the hint.
    pub(crate) fn message(&self) -> String {
        match self {
            ConfigError::DirUnreadable { source, .. } => {
                format!("cannot read rules directory: {source}")
            }
            ConfigError::FileUnreadable { source, .. } => {
                format!("cannot read rules file: {source}")
            }
            ConfigError::Toml { message, .. } | ConfigError::Invalid { message, .. } => {
                message.clone()
            }
        }
    }

    /// What was expected or what to do about it.
    pub(crate) fn hint(&self) -> &str {
        match self {
            ConfigError::DirUnreadable { .. } => {
                "expected a readable directory of *.toml rules files"
            }
            ConfigError::FileUnreadable { .. } => {
                "expected a readable UTF-8 file; fix its permissions or remove it"
            }
            ConfigError::Toml { hint, .. } | ConfigError::Invalid { hint, .. } => hint,
        }
    }
}

fn toml_hint(message: &str) -> &'static str {
    if message.starts_with("unknown field `kind`") {
        "`kind = \"network\"` was replaced by `expr`, e.g. \
         expr = \"trace.has(net.connect).where(peer.tenant != tenant)\"; see docs/rules.md"
    } else if message.starts_with("unknown field") {
        "remove the key or fix its spelling; docs/rules.md lists every key"
    } else if message.starts_with("missing field") {
        "add the required key; docs/rules.md lists every key"
    } else if message.starts_with("unknown variant") {
        "use one of the listed values"
    } else if message.starts_with("invalid type") {
        "give the value the type docs/rules.md shows for this key"
    } else {
        "fix the TOML syntax; see https://toml.io"
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path().display())?;
        if let Some(loc) = self.location() {
            write!(f, ":{}:{}", loc.line, loc.column)?;
        }
        write!(f, ": {} ({})", self.message(), self.hint())?;
        if let Some(loc) = self.location() {
            let gutter = loc.line.to_string();
            let pad = " ".repeat(gutter.len());
            // Keep tabs so the caret lines up with the source line.
            let indent: String = loc
                .source_line
                .chars()
                .take(loc.column - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "\n{gutter} | {}", loc.source_line)?;
            write!(f, "\n{pad} | {indent}{}", "^".repeat(loc.width))?;
        }
        Ok(())
    }
}

/// Every error found while loading the rules (loading does not stop at the first one).
///
/// Displays each error followed by a blank line, then `1 error` / `N errors`.
#[derive(Debug)]
pub(crate) struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for err in &self.0 {
            // A blank line between errors, as rustc does.
            write!(f, "{err}\n\n")?;
        }
        match self.0.len() {
            1 => write!(f, "1 error"),
            n => write!(f, "{n} errors"),
        }
    }
}

impl std::error::Error for ConfigErrors {}
