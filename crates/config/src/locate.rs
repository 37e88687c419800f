//! Maps a key path back to a line of the source so semantic problems found
//! after deserialisation can still point at the offending line.

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// A step in a key path: a table key or an array index.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

pub struct Locator<'i> {
    source: &'i str,
    root: Option<Spanned<DeTable<'i>>>,
}

impl<'i> Locator<'i> {
    pub fn new(source: &'i str, root: Option<Spanned<DeTable<'i>>>) -> Self {
        Locator { source, root }
    }

    pub fn line_of_offset(&self, offset: usize) -> usize {
        let end = offset.min(self.source.len());
        self.source.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// Line of the value at `path`, or of the closest enclosing value found.
    pub fn line(&self, path: &[Step<'_>]) -> Option<usize> {
        let root = self.root.as_ref()?;
        let mut span = None;
        let mut table: Option<&DeTable<'i>> = Some(root.get_ref());
        let mut value: Option<&Spanned<DeValue<'i>>> = None;
        for step in path {
            let next = match (step, table, value) {
                (Step::Key(k), Some(t), _) => t
                    .iter()
                    .find(|(key, _)| key.get_ref().as_ref() == *k)
                    .map(|(_, v)| v),
                (Step::Index(i), _, Some(v)) => v.get_ref().get(*i),
                _ => None,
            };
            let Some(next) = next else { break };
            span = Some(next.span());
            value = Some(next);
            table = match next.get_ref() {
                DeValue::Table(t) => Some(t),
                _ => None,
            };
        }
        span.map(|s| self.line_of_offset(s.start))
    }
}
