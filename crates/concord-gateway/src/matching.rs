//! Which route takes a request.
//!
//! Every condition a route gives must hold. Among the routes that match, the
//! most specific wins: an exact path beats a regex, a regex beats a prefix, a
//! longer prefix beats a shorter one, any path beats none; then a route that
//! names a host beats one that does not; then the higher `priority`; then the
//! name, so the choice is always deterministic.
//!
//! - Host: exact and case-insensitive, ports ignored on both sides. Taken from
//!   `Host`, or from the URI authority (HTTP/2).
//! - Prefix: whole path segments: `/api` matches `/api`, `/api/` and `/api/x`,
//!   not `/apix`; a prefix ending in `/` matches whatever follows it.
//! - Regex: must match the whole path.
//! - Headers and query: the named header / parameter has exactly that value
//!   (any of its values, when repeated).

use std::cmp::Ordering;
use std::sync::Arc;

use concord_api::gateway::RouteMatch;
use http::header::HeaderName;
use http::{HeaderMap, Method, Request};
use regex::Regex;

use crate::error::RouteError;
use crate::route::Route;

/// How a route matches the path.
#[derive(Debug, Clone)]
pub enum PathMatch {
    /// No path condition.
    Any,
    /// Whole-segment prefix.
    Prefix(String),
    /// Anchored regular expression.
    Regex(Regex),
    /// The path exactly.
    Exact(String),
}

/// A route's compiled `match`.
#[derive(Debug, Clone)]
pub struct Matcher {
    path: PathMatch,
    host: Option<String>,
    methods: Vec<Method>,
    headers: Vec<(HeaderName, String)>,
    query: Vec<(String, String)>,
}

/// The parts of a request matching looks at.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// The method.
    pub method: &'a Method,
    /// The host without port, if the request names one.
    pub host: Option<&'a str>,
    /// The path as received (still percent-encoded).
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
    /// The request headers.
    pub headers: &'a HeaderMap,
}

impl<'a> RequestView<'a> {
    /// The view of a request.
    pub fn of<B>(req: &'a Request<B>) -> Self {
        let host = req
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()))
            .map(strip_port);
        RequestView {
            method: req.method(),
            host,
            path: req.uri().path(),
            query: req.uri().query(),
            headers: req.headers(),
        }
    }
}

/// `example.com:8080` -> `example.com`, `[::1]:80` -> `[::1]`.
pub fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

impl Matcher {
    /// Compiles a route's `match`.
    pub fn compile(m: &RouteMatch) -> Result<Self, RouteError> {
        let path = if let Some(p) = &m.path_exact {
            PathMatch::Exact(p.clone())
        } else if let Some(r) = &m.path_regex {
            let anchored = format!("^(?:{r})$");
            PathMatch::Regex(
                Regex::new(&anchored).map_err(|e| RouteError::invalid("match.path_regex", e))?,
            )
        } else if let Some(p) = &m.path_prefix {
            PathMatch::Prefix(p.clone())
        } else {
            PathMatch::Any
        };
        let methods = m
            .methods
            .iter()
            .map(|s| Method::from_bytes(s.as_bytes()))
            .collect::<Result<_, _>>()
            .map_err(|e| RouteError::invalid("match.methods", e))?;
        let headers = m
            .headers
            .iter()
            .map(|(k, v)| {
                HeaderName::from_bytes(k.as_bytes())
                    .map(|name| (name, v.clone()))
                    .map_err(|e| RouteError::invalid("match.headers", e))
            })
            .collect::<Result<_, _>>()?;
        Ok(Matcher {
            path,
            host: m.host.as_deref().map(|h| strip_port(h).to_owned()),
            methods,
            headers,
            query: m
                .query
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }

    /// The path condition.
    pub fn path(&self) -> &PathMatch {
        &self.path
    }

    /// Whether every condition holds for `req`.
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        self.path_matches(req.path)
            && self
                .host
                .as_deref()
                .is_none_or(|want| req.host.is_some_and(|have| have.eq_ignore_ascii_case(want)))
            && (self.methods.is_empty() || self.methods.contains(req.method))
            && self.headers.iter().all(|(name, want)| {
                req.headers
                    .get_all(name)
                    .iter()
                    .any(|v| v.as_bytes() == want.as_bytes())
            })
            && self.query.iter().all(|(key, want)| {
                req.query.is_some_and(|q| {
                    form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == *key && v == *want)
                })
            })
    }

    fn path_matches(&self, path: &str) -> bool {
        match &self.path {
            PathMatch::Any => true,
            PathMatch::Exact(p) => path == p,
            PathMatch::Regex(r) => r.is_match(path),
            PathMatch::Prefix(p) => prefix_matches(p, path),
        }
    }

    /// How specific the match is; greater is more specific.
    pub fn specificity(&self) -> Specificity {
        let (path_kind, prefix_len) = match &self.path {
            PathMatch::Any => (0, 0),
            PathMatch::Prefix(p) => (1, p.len()),
            PathMatch::Regex(_) => (2, 0),
            PathMatch::Exact(_) => (3, 0),
        };
        Specificity {
            path_kind,
            prefix_len,
            has_host: self.host.is_some(),
        }
    }
}

/// Whole-segment prefix match (see the module docs).
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
        None => false,
    }
}

/// The ordering key of a match: compared field by field, greater wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Specificity {
    /// 0 no path, 1 prefix, 2 regex, 3 exact.
    pub path_kind: u8,
    /// Length of the prefix, for prefix matches.
    pub prefix_len: usize,
    /// Whether the route names a host.
    pub has_host: bool,
}

/// Every route, in the order they are tried (most specific first).
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    /// Sorts `routes` into match order.
    pub fn new(mut routes: Vec<Arc<Route>>) -> Self {
        routes.sort_by(|a, b| match_order(a, b));
        RouteTable { routes }
    }

    /// The route that takes `req`, if any.
    pub fn find(&self, req: &RequestView<'_>) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| r.matcher.matches(req))
    }

    /// The routes in match order.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// The route called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| r.name == name)
    }
}

/// `Less` means `a` is tried first.
fn match_order(a: &Route, b: &Route) -> Ordering {
    b.matcher
        .specificity()
        .cmp(&a.matcher.specificity())
        .then(b.priority.cmp(&a.priority))
        .then_with(|| a.name.cmp(&b.name))
}

#[cfg(test)]
mod tests;
