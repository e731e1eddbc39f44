//! The API families: each a module owning its routes, its envelope and its error rendering,
//! over the HTTP core. [`router`] gathers every family's routes into the one table the
//! server matches (and tests iterate). A new family is a module here and one line below.

pub(crate) mod apijobs;
pub(crate) mod import_results;
pub(crate) mod webservicetasks;

use crate::http::Router;

/// Every family's routes; a path no route knows is answered in Web Service Tasks' envelope.
pub(crate) fn router() -> Router {
    let mut routes = webservicetasks::routes();
    routes.extend(apijobs::routes());
    routes.extend(import_results::routes());
    Router::new(routes, &webservicetasks::FAMILY)
}

/// Every route as `METHOD path (family)`, one per line, in the table's order: what
/// `taskbox routes` prints, so that an operator (and the test that checks every route's
/// authentication) sees the whole surface, routes added later included.
pub fn route_lines() -> Vec<String> {
    router()
        .routes()
        .iter()
        .map(|r| format!("{} {} ({})", r.method.as_str(), r.path, r.family.name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{ApiError, Method, PathArgs};

    fn find(method: &str, path: &str) -> Result<(String, PathArgs), ApiError> {
        router()
            .find(&Method::parse(method), path)
            .map(|(route, args)| (format!("{} {}", route.method.as_str(), route.path), args))
            .map_err(|(e, _)| e)
    }

    fn id(n: i64) -> PathArgs {
        PathArgs {
            id: Some(n),
            ..PathArgs::default()
        }
    }

    #[test]
    fn every_route_is_found_by_its_own_path_and_method() {
        let router = router();
        for route in router.routes() {
            let path = route.path.replace("{id}", "42");
            let (found, args) = router
                .find(&route.method, &path)
                .unwrap_or_else(|(e, _)| panic!("{} {path}: {}", route.method.as_str(), e.message));
            assert!(std::ptr::eq(found, route), "{path} found another route");
            assert_eq!(args.id.is_some(), route.path.contains("{id}"), "{path}");
            // And its errors wear its family's envelope.
            let reply = (route.family.render_error)(&ApiError::not_found("x"));
            assert_eq!(reply.status, 404);
        }
    }

    #[test]
    fn paths_match_case_insensitively_with_prefix_and_slash() {
        for path in [
            "/webservicetasks/7/IoFile",
            "/WebServiceTasks/7/iofile",
            "/ivrapi/webservicetasks/7/IOFILE/",
            "/IvrApi/WEBSERVICETASKS/7/IoFile",
        ] {
            let (route, args) = find("GET", path).unwrap();
            assert_eq!(
                (route.as_str(), args),
                ("GET /webservicetasks/{id}/iofile", id(7)),
                "{path}"
            );
        }
        let route = |method, path| find(method, path).unwrap().0;
        assert_eq!(route("GET", "/webservicetasks/"), "GET /webservicetasks");
        assert_eq!(route("HEAD", "/webservicetasks"), "GET /webservicetasks");
        assert_eq!(
            route("POST", "/ivrapi/webservicetasks"),
            "POST /webservicetasks"
        );
        assert_eq!(
            find("DELETE", "/webservicetasks/12").unwrap(),
            ("DELETE /webservicetasks/{id}".to_string(), id(12))
        );
        assert_eq!(
            route("GET", "/webservicetasks/12/ErrorFile"),
            "GET /webservicetasks/{id}/errorfile"
        );
        assert_eq!(
            route("GET", "/webservicetasks/12/LogFile"),
            "GET /webservicetasks/{id}/logfile"
        );
    }

    #[test]
    fn wrong_methods_name_the_allowed_ones() {
        let e = find("PUT", "/webservicetasks/1").unwrap_err();
        assert_eq!((e.status, e.allow.as_deref()), (405, Some("GET, DELETE")));
        assert_eq!(
            find("DELETE", "/webservicetasks")
                .unwrap_err()
                .allow
                .as_deref(),
            Some("GET, POST")
        );
        let e = find("POST", "/webservicetasks/1/logfile").unwrap_err();
        assert_eq!((e.status, e.allow.as_deref()), (405, Some("GET")));
    }

    #[test]
    fn bad_ids_and_unknown_paths() {
        for bad in ["abc", "-1", "0", "99999999999999999999", "+5", "1e3"] {
            let path = format!("/webservicetasks/{bad}");
            assert_eq!(find("GET", &path).unwrap_err().status, 400, "{bad}");
        }
        assert_eq!(find("GET", "/nothing").unwrap_err().status, 404);
        assert_eq!(
            find("GET", "/webservicetasks/1/other").unwrap_err().status,
            404
        );
        assert_eq!(
            find("GET", "/webservicetasks/abc/other")
                .unwrap_err()
                .status,
            404
        );
        assert_eq!(find("GET", "/webservicetasks/%FF").unwrap_err().status, 400);
        assert_eq!(find("GET", "/ivrapi").unwrap_err().status, 404);
    }
}
