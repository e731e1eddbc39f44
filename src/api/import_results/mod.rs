//! Import results (contract: docs/api.md, "Import results"): a contact-centre client asks
//! for the results of the csv.import tasks of one campaign (those submitted with the param
//! `campaign`), a page at a time. The family owns its routes (the table below), its answer
//! and its result codes (`envelope.rs`), the order and codes of its checks (`params.rs`)
//! and how it shows an import, its status words and times (`view.rs`). It reads through
//! the request's scoped store, narrowed to the client the path names.

mod envelope;
mod params;
mod view;

use crate::http::fields::read_limited;
use crate::http::{ApiError, Family, Method, PathArgs, Reply, Request, RequestContext, Route};
use crate::store::{CampaignImport, CampaignQuery};
use crate::task::Role;
use envelope::QueryError;

/// The family: no path prefix; its answers, errors included, wear its own shape.
pub static FAMILY: Family = Family {
    name: "Import results",
    prefixes: &[],
    render_error: envelope::error,
};

/// Its routes: the query, and the same path with `{vdnId}` or `{campaignId}` left empty
/// (`campaigns//calldatafile`, `queryDataImportTask/`). The router drops empty segments,
/// so those paths have shapes of their own; here they are answered as the contract
/// answers an empty parameter (02000001, naming it) rather than 404.
pub fn routes() -> Vec<Route> {
    let route = |path| FAMILY.route(Method::Post, path, query, true);
    vec![
        route("/rest/isales/v1/openapi/campaigns/{vdnid}/calldatafile/querydataimporttask/{campaignid}"),
        route("/rest/isales/v1/openapi/campaigns/{vdnid}/calldatafile/querydataimporttask"),
        route("/rest/isales/v1/openapi/campaigns/calldatafile/querydataimporttask/{campaignid}"),
        route("/rest/isales/v1/openapi/campaigns/calldatafile/querydataimporttask"),
    ]
}

/// POST /rest/isales/v1/openapi/campaigns/{vdnId}/calldatafile/queryDataImportTask/{campaignId}
fn query(
    ctx: &RequestContext,
    request: &mut Request<'_>,
    args: &PathArgs,
) -> Result<Reply, ApiError> {
    match results(ctx, request, args) {
        Ok((imports, count)) => {
            let views: Vec<_> = imports.iter().map(view::view).collect();
            Ok(envelope::success(&views, count))
        }
        Err(QueryError::Refused(code, desc)) => Ok(envelope::refused(code, &desc)),
        Err(QueryError::Api(e)) => Err(e),
    }
}

/// The page of imports the request asks for and the count of all that match, once every
/// parameter has passed its checks.
fn results(
    ctx: &RequestContext,
    request: &mut Request<'_>,
    args: &PathArgs,
) -> Result<(Vec<CampaignImport>, u64), QueryError> {
    // The body is read first (within --max-json), so that every answer, a refusal of the
    // path included, has read it; the checks then run in their documented order.
    let body = read_body(ctx, request)?;
    let path = params::path(args)?;
    let page = params::body(&body, ctx.limits.max_import_task_ids)?;
    // vdnId names the client. Without tokens there is one client, the open one, whose
    // imports every vdnId reads. Another client's imports are out of a user's scope: its
    // answer is that of a campaign with none, so that nothing tells them apart.
    let client = match ctx.identity.role {
        Role::Open => ctx.identity.client.clone(),
        Role::User | Role::Admin => path.vdn_id.to_string(),
    };
    let Some(store) = ctx.store.for_client(&client) else {
        return Ok((Vec::new(), 0));
    };
    let query = CampaignQuery {
        campaign: path.campaign,
        task_ids: page.task_ids,
        offset: page.offset,
        limit: page.limit,
    };
    Ok(store.campaign_imports(&query)?)
}

/// The body, within `--max-json` (413 beyond, in the family's form).
fn read_body(ctx: &RequestContext, request: &mut Request<'_>) -> Result<Vec<u8>, ApiError> {
    let limit = ctx.limits.max_json;
    let too_large = || {
        ApiError::too_large(format!(
            "The request body is larger than the limit of {limit} bytes (--max-json)."
        ))
    };
    if request.body_length().is_some_and(|n| n as u64 > limit) {
        return Err(too_large());
    }
    read_limited(request.body(), limit, "request body").map_err(|e| {
        if e.status == 413 {
            too_large()
        } else {
            e
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str =
        "/rest/isales/v1/openapi/campaigns/12/calldatafile/queryDataImportTask/Camp%20A";

    fn find(path: &str) -> (Result<PathArgs, u16>, &'static str) {
        match crate::api::router().find(&Method::Post, path) {
            Ok((route, args)) => (Ok(args), route.family.name),
            Err((e, family)) => (Err(e.status), family.name),
        }
    }

    #[test]
    fn the_path_s_parameters_come_decoded_with_their_case() {
        let (args, family) = find(PATH);
        let args = args.unwrap();
        assert_eq!(family, FAMILY.name);
        assert_eq!(args.text(params::VDN_ID).unwrap(), "12");
        assert_eq!(args.text(params::CAMPAIGN_ID).unwrap(), "Camp A");
        // Literal segments match in any case; the parameters keep theirs.
        let (args, _) =
            find(&PATH.replace("queryDataImportTask/Camp%20A", "QUERYDATAIMPORTTASK/cAmP"));
        assert_eq!(args.unwrap().text(params::CAMPAIGN_ID).unwrap(), "cAmP");
    }

    #[test]
    fn an_empty_segment_is_routed_to_the_family_as_an_empty_parameter() {
        let campaigns = "/rest/isales/v1/openapi/campaigns";
        for (path, texts) in [
            (
                "/7/calldatafile/queryDataImportTask/",
                vec![(params::VDN_ID, "7")],
            ),
            (
                "//calldatafile/queryDataImportTask/c",
                vec![(params::CAMPAIGN_ID, "c")],
            ),
            ("//calldatafile/queryDataImportTask/", vec![]),
        ] {
            let (args, family) = find(&format!("{campaigns}{path}"));
            let args = args.unwrap_or_else(|s| panic!("{path}: {s}"));
            assert_eq!(family, FAMILY.name, "{path}");
            let texts: Vec<_> = texts.into_iter().map(|(n, t)| (n, t.to_string())).collect();
            assert_eq!(args.texts, texts, "{path}");
        }
        // Another method is this family's 405.
        let e = crate::api::router()
            .find(&Method::Get, PATH)
            .map(|_| ())
            .unwrap_err();
        assert_eq!((e.0.status, e.1.name), (405, FAMILY.name));
    }
}
