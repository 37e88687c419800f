//! Identity toward the backend: `inject_template`, `[[app.inject]]` (which
//! value goes into which header or cookie, and how), the size cap on all of
//! it, and the identity JWT header.

use crate::locate::Step;
use crate::model::{
    InjectRule, InjectSource, InjectTarget, MultiValue, ValueEncoding, DEFAULT_MAX_IDENTITY_BYTES,
};
use crate::raw::{RawApp, RawInject};

use super::names::{reserved_header, valid_cookie_name, valid_header_name};
use super::Validator;

/// An app's identity settings, validated.
pub(super) struct Identity {
    pub inject: Vec<InjectRule>,
    pub max_identity_bytes: usize,
    pub identity_jwt_header: Option<String>,
}

fn app_key(i: usize, key: &'static str) -> [Step<'static>; 3] {
    [Step::Key("app"), Step::Index(i), Step::Key(key)]
}

fn at(i: usize, j: usize, key: &'static str) -> [Step<'static>; 5] {
    [
        Step::Key("app"),
        Step::Index(i),
        Step::Key("inject"),
        Step::Index(j),
        Step::Key(key),
    ]
}

impl Validator<'_, '_> {
    pub(super) fn identity(&mut self, i: usize, app: &RawApp) -> Identity {
        let inject = self.inject_rules(i, app);
        let max_identity_bytes = self.bounded(
            &app_key(i, "max_identity_bytes"),
            app.max_identity_bytes,
            256..=65536,
            DEFAULT_MAX_IDENTITY_BYTES,
        );
        let identity_jwt_header = match app.identity_jwt_header.as_deref() {
            Some(h) if !valid_header_name(h) => {
                self.problem(
                    &app_key(i, "identity_jwt_header"),
                    format!("`{h}` is not a header name"),
                );
                None
            }
            other => other.map(str::to_string),
        };
        Identity {
            inject,
            max_identity_bytes,
            identity_jwt_header,
        }
    }

    /// `inject_template` defaults, then `[[app.inject]]` in file order.
    fn inject_rules(&mut self, i: usize, app: &RawApp) -> Vec<InjectRule> {
        let mut rules = self.inject_template(i, app.inject_template.as_deref());
        for (j, raw) in app.inject.iter().enumerate() {
            let Some(rule) = self.inject_rule(i, j, raw) else {
                continue;
            };
            if rules
                .iter()
                .any(|r| r.target == rule.target && r.name.eq_ignore_ascii_case(&rule.name))
            {
                self.problem(
                    &at(i, j, "name"),
                    format!("`{}` is injected twice", rule.name),
                );
                continue;
            }
            rules.push(rule);
        }
        rules
    }

    fn inject_template(&mut self, i: usize, template: Option<&str>) -> Vec<InjectRule> {
        match template {
            None => Vec::new(),
            Some("header-app") => {
                let header = |source: InjectSource, name: &str| InjectRule {
                    source,
                    target: InjectTarget::Header,
                    name: name.to_string(),
                    multi: MultiValue::Join(",".into()),
                    encoding: ValueEncoding::Raw,
                    send: true,
                };
                vec![
                    header(InjectSource::NameId, "X-Remote-User"),
                    header(InjectSource::Attribute("email".into()), "X-Remote-Email"),
                    header(InjectSource::Attribute("groups".into()), "X-Remote-Groups"),
                ]
            }
            Some(other) => {
                self.problem(
                    &app_key(i, "inject_template"),
                    format!("`{other}` is not a template (expected \"header-app\")"),
                );
                Vec::new()
            }
        }
    }

