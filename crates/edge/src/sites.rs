//! Virtual hosts and locations (C25, C44), nginx's way: a request's Host
//! picks a site (a site without names is the default one), then its path
//! picks a location: an exact match first, else the longest prefix. A
//! location serves files from a root (the whole URL path under it, as
//! nginx's `root`) or proxies to a pool of application servers.

use std::sync::Arc;

use crate::files::Files;
use crate::pool::Pool;

/// What a location does.
#[derive(Clone)]
pub enum Action {
    Files(Arc<Files>),
    Proxy(Arc<Pool>),
}

/// A path rule.
#[derive(Clone)]
pub struct Location {
    /// `= /path` in nginx: this path only.
    pub exact: bool,
    pub path: String,
    pub action: Action,
}

impl Location {
    /// The rule as nginx would write it.
    pub fn rule(&self) -> String {
        if self.exact {
            format!("location = {}", self.path)
        } else {
            format!("location {}", self.path)
        }
    }
}

/// A virtual host.
#[derive(Clone)]
pub struct Site {
    /// Host names it answers; empty for the default site.
    pub names: Vec<String>,
    pub locations: Vec<Location>,
}

impl Site {
    /// The location for `path`: exact first, then the longest prefix.
    pub fn location(&self, path: &str) -> Option<&Location> {
        self.locations
            .iter()
            .find(|l| l.exact && l.path == path)
            .or_else(|| {
                self.locations
                    .iter()
                    .filter(|l| !l.exact && path.starts_with(&l.path))
                    .max_by_key(|l| l.path.len())
            })
    }

    /// `myapp.test` or `default`, for traces.
    pub fn label(&self) -> String {
        match self.names.first() {
            Some(n) => n.clone(),
            None => "default".into(),
        }
    }
}

/// The sites of one server, in configuration order.
#[derive(Clone)]
pub struct Sites(pub Vec<Site>);

impl Sites {
    /// The site for a request's host (port and case ignored): the first
    /// naming it, else the first default one, else the first.
    pub fn for_host(&self, host: Option<&str>) -> Option<&Site> {
        let name = host.map(|h| {
            let h = h.trim_end_matches('.');
            match h.rsplit_once(':') {
                Some((n, p)) if !n.ends_with(':') && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => h,
            }
        });
        self.0
            .iter()
            .find(|s| name.is_some_and(|n| s.names.iter().any(|x| x.eq_ignore_ascii_case(n))))
            .or_else(|| self.0.iter().find(|s| s.names.is_empty()))
            .or_else(|| self.0.first())
    }

    /// Every pool a location proxies to (for the status page).
    pub fn pools(&self) -> Vec<(String, Arc<Pool>)> {
        let mut out: Vec<(String, Arc<Pool>)> = Vec::new();
        for s in &self.0 {
            for l in &s.locations {
                if let Action::Proxy(p) = &l.action
                    && !out.iter().any(|(_, q)| Arc::ptr_eq(p, q))
                {
                    out.push((format!("{} {}", s.label(), l.rule()), p.clone()));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Arc<Files> {
        Arc::new(Files::new(&std::env::temp_dir()).unwrap())
    }

    fn loc(exact: bool, path: &str) -> Location {
        Location {
            exact,
            path: path.into(),
            action: Action::Files(files()),
        }
    }

    #[test]
    fn exact_beats_prefix_and_the_longest_prefix_wins() {
        let site = Site {
            names: vec![],
            locations: vec![
                loc(false, "/"),
                loc(false, "/static/"),
                loc(true, "/static/x"),
            ],
        };
        assert_eq!(site.location("/static/app.css").unwrap().path, "/static/");
        assert!(site.location("/static/x").unwrap().exact);
        assert_eq!(site.location("/login").unwrap().path, "/");
        let none = Site {
            names: vec![],
            locations: vec![loc(false, "/static/")],
        };
        assert!(none.location("/login").is_none());
    }

    #[test]
    fn the_host_picks_the_site_and_unknown_hosts_get_the_default() {
        let sites = Sites(vec![
            Site {
                names: vec!["docs.myapp.test".into()],
                locations: vec![],
            },
            Site {
                names: vec![],
                locations: vec![loc(false, "/")],
            },
        ]);
        assert_eq!(
            sites.for_host(Some("DOCS.myapp.test:80")).unwrap().label(),
            "docs.myapp.test"
        );
        assert_eq!(
            sites.for_host(Some("docs.myapp.test.")).unwrap().label(),
            "docs.myapp.test"
        );
        assert_eq!(
            sites.for_host(Some("myapp.test")).unwrap().label(),
            "default"
        );
        assert_eq!(sites.for_host(None).unwrap().label(), "default");
    }
}
