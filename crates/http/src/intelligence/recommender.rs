//! Recommender v1 (`recommender.googleapis.com`): recommendations and insights.

use crate::AppState;
use crate::wire::operation::{Interface, Op, serves};
use crate::wire::{
    ApiError, ApiResult, Auth, Body, EnumName, Enums, Params, named, page, parse, reply,
    split_verb, unknown_verb,
};
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use google_cloud_recommender_v1::model as rec;
use runpool_control::Error;
use runpool_control::intelligence::recommender::mark_target;
use serde_json::Value;

const PRIORITY: EnumName = named::<google_cloud_recommender_v1::model::recommendation::Priority>;
const CATEGORY: EnumName = named::<google_cloud_recommender_v1::model::impact::Category>;
const INSIGHT_CATEGORY: EnumName = named::<google_cloud_recommender_v1::model::insight::Category>;
const STATE: EnumName =
    named::<google_cloud_recommender_v1::model::recommendation_state_info::State>;
const INSIGHT_STATE: EnumName =
    named::<google_cloud_recommender_v1::model::insight_state_info::State>;
const SEVERITY: EnumName = named::<google_cloud_recommender_v1::model::insight::Severity>;
const RECOMMENDATION: Enums = &[
    ("priority", PRIORITY),
    ("primaryImpact.category", CATEGORY),
    ("additionalImpact.category", CATEGORY),
    ("stateInfo.state", STATE),
];
const INSIGHT: Enums = &[
    ("category", INSIGHT_CATEGORY),
    ("severity", SEVERITY),
    ("stateInfo.state", INSIGHT_STATE),
];

static RECOMMENDER: Interface = Interface {
    service: "recommender.googleapis.com",
    name: "google.cloud.recommender.v1.Recommender",
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/{kind}/{id}/locations/{loc}/recommenders/{rid}/recommendations",
            serves(
                const { &[&[Op::read("GET", "", &RECOMMENDER, "ListRecommendations")]] },
                get(list_recommendations),
            ),
        )
        .route(
            "/v1/{kind}/{id}/locations/{loc}/recommenders/{rid}/recommendations/{seg}",
            serves(
                const {
                    &[&[
                        Op::read("GET", "", &RECOMMENDER, "GetRecommendation"),
                        Op::write(
                            "POST",
                            "markClaimed",
                            &RECOMMENDER,
                            "MarkRecommendationClaimed",
                        ),
                        Op::write(
                            "POST",
                            "markSucceeded",
                            &RECOMMENDER,
                            "MarkRecommendationSucceeded",
                        ),
                        Op::write(
                            "POST",
                            "markFailed",
                            &RECOMMENDER,
                            "MarkRecommendationFailed",
                        ),
                        Op::write(
                            "POST",
                            "markDismissed",
                            &RECOMMENDER,
                            "MarkRecommendationDismissed",
                        ),
                    ]]
                },
                get(get_recommendation).post(mark),
            ),
        )
        .route(
            "/v1/{kind}/{id}/locations/{loc}/insightTypes/{tid}/insights",
            serves(
                const { &[&[Op::read("GET", "", &RECOMMENDER, "ListInsights")]] },
                get(list_insights),
            ),
        )
        .route(
            "/v1/{kind}/{id}/locations/{loc}/insightTypes/{tid}/insights/{seg}",
            serves(
                const { &[&[Op::read("GET", "", &RECOMMENDER, "GetInsight")]] },
                get(get_insight),
            ),
        )
}

type ParentPath = Path<(String, String, String, String)>;
type ItemPath = Path<(String, String, String, String, String)>;

async fn list_recommendations(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((kind, id, loc, rid)): ParentPath,
) -> ApiResult {
    let parent = format!("{kind}/{id}/locations/{loc}/recommenders/{rid}");
    let filter = p.str("filter");
    let all = s.control.list_recommendations(&c, &parent, filter)?;
    let (items, next) = page(&p, &all, 100, 1000)?;
    let mut resp = rec::ListRecommendationsResponse::new();
    resp.recommendations = items;
    resp.next_page_token = next;
    Ok(crate::wire::reply_under(
        &p,
        &resp,
        &["recommendations"],
        RECOMMENDATION,
    ))
}

async fn get_recommendation(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((kind, id, loc, rid, seg)): ItemPath,
) -> ApiResult {
    let name = format!("{kind}/{id}/locations/{loc}/recommenders/{rid}/recommendations/{seg}");
    Ok(reply(
        &p,
        &s.control.get_recommendation(&c, &name)?,
        RECOMMENDATION,
    ))
}

/// `:markClaimed`, `:markSucceeded`, `:markFailed`, `:markDismissed`.
async fn mark(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((kind, id, loc, rid, seg)): ItemPath,
    Body(body): Body<Value>,
) -> ApiResult {
    let (rid_item, verb) = split_verb(&seg);
    let to = mark_target(verb).ok_or_else(|| unknown_verb(verb))?;
    let name = format!("{kind}/{id}/locations/{loc}/recommenders/{rid}/recommendations/{rid_item}");
    // Dismissal carries no state metadata; the other three do.
    let (etag, metadata) = if verb == "markDismissed" {
        let req: rec::MarkRecommendationDismissedRequest = parse(body)?;
        (req.etag, Default::default())
    } else {
        let req: rec::MarkRecommendationClaimedRequest = parse(body)?;
        (req.etag, req.state_metadata)
    };
    let r = s
        .control
        .mark_recommendation(&c, &name, to, &etag, metadata)?;
    Ok(reply(&p, &r, RECOMMENDATION))
}

async fn list_insights(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((kind, id, loc, tid)): ParentPath,
) -> ApiResult {
    let parent = format!("{kind}/{id}/locations/{loc}/insightTypes/{tid}");
    let filter = p.str("filter");
    let all = s.control.list_insights(&c, &parent, filter)?;
    let (items, next) = page(&p, &all, 100, 1000)?;
    let mut resp = rec::ListInsightsResponse::new();
    resp.insights = items;
    resp.next_page_token = next;
    Ok(crate::wire::reply_under(&p, &resp, &["insights"], INSIGHT))
}

async fn get_insight(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((kind, id, loc, tid, seg)): ItemPath,
) -> ApiResult {
    if seg.contains(':') {
        return Err(ApiError(Error::not_found(format!(
            "Method '{}' not found.",
            split_verb(&seg).1
        ))));
    }
    let name = format!("{kind}/{id}/locations/{loc}/insightTypes/{tid}/insights/{seg}");
    Ok(reply(&p, &s.control.get_insight(&c, &name)?, INSIGHT))
}
