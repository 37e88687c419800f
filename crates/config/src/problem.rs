use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong with a configuration file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path such as `app[1].upstream`; empty for file-level problems.
    pub key: String,
    /// 1-based line in the file, when the key could be located.
    pub line: Option<usize>,
    pub message: String,
}

/// Every problem found in one file. Reported all at once so an operator can
/// fix a file in one pass instead of one error per run.
#[derive(Debug, Clone, thiserror::Error)]
pub struct Problems {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl Problems {
    pub(crate) fn single(file: &Path, key: &str, line: Option<usize>, message: String) -> Self {
        Problems {
            file: file.to_path_buf(),
            problems: vec![Problem {
                key: key.to_string(),
                line,
                message,
            }],
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match problem.line {
                Some(line) => write!(f, "{}:{}: {}", self.file.display(), line, problem)?,
                None => write!(f, "{}: {}", self.file.display(), problem)?,
            }
        }
        Ok(())
    }
}
