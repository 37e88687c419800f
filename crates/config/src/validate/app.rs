//! `[[app]]`: each application's name and public URL, its upstream targets
//! (with balancing and health), and its behaviors (host header, body
//! rewriting, error pages, where sign-in and sign-out lead). Its SAML side
//! is in `app_auth`, `inject` and `access`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::locate::Step;
use crate::model::{App, ErrorPage, Health, LoadBalancing, PublicUrl, Upstream, UpstreamTarget};
use crate::raw::{RawApp, RawHealth, RawUpstream};

use super::names::valid_name;
use super::url::{parse_public_url, parse_upstream};
use super::Validator;

/// Statuses of gateway-made errors an app may replace.
const ERROR_PAGE_STATUSES: [u16; 7] = [403, 404, 429, 431, 502, 503, 504];

fn whole(i: usize) -> [Step<'static>; 2] {
    [Step::Key("app"), Step::Index(i)]
}

fn at(i: usize, key: &'static str) -> [Step<'static>; 3] {
    [Step::Key("app"), Step::Index(i), Step::Key(key)]
}

/// What two apps must not share, with the index of the app that took each.
#[derive(Default)]
struct Taken {
    names: HashMap<String, usize>,
    /// Host, port and path prefix.
    routes: HashMap<(String, u16, String), usize>,
    /// Session and request-state cookie names.
    cookies: HashMap<String, usize>,
}

impl Validator<'_, '_> {
    /// The apps that passed, each with its index in the file.
    pub(super) fn apps(&mut self, raw: Vec<Option<RawApp>>) -> Vec<(usize, App)> {
        let mut taken = Taken::default();
        let mut apps = Vec::new();
        for (i, app) in raw.into_iter().enumerate() {
            // An app that did not deserialise was reported at its key.
            let Some(app) = app else { continue };
            if let Some(app) = self.app(i, app, &mut taken) {
                apps.push((i, app));
            }
        }
        apps
    }

    fn app(&mut self, i: usize, mut raw: RawApp, taken: &mut Taken) -> Option<App> {
        let access = std::mem::take(&mut raw.access);
        let name = self.app_name(i, raw.name.take(), &mut taken.names);
        let public = self.app_public_url(i, raw.public_url.as_deref(), &mut taken.routes);
        let (first, more) = self.upstream_urls(i, raw.upstream.as_ref());
        let upstream = self.first_upstream(i, first, &raw);
        let auth = self.app_auth(
            i,
            name.as_deref(),
            public.as_ref(),
            &raw,
            access,
            &mut taken.cookies,
        );
        // A refused `auth` does not stop the checks below; the app is
        // dropped at the end.
        let auth_refused = raw.auth.is_some() && auth.is_none();
        let more_targets = self.more_targets(i, &more, upstream.as_ref());
        let load_balancing = self.load_balancing(i, raw.load_balancing.as_deref());
        let health = self.health(i, raw.health.as_ref(), upstream.as_ref());
        let rewrite_body = raw.rewrite_body.unwrap_or(false);
        if rewrite_body && !matches!(upstream, Some(Upstream::Http(_))) {
            self.problem(
                &at(i, "rewrite_body"),
                "rewrite_body needs an http(s) upstream",
            );
        }
        let upstream_host_header = self.host_header(i, raw.host_header.as_deref());
        let error_pages = self.error_pages(i, raw.error_pages.as_ref());
        if auth_refused {
            return None;
        }
        Some(App {
            name: name?,
            public: public?,
            upstream: upstream?,
            auth,
            upstream_host_header,
            error_pages,
            more_targets,
            load_balancing,
            health,
            rewrite_body,
        })
    }

    fn app_name(
        &mut self,
        i: usize,
        raw: Option<String>,
        taken: &mut HashMap<String, usize>,
    ) -> Option<String> {
        let name = match raw {
            Some(n) if valid_name(&n) => n,
            Some(n) => {
                self.problem(
                    &at(i, "name"),
                    format!("`{n}` is not a valid app name (letters, digits, - and _, at most 64)"),
                );
                return None;
            }
            None => {
                self.problem(&whole(i), "name is required");
                return None;
            }
        };
        if let Some(first) = taken.insert(name.clone(), i) {
            self.problem(
                &at(i, "name"),
                format!("app name `{name}` is already used by app[{first}]"),
            );
        }
        Some(name)
    }

