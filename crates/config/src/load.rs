use std::path::Path;

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use crate::locate::Locator;
use crate::metadata::MetadataReader;
use crate::model::Config;
use crate::problem::{Problem, Problems};
use crate::raw::{RawAdmin, RawApp, RawCluster, RawFile, RawIdp};
use crate::validate::Validator;

/// Read and validate a configuration file; `metadata` parses the peer SAML
/// metadata files it names.
pub fn load(path: &Path, metadata: &dyn MetadataReader) -> Result<Config, Problems> {
    let source = std::fs::read_to_string(path).map_err(|e| {
        Problems::single(
            path,
            "",
            None,
            format!("cannot read configuration file: {e}"),
        )
    })?;
    parse(&source, path, metadata)
}

/// Validate configuration text; `path` names it in problems and anchors
/// relative file paths; `metadata` parses the peer SAML metadata files it names.
pub fn parse(source: &str, path: &Path, metadata: &dyn MetadataReader) -> Result<Config, Problems> {
    let root = match DeTable::parse(source) {
        Ok(root) => root,
        Err(e) => {
            let locator = Locator::new(source, None);
            let line = e.span().map(|s| locator.line_of_offset(s.start));
            return Err(Problems::single(
                path,
                "",
                line,
                format!("TOML syntax error: {}", e.message().trim()),
            ));
        }
    };
    let mut problems = Vec::new();
    let mut file = RawFile::default();
    {
        let locator = Locator::new(source, None);
        for (key, value) in root.get_ref().iter() {
            let name = key.get_ref().as_ref();
            match name {
                "server" => {
                    if let Some(v) = section(name, value, &locator, &mut problems) {
                        file.server = v;
                    }
                }
                "admin" => file.admin = section::<RawAdmin>(name, value, &locator, &mut problems),
                "idp" => file.idp = section::<RawIdp>(name, value, &locator, &mut problems),
                "cluster" => {
                    file.cluster = section::<RawCluster>(name, value, &locator, &mut problems)
                }
                "log" => {
                    if let Some(v) = section(name, value, &locator, &mut problems) {
                        file.log = v;
                    }
                }
                "app" => match value.get_ref() {
                    DeValue::Array(items) => {
                        for (i, item) in items.iter().enumerate() {
                            let key = format!("app[{i}]");
                            file.apps
                                .push(section::<RawApp>(&key, item, &locator, &mut problems));
                        }
                    }
                    _ => problems.push(Problem {
                        key: "app".into(),
                        line: Some(locator.line_of_offset(value.span().start)),
                        message: "must be an array of tables, written [[app]]".into(),
                    }),
                },
                other => problems.push(Problem {
                    key: other.to_string(),
                    line: Some(locator.line_of_offset(key.span().start)),
                    message:
                        "unknown section (expected one of: server, admin, log, cluster, idp, app)"
                            .into(),
                }),
            }
        }
    }
    let locator = Locator::new(source, Some(root));
    let base = path.parent().unwrap_or(Path::new("."));
    let config = Validator::new(&locator, base, path, metadata).finish(file, problems);
    config.map_err(|problems| Problems {
        file: path.to_path_buf(),
        problems,
    })
}

/// Deserialise one section on its own so one bad section does not hide the
/// problems of the others.
fn section<T: DeserializeOwned>(
    key: &str,
    value: &Spanned<DeValue<'_>>,
    locator: &Locator<'_>,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    let deserializer = ValueDeserializer::from(value.clone());
    match serde_path_to_error::deserialize::<_, T>(deserializer) {
        Ok(v) => Some(v),
        Err(e) => {
            let inner_path = e.path().to_string();
            let line = e
                .inner()
                .span()
                .map(|s| locator.line_of_offset(s.start))
                .or_else(|| Some(locator.line_of_offset(value.span().start)));
            let full_key = if inner_path == "." || inner_path.is_empty() {
                key.to_string()
            } else {
                format!("{key}.{inner_path}")
            };
            problems.push(Problem {
                key: full_key,
                line,
                message: e.inner().message().trim().to_string(),
            });
            None
        }
    }
}
