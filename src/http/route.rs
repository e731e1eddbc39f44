//! Routing: every route of every API family is declared in one table of [`Route`]s, which
//! the server matches and tests iterate (so a check that every route passes through
//! authentication, say, is one loop, and a route added later cannot be forgotten by it).
//!
//! Paths match case-insensitively, with or without a trailing slash, and with or without
//! one of the family's optional prefixes (`/ivrapi` for Web Service Tasks). A segment
//! written `{id}` matches a task id, a positive 64-bit integer; a path that matches a
//! route's shape but not its id is a 400, one that matches no shape a 404, and a method no
//! route of that shape has a 405 naming the ones it has. Any other placeholder (`{type}`,
//! `{vdnid}`) matches any one segment, given to the route as it was sent (decoded, in its
//! own case) for the route to check. Where shapes of several routes match, those with the
//! fewest placeholders win: `/webservicetasks/bulk` is its own route, not task "bulk".

use super::context::RequestContext;
use super::error::ApiError;
use super::reply::Reply;
use super::request::{Method, Request};
use crate::task::TaskId;

/// What answers a route: the request's context (who asks, the store as they may see it),
/// the request, and the values of the path's placeholders.
pub type Handle = fn(&RequestContext, &mut Request<'_>, &PathArgs) -> Result<Reply, ApiError>;

/// An API family: its name, the path prefixes its clients may put before its paths, and
/// how it renders an error (its envelope).
pub struct Family {
    pub name: &'static str,
    /// Optional first path segments (lower case), as in `/ivrapi/webservicetasks`.
    pub prefixes: &'static [&'static str],
    pub render_error: fn(&ApiError) -> Reply,
}

impl Family {
    /// A route of this family.
    pub fn route(
        &'static self,
        method: Method,
        path: &'static str,
        handle: Handle,
        reads_body: bool,
    ) -> Route {
        Route {
            family: self,
            method,
            path,
            handle,
            reads_body,
        }
    }
}

/// One route: a method and a path pattern, the family that owns it and what answers it.
pub struct Route {
    pub family: &'static Family,
    /// GET routes answer HEAD as well.
    pub method: Method,
    /// Lower-case literal segments and `{id}` placeholders: `/webservicetasks/{id}/iofile`.
    pub path: &'static str,
    pub handle: Handle,
    /// Whether a successful answer has read the request's body to its end (an accepted
    /// submission), which `answer` checks; any other answer may leave a declared body
    /// unread (tiny_http then drains it within `--max-drain-bytes`, or closes the connection).
    pub reads_body: bool,
}

/// The values of a matched path's placeholders.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PathArgs {
    /// `{id}`, when the path has one.
    pub id: Option<TaskId>,
    /// Every other placeholder's name (as the route's path writes it, without braces) and
    /// the segment it matched, decoded, in the case it was sent.
    pub texts: Vec<(&'static str, String)>,
}

impl PathArgs {
    /// The segment that placeholder `{name}` matched.
    pub fn text(&self, name: &str) -> Result<&str, ApiError> {
        self.texts
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| ApiError::internal(format!("a route without {{{name}}} asked for it")))
    }

    /// The `{id}` placeholder's value (a route with `{id}` in its path always has one).
    pub fn id(&self) -> Result<TaskId, ApiError> {
        self.id
            .ok_or_else(|| ApiError::internal("a route without {id} asked for its id"))
    }
}

/// Every route, and the family that answers for paths no route knows.
pub struct Router {
    routes: Vec<Route>,
    fallback: &'static Family,
}

impl Router {
    /// A router over `routes`; errors on paths matching none are rendered by `fallback`.
    pub fn new(routes: Vec<Route>, fallback: &'static Family) -> Router {
        Router { routes, fallback }
    }

    /// Every route, in the table's order (`taskbox routes` prints it; tests check each).
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The family answering for what no route matches (and for failures before routing).
    pub fn fallback(&self) -> &'static Family {
        self.fallback
    }

    /// The route for `method` on `path` (the URL without its query), with the values of
    /// its placeholders. An error comes with the family to render it.
    pub fn find(
        &self,
        method: &Method,
        path: &str,
    ) -> Result<(&Route, PathArgs), (ApiError, &'static Family)> {
        let decoded = percent_encoding::percent_decode_str(path)
            .decode_utf8()
            .map_err(|_| {
                (
                    ApiError::bad_request("The path is not valid UTF-8 once decoded."),
                    self.fallback,
                )
            })?;
        let sent: Vec<&str> = decoded.split('/').filter(|s| !s.is_empty()).collect();
        let lower = decoded.to_ascii_lowercase();
        let segments: Vec<&str> = lower.split('/').filter(|s| !s.is_empty()).collect();
        let mut shaped: Vec<(&Route, Vec<(&'static str, usize)>)> = self
            .routes
            .iter()
            .filter_map(|route| route.shape_matches(&segments).map(|found| (route, found)))
            .collect();
        // A path that a literal route names is that route's, never a placeholder's value:
        // `/webservicetasks/bulk` is not task "bulk".
        let fewest = shaped.iter().map(|(_, found)| found.len()).min();
        shaped.retain(|(_, found)| Some(found.len()) == fewest);
        let Some((first, placeholders)) = shaped.first() else {
            return Err((not_found(path), self.fallback));
        };
        let family = first.family;
        let mut args = PathArgs::default();
        for &(name, at) in placeholders {
            if name == "id" {
                args.id = Some(task_id(sent[at]).map_err(|e| (e, family))?);
            } else {
                args.texts.push((name, sent[at].to_string()));
            }
        }
        match shaped
            .iter()
            .find(|(route, _)| method.is_served_by(&route.method))
        {
            Some((route, _)) => Ok((route, args)),
            None => {
                let mut allow: Vec<&str> = Vec::new();
                for (route, _) in &shaped {
                    if !allow.contains(&route.method.as_str()) {
                        allow.push(route.method.as_str());
                    }
                }
                Err((
                    ApiError::method_not_allowed(method.as_str(), &allow.join(", ")),
                    family,
                ))
            }
        }
    }
}

impl Route {
    /// If `segments` (lower case) has this route's shape (with or without one of its
    /// family's prefixes): each placeholder's name and the index of the segment it matched.
    fn shape_matches(&self, segments: &[&str]) -> Option<Vec<(&'static str, usize)>> {
        let skip = match segments.first() {
            Some(first) if self.family.prefixes.contains(first) => 1,
            _ => 0,
        };
        let unprefixed = &segments[skip..];
        let pattern: Vec<&'static str> = self.path.split('/').filter(|s| !s.is_empty()).collect();
        if pattern.len() != unprefixed.len() {
            return None;
        }
        let mut found = Vec::new();
        for (i, (want, got)) in pattern.iter().zip(unprefixed).enumerate() {
            if let Some(name) = want.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
                found.push((name, skip + i));
            } else if want != got {
                return None;
            }
        }
        Some(found)
    }
}

fn not_found(path: &str) -> ApiError {
    let shown: String = path.chars().take(200).collect();
    ApiError::not_found(format!("There is no resource at {shown}."))
}

fn task_id(text: &str) -> Result<TaskId, ApiError> {
    match text.parse::<TaskId>() {
        Ok(id) if id > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(id),
        _ => {
            let shown: String = text.chars().take(40).collect();
            Err(ApiError::bad_request(format!(
                "The task id must be a positive 64-bit integer, not {shown:?}."
            )))
        }
    }
}