    /// The app's origin and prefix: the route no other app may take.
    fn app_public_url(
        &mut self,
        i: usize,
        raw: Option<&str>,
        taken: &mut HashMap<(String, u16, String), usize>,
    ) -> Option<PublicUrl> {
        let public = match raw.map(parse_public_url) {
            Some(Ok(p)) => p,
            Some(Err(e)) => {
                self.problem(&at(i, "public_url"), e);
                return None;
            }
            None => {
                self.problem(&whole(i), "public_url is required");
                return None;
            }
        };
        let route = (public.host.clone(), public.port, public.path_prefix.clone());
        if let Some(first) = taken.insert(route, i) {
            self.problem(
                &at(i, "public_url"),
                format!("overlaps app[{first}]: the same host, port and path prefix"),
            );
        }
        Some(public)
    }

    /// `upstream = "…"` or `["…", …]`: the first target and the others.
    fn upstream_urls<'r>(
        &mut self,
        i: usize,
        raw: Option<&'r RawUpstream>,
    ) -> (Option<&'r str>, Vec<&'r str>) {
        match raw {
            None => (None, Vec::new()),
            Some(RawUpstream::One(one)) => (Some(one.as_str()), Vec::new()),
            Some(RawUpstream::Many(many)) => match many.split_first() {
                Some((first, rest)) => (
                    Some(first.as_str()),
                    rest.iter().map(String::as_str).collect(),
                ),
                None => {
                    self.problem(&at(i, "upstream"), "needs at least one URL");
                    (None, Vec::new())
                }
            },
        }
    }

    /// The first target, with the app's private CA and SNI name.
    fn first_upstream(&mut self, i: usize, url: Option<&str>, app: &RawApp) -> Option<Upstream> {
        let Some(url) = url else {
            self.problem(&whole(i), "upstream is required");
            return None;
        };
        match parse_upstream(url) {
            Ok(Upstream::Http(mut target)) => {
                target.ca = app
                    .upstream_ca
                    .as_deref()
                    .map(|ca| self.file(&at(i, "upstream_ca"), ca));
                target.sni = app.upstream_sni.clone();
                if (target.ca.is_some() || target.sni.is_some()) && !target.tls {
                    self.problem(
                        &at(i, "upstream"),
                        "upstream_ca and upstream_sni need an https upstream",
                    );
                }
                Some(Upstream::Http(target))
            }
            Ok(builtin) => Some(builtin),
            Err(e) => {
                self.problem(&at(i, "upstream"), e);
                None
            }
        }
    }

    /// Targets after the first: http(s) like it, with its base path, CA
    /// and SNI name (a balancer sends any request to any of them).
    fn more_targets(
        &mut self,
        i: usize,
        urls: &[&str],
        first: Option<&Upstream>,
    ) -> Vec<UpstreamTarget> {
        let mut targets = Vec::new();
        for url in urls {
            match (parse_upstream(url), first) {
                (Ok(Upstream::Http(mut target)), Some(Upstream::Http(first))) => {
                    if target.base_path != first.base_path {
                        self.problem(
                            &at(i, "upstream"),
                            format!("`{url}`: every target needs the same base path as the first"),
                        );
                        continue;
                    }
                    target.ca.clone_from(&first.ca);
                    target.sni.clone_from(&first.sni);
                    targets.push(target);
                }
                (Ok(_), _) => self.problem(
                    &at(i, "upstream"),
                    "several targets must all be http(s) URLs",
                ),
                (Err(e), _) => self.problem(&at(i, "upstream"), format!("`{url}`: {e}")),
            }
        }
        targets
    }

    fn load_balancing(&mut self, i: usize, raw: Option<&str>) -> LoadBalancing {
        match raw {
            None | Some("round_robin") => LoadBalancing::RoundRobin,
            Some("least_connections") => LoadBalancing::LeastConnections,
            Some(other) => {
                self.problem(
                    &at(i, "load_balancing"),
                    format!("`{other}` is not round_robin or least_connections"),
                );
                LoadBalancing::RoundRobin
            }
        }
    }

    /// `[app.health]`: passive ejection and the optional active check.
    fn health(&mut self, i: usize, raw: Option<&RawHealth>, upstream: Option<&Upstream>) -> Health {
        let health_at = |key: &'static str| {
            [
                Step::Key("app"),
                Step::Index(i),
                Step::Key("health"),
                Step::Key(key),
            ]
        };
        let fail_after = self.bounded(
            &health_at("fail_after"),
            raw.and_then(|h| h.fail_after),
            1..=1000,
            3,
        );
        let cooldown = self.duration(
            &health_at("cooldown"),
            raw.and_then(|h| h.cooldown.as_deref()),
            Duration::from_secs(10),
            "10s",
        );
        let check_interval = self.duration(
            &health_at("check_interval"),
            raw.and_then(|h| h.check_interval.as_deref()),
            Duration::from_secs(5),
            "5s",
        );
        let check_path = match raw.and_then(|h| h.check_path.as_deref()) {
            Some(p) if !p.starts_with('/') => {
                self.problem(&health_at("check_path"), "must start with /");
                None
            }
            other => other.map(str::to_string),
        };
        if (check_path.is_some() || raw.is_some()) && !matches!(upstream, Some(Upstream::Http(_))) {
            self.problem(&at(i, "health"), "health needs http(s) upstream targets");
        }
        Health {
            fail_after,
            cooldown,
            check_path,
            check_interval,
        }
    }

    /// `host_header = "upstream"`: whether the upstream's host replaces the public one.
    fn host_header(&mut self, i: usize, raw: Option<&str>) -> bool {
        match raw {
            None | Some("public") => false,
            Some("upstream") => true,
            Some(other) => {
                self.problem(
                    &at(i, "host_header"),
                    format!("`{other}` is not public or upstream"),
                );
                false
            }
        }
    }

    /// `[app.error_pages]`: a file served with the status, or a URL the
    /// browser is sent to.
    fn error_pages(
        &mut self,
        i: usize,
        raw: Option<&BTreeMap<String, String>>,
    ) -> Vec<(u16, ErrorPage)> {
        let mut pages = Vec::new();
        for (code, target) in raw.into_iter().flatten() {
            let path = [
                Step::Key("app"),
                Step::Index(i),
                Step::Key("error_pages"),
                Step::Key(code.as_str()),
            ];
            let Some(status) = code
                .parse::<u16>()
                .ok()
                .filter(|c| ERROR_PAGE_STATUSES.contains(c))
            else {
                let known = ERROR_PAGE_STATUSES.map(|c| c.to_string()).join(", ");
                self.problem(&path, format!("`{code}` is not one of {known}"));
                continue;
            };
            let page = if target.starts_with("https://") || target.starts_with("http://") {
                ErrorPage::Redirect(target.clone())
            } else {
                ErrorPage::File(self.file(&path, target))
            };
            pages.push((status, page));
        }
        pages
    }

    /// `backend_logout_url`: called when a gateway session of the app ends.
    pub(super) fn backend_logout_url(&mut self, i: usize, raw: Option<&str>) -> Option<String> {
        let url = raw?;
        self.http_url(&at(i, "backend_logout_url"), url)
            .then(|| url.to_string())
    }

    /// `login_landing` (an app path) and `post_logout_url` (an app path or
    /// an absolute URL).
    pub(super) fn sign_in_and_out_urls(
        &mut self,
        i: usize,
        app: &RawApp,
    ) -> (Option<String>, Option<String>) {
        let app_path = |p: &str| p.starts_with('/') && !p.starts_with("//");
        let login_landing = match app.login_landing.as_deref() {
            Some(p) if !app_path(p) => {
                self.problem(
                    &at(i, "login_landing"),
                    "must be a path on the app, starting with /",
                );
                None
            }
            other => other.map(str::to_string),
        };
        let post_logout_url = match app.post_logout_url.as_deref() {
            Some(u) if !(u.starts_with("https://") || u.starts_with("http://") || app_path(u)) => {
                self.problem(
                    &at(i, "post_logout_url"),
                    "must be an http(s) URL or a path starting with /",
                );
                None
            }
            other => other.map(str::to_string),
        };
        (login_landing, post_logout_url)
    }
}

#[cfg(test)]
mod tests {
    use crate::validate::fixtures::{app, problems, SERVER};

    fn keys(problems: &[crate::Problem]) -> Vec<&str> {
        problems.iter().map(|p| p.key.as_str()).collect()
    }

    #[test]
    fn a_refused_auth_does_not_hide_the_apps_other_problems() {
        let text = format!(
            "{SERVER}{}{}",
            app(
                "a",
                "https://a.test/",
                "auth = \"saml\"\nidp = \"embedded\"\nload_balancing = \"random\"\nhost_header = \"x\"\n[app.health]\nfail_after = 0\n[app.error_pages]\n500 = \"x\"\n"
            ),
            app("b", "https://b.test/", "rewrite_body = true\n"),
        );
        let problems = problems(&text);
        for key in [
            "app[0].auth",
            "app[0].load_balancing",
            "app[0].health.fail_after",
            "app[0].health",
            "app[0].host_header",
            "app[0].error_pages.500",
            "app[1].rewrite_body",
        ] {
            assert!(
                keys(&problems).contains(&key),
                "{key} missing from {problems:?}"
            );
        }
        assert!(problems.iter().all(|p| p.line.is_some()), "{problems:?}");
    }
}