    /// One `[[app.inject]]`; every key is checked even when an earlier one
    /// is wrong.
    fn inject_rule(&mut self, i: usize, j: usize, raw: &RawInject) -> Option<InjectRule> {
        let source = self.inject_source(i, j, raw.source.as_deref());
        let target = match raw.target.as_deref() {
            None | Some("header") => InjectTarget::Header,
            Some("cookie") => InjectTarget::Cookie,
            Some(other) => {
                self.problem(
                    &at(i, j, "target"),
                    format!("`{other}` is not header or cookie"),
                );
                InjectTarget::Header
            }
        };
        let name = self.inject_name(i, j, target, raw.name.as_deref());
        let multi = self.multi_value(i, j, raw.multi.as_deref(), raw.separator.as_deref());
        let encoding = match raw.encoding.as_deref() {
            None | Some("raw") => ValueEncoding::Raw,
            Some("url") => ValueEncoding::Url,
            Some("base64") => ValueEncoding::Base64,
            Some(other) => {
                self.problem(
                    &at(i, j, "encoding"),
                    format!("`{other}` is not raw, url or base64"),
                );
                ValueEncoding::Raw
            }
        };
        Some(InjectRule {
            source: source?,
            target,
            name: name?,
            multi,
            encoding,
            send: raw.send.unwrap_or(true),
        })
    }

    fn inject_source(&mut self, i: usize, j: usize, raw: Option<&str>) -> Option<InjectSource> {
        let path = at(i, j, "source");
        let Some(raw) = raw else {
            self.problem(&path, "source is required");
            return None;
        };
        let fixed = match raw {
            "nameid" => Some(InjectSource::NameId),
            "session:auth_time" => Some(InjectSource::AuthTime),
            "session:amr" => Some(InjectSource::Amr),
            "session:idp_session" => Some(InjectSource::IdpSession),
            _ => None,
        };
        if fixed.is_some() {
            return fixed;
        }
        let after = |prefix: &str| raw.strip_prefix(prefix).filter(|rest| !rest.is_empty());
        if let Some(name) = after("attribute:") {
            return Some(InjectSource::Attribute(name.to_string()));
        }
        // An empty static value is allowed: it sends an empty header.
        if let Some(value) = raw.strip_prefix("static:") {
            return Some(InjectSource::Static(value.to_string()));
        }
        if let Some(var) = after("env:") {
            if std::env::var_os(var).is_none() {
                self.problem(&path, format!("environment variable {var} is not set"));
            }
            return Some(InjectSource::Env(var.to_string()));
        }
        if let Some(file) = after("file:") {
            let file = self.base.join(file);
            if let Err(e) = std::fs::metadata(&file) {
                self.problem(&path, format!("cannot read {}: {e}", file.display()));
            }
            return Some(InjectSource::File(file));
        }
        self.problem(
            &path,
            format!(
                "`{raw}` is not a source: nameid, attribute:<name>, session:auth_time, \
                 session:amr, session:idp_session, static:<value>, env:<VAR>, file:<path>"
            ),
        );
        None
    }

    /// A header name the gateway may set, or a cookie name apps may not
    /// confuse with the gateway's own (`pc_…`).
    fn inject_name(
        &mut self,
        i: usize,
        j: usize,
        target: InjectTarget,
        raw: Option<&str>,
    ) -> Option<String> {
        let path = at(i, j, "name");
        let Some(name) = raw else {
            self.problem(&path, "name is required");
            return None;
        };
        let refused = match target {
            InjectTarget::Header if !valid_header_name(name) => {
                Some(format!("`{name}` is not a header name"))
            }
            InjectTarget::Header if reserved_header(name) => Some(format!(
                "`{name}` is managed by the gateway or by HTTP itself"
            )),
            InjectTarget::Cookie if !valid_cookie_name(name) => {
                Some(format!("`{name}` is not a cookie name"))
            }
            _ => None,
        };
        match refused {
            Some(message) => {
                self.problem(&path, message);
                None
            }
            None => Some(name.to_string()),
        }
    }

    fn multi_value(
        &mut self,
        i: usize,
        j: usize,
        multi: Option<&str>,
        separator: Option<&str>,
    ) -> MultiValue {
        match (multi, separator) {
            (None | Some("join"), separator) => {
                MultiValue::Join(separator.unwrap_or(",").to_string())
            }
            (Some("first"), None) => MultiValue::First,
            (Some("last"), None) => MultiValue::Last,
            (Some("first" | "last"), Some(_)) => {
                self.problem(&at(i, j, "separator"), "separator needs multi = \"join\"");
                MultiValue::First
            }
            (Some(other), _) => {
                self.problem(
                    &at(i, j, "multi"),
                    format!("`{other}` is not join, first or last"),
                );
                MultiValue::First
            }
        }
    }
}
