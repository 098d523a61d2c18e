//! The one error type of this crate: a problem in a configuration file,
//! located precisely enough for an editor to jump to it.

use std::fmt;
use std::path::PathBuf;

/// A 1-based line and column in a YAML text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// The start of a text, used when nothing more precise is known.
    pub const START: Position = Position { line: 1, column: 1 };
}

/// A syntax, schema or validation error in a configuration file.
///
/// `Display` renders `FILE:LINE:COL: FIELD: message` (or `FILE:LINE:COL: message`
/// when the error is not about one field). Tools print it after `error: `, so
/// the format is a contract: keep it stable.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Dotted path of the offending field, e.g. `spec.http[0].route[1].weight`;
    /// empty when the error concerns the whole document or the text.
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(
        file: impl Into<PathBuf>,
        position: Position,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: file.into(),
            line: position.line,
            column: position.column,
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn position(&self) -> Position {
        Position {
            line: self.line,
            column: self.column,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_file_line_column_field_message() {
        let error = ConfigError::new(
            "dir/vs.yaml",
            Position {
                line: 12,
                column: 7,
            },
            "spec.http[0].route[1].weight",
            "percentage -10 is not in range 0..100",
        );
        assert_eq!(
            error.to_string(),
            "dir/vs.yaml:12:7: spec.http[0].route[1].weight: percentage -10 is not in range 0..100"
        );
    }

    #[test]
    fn display_without_field_omits_it() {
        let error = ConfigError::new("a.yaml", Position::START, "", "bad");
        assert_eq!(error.to_string(), "a.yaml:1:1: bad");
    }
}
