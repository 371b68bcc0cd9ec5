//! The collector's HTTP API (`/v1/...`, `/metrics`).
//!
//! Agents post reports and pull assignments with a bearer token; operators'
//! tools read campaigns, agents and metrics. Every error is a JSON
//! `ApiError` with a one-line message. Request data is never trusted: auth
//! runs before the body is read, the body is capped, JSON errors name the
//! offending field, and a batch is acknowledged only after it is committed.
//!
//! Read-only views (`/v1/outages`, `/v1/timeline`, `/v1/signals`,
//! `/v1/scopes`, `/v1/status`, campaigns, agents, metrics) need no token and return exactly what the CLI's `--json`
//! prints; they are meant for loopback or a reverse proxy that adds its own
//! authentication (see `docs/api.md`). The dashboard (`crate::web`) reads them.
//!
//! `/v1/verdicts/{id}`, also read-only, is a verdict's evidence for its page
//! on the dashboard (`crate::evidence`); it has no CLI twin.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use darkwatch_schema::{ApiError, BatchAck, ReportBatch};
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::bgp::read::BgpRows;
use crate::clock::SharedClock;
use crate::correlation::CorrelationSettings;
use crate::ingest::{check_batch, check_packed, foreign_spaces, IngestError};
use crate::metrics::Metrics;
use crate::signals::{self, SignalsError, SignalsJson, SignalsQuery};
use crate::store::{AgentInfo, AuthOutcome, Campaign, Store, StoreError, SummaryKey};
use crate::tokens;

mod assignments;
mod bgp;
use crate::views::{self, OutageFilter, OutageJson, Status, TimelineJson};

/// Window for the "agents seen recently" gauge.
const SEEN_WINDOW_MS: i64 = 5 * 60 * 1000;

/// Shared by all handlers.
pub struct AppState<S> {
    pub store: Arc<S>,
    pub metrics: Arc<Metrics>,
    /// The collector's clock; tests pin it.
    pub clock: SharedClock,
    /// Correlation settings (the timeline shows `window_rounds` rounds).
    pub correlation: Arc<CorrelationSettings>,
    /// Display names of scope keys (AS names swapped in on reload).
    pub names: crate::names::Names,
}

impl<S> Clone for AppState<S> {
    fn clone(&self) -> Self {
        AppState {
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            clock: self.clock.clone(),
            correlation: self.correlation.clone(),
            names: self.names.clone(),
        }
    }
}

/// An error answer: status plus a one-line message.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: StatusCode,
    pub message: String,
    /// `ApiError::code`, for the refusals an agent acts on.
    pub code: Option<&'static str>,
}

impl ApiFailure {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiFailure {
            status,
            message: message.into(),
            code: None,
        }
    }

    fn store(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        ApiFailure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage unavailable, retry later",
        )
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ApiError {
                error: self.message,
                code: self.code.map(str::to_string),
            }),
        )
            .into_response()
    }
}

/// The agent a request's bearer token belongs to.
pub struct AuthedAgent(pub String);

impl<S: Store> FromRequestParts<AppState<S>> for AuthedAgent {
    type Rejection = ApiFailure;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S>,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = |m: &str| ApiFailure::new(StatusCode::UNAUTHORIZED, m);
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("missing bearer token (Authorization: Bearer <token>)"))?;
        let value = value
            .to_str()
            .map_err(|_| unauthorized("Authorization header is not ASCII"))?;
        let token = tokens::bearer(value)
            .ok_or_else(|| unauthorized("Authorization header is not 'Bearer <token>'"))?;
        match state
            .store
            .authenticate(&tokens::hash(token))
            .await
            .map_err(ApiFailure::store)?
        {
            AuthOutcome::Agent(name) => {
                // Last-seen is best effort: a failure here must not refuse the request.
                if let Err(e) = state.store.touch_agent(&name, state.clock.now_ms()).await {
                    tracing::warn!(agent = %name, error = %e, "could not record last-seen time");
                }
                Ok(AuthedAgent(name))
            }
            AuthOutcome::Revoked(name) => {
                tracing::warn!(agent = %name, "request with a revoked token");
                Err(unauthorized("token revoked"))
            }
            AuthOutcome::Unknown => Err(unauthorized("invalid token")),
        }
    }
}

/// The router, with a body cap of `max_body` bytes.
pub fn router<S: Store + BgpRows>(state: AppState<S>, max_body: usize) -> Router {
    Router::new()
        .route("/v1/health", get(health::<S>))
        .route("/v1/reports", post(post_reports::<S>))
        .route("/v1/assignments", get(assignments::get_assignments::<S>))
        .route("/v1/census/{campaign}", get(assignments::get_census::<S>))
        .route("/v1/campaigns", get(get_campaigns::<S>))
        .route("/v1/agents", get(get_agents::<S>))
        .route("/v1/outages", get(get_outages::<S>))
        .route("/v1/timeline", get(get_timeline::<S>))
        .route("/v1/signals", get(get_signals::<S>))
        .route("/v1/scopes", get(get_scopes::<S>))
        .route("/v1/status", get(get_status::<S>))
        .route("/v1/verdicts/{id}", get(get_verdict::<S>))
        .route("/v1/bgp", get(bgp::get_bgp::<S>))
        .route("/metrics", get(get_metrics::<S>))
        .merge(crate::web::router())
        .fallback(|| async { ApiFailure::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            count_rejections,
        ))
        // INFO so that the default log level shows one line per request.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state)
}

async fn count_rejections(
    State(metrics): State<Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if status.is_client_error() || status.is_server_error() {
        metrics.rejected(status.as_u16());
    }
    resp
}

async fn health<S: Store>(
    State(st): State<AppState<S>>,
) -> Result<Json<serde_json::Value>, ApiFailure> {
    st.store.ping().await.map_err(ApiFailure::store)?;
    Ok(Json(serde_json::json!({ "status": "ok" })))
}

/// Parses a report body, naming the offending field on error.
pub fn parse_batch(body: &[u8]) -> Result<ReportBatch, String> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let batch: ReportBatch = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            format!("invalid report JSON: {}", e.inner())
        } else {
            format!("invalid report JSON at {path}: {}", e.inner())
        }
    })?;
    de.end().map_err(|e| format!("invalid report JSON: {e}"))?;
    Ok(batch)
}

async fn post_reports<S: Store>(
    State(st): State<AppState<S>>,
    AuthedAgent(agent): AuthedAgent,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<BatchAck>, ApiFailure> {
    // The auth extractor ran first, so an anonymous client cannot make us
    // buffer a large body.
    let body = body.map_err(|r| {
        let status = r.status();
        let msg = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "request body is larger than the collector accepts".to_string()
        } else {
            format!("could not read request body: {}", r.body_text())
        };
        ApiFailure::new(status, msg)
    })?;
    let mut batch = parse_batch(&body).map_err(|m| ApiFailure::new(StatusCode::BAD_REQUEST, m))?;
    let now = st.clock.now_ms();
    let campaigns = st.store.list_campaigns().await.map_err(ApiFailure::store)?;
    let refused = |e: IngestError, batch_id: &str| {
        let (status, code) = match e {
            IngestError::Invalid(_) => (StatusCode::BAD_REQUEST, None),
            IngestError::UnknownCampaign(_)
            | IngestError::NotAssigned { .. }
            | IngestError::UnknownBlock { .. } => (StatusCode::UNPROCESSABLE_ENTITY, None),
            IngestError::UnknownBlockSpace { .. } => (
                StatusCode::CONFLICT,
                Some(darkwatch_schema::packed::ERROR_UNKNOWN_BLOCK_SPACE),
            ),
            IngestError::RoundAhead { .. } => {
                (StatusCode::CONFLICT, Some(crate::ingest::ERROR_ROUND_AHEAD))
            }
        };
        tracing::info!(%agent, batch = %batch_id, error = %e, "report refused");
        ApiFailure {
            code,
            ..ApiFailure::new(status, e.to_string())
        }
    };
    batch
        .validate(now)
        .map_err(|e| refused(e.into(), &batch.batch_id))?;
    check_batch(&batch, &agent, &campaigns, now).map_err(|e| refused(e, &batch.batch_id))?;
    let mut older = HashMap::new();
    for name in foreign_spaces(&batch, &campaigns) {
        let spaces = st
            .store
            .block_spaces(&name)
            .await
            .map_err(ApiFailure::store)?;
        older.insert(name, spaces);
    }
    let packed =
        check_packed(&batch, &campaigns, &older).map_err(|e| refused(e, &batch.batch_id))?;
    let dropped = crate::census::screen_report(&mut batch, &agent, &campaigns);
    if !dropped.is_empty() {
        tracing::info!(%agent, batch = %batch.batch_id, ?dropped, "census or coverage entries dropped");
    }
    let ack = st
        .store
        .ingest(&agent, &batch, now)
        .await
        .map_err(ApiFailure::store)?;
    st.metrics
        .batch(ack.duplicate, ack.observations_stored, ack.traces_stored);
    if ack.observations_not_stored > 0 {
        st.metrics.not_stored(ack.observations_not_stored);
        tracing::warn!(
            %agent,
            batch = %ack.batch_id,
            not_stored = ack.observations_not_stored,
            reason = ack.not_stored_reason.as_deref().unwrap_or_default(),
            "observations of a report not stored"
        );
    }
    if !ack.duplicate {
        let (probes, replies) = batch
            .observations
            .iter()
            .fold((packed.probes, packed.replies), |(p, r), o| {
                (p + u64::from(o.probes), r + u64::from(o.replies))
            });
        st.metrics.probes(probes, replies);
    }
    tracing::info!(
        %agent,
        batch = %ack.batch_id,
        duplicate = ack.duplicate,
        observations = ack.observations_stored,
        traces = ack.traces_stored,
        "report stored"
    );
    Ok(Json(ack))
}

async fn get_campaigns<S: Store>(
    State(st): State<AppState<S>>,
) -> Result<Json<Vec<Campaign>>, ApiFailure> {
    Ok(Json(
        st.store.list_campaigns().await.map_err(ApiFailure::store)?,
    ))
}

async fn get_agents<S: Store>(
    State(st): State<AppState<S>>,
) -> Result<Json<Vec<AgentInfo>>, ApiFailure> {
    Ok(Json(
        st.store.list_agents().await.map_err(ApiFailure::store)?,
    ))
}

async fn get_metrics<S: Store>(State(st): State<AppState<S>>) -> Response {
    let now = st.clock.now_ms();
    let read = async {
        let counts = st.store.counts(now - SEEN_WINDOW_MS).await?;
        let gauges = signals::scope_gauges(st.store.as_ref(), now).await?;
        let fleet = crate::views::fleet(st.store.as_ref(), now).await?;
        Ok::<_, StoreError>((counts, gauges, fleet))
    };
    let (counts, gauges, fleet) = match read.await {
        Ok((c, g, f)) => (Some(c), Some(g), Some(f)),
        Err(e) => {
            tracing::error!(error = %e, "metrics: store failure");
            (None, None, None)
        }
    };
    let mut text = st.metrics.render(counts.as_ref());
    if let Some(g) = &gauges {
        text.push_str(&crate::metrics::render_scope_gauges(g));
    }
    if let Some((per, last)) = &fleet {
        text.push_str(&crate::metrics::render_fleet(per, last));
    }
    text.push_str(&crate::metrics::render_process());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Query of `GET /v1/outages`: the `outages` command's flags.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutagesQuery {
    pub country: Option<String>,
    pub ongoing: Option<bool>,
    pub since: Option<String>,
}

/// Query of `GET /v1/timeline`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimelineQuery {
    pub country: Option<String>,
}

/// Checks a `country` parameter: two ASCII letters.
fn check_country(cc: Option<&str>) -> Result<(), String> {
    match cc {
        Some(cc) if cc.len() != 2 || !cc.bytes().all(|b| b.is_ascii_alphabetic()) => Err(format!(
            "query parameter country={cc:?} is not a two-letter country code"
        )),
        _ => Ok(()),
    }
}

/// Turns the query of `/v1/outages` into the CLI's filter (same semantics
/// as `outages --country CC --ongoing --since T`).
pub fn outage_filter(q: OutagesQuery, now_ms: i64) -> Result<OutageFilter, String> {
    check_country(q.country.as_deref())?;
    let since_ms = match &q.since {
        Some(s) => Some(
            crate::timespec::parse_time(s, now_ms)
                .map_err(|e| format!("query parameter since: {}", e.replace("--since", "since")))?,
        ),
        None => None,
    };
    Ok(OutageFilter {
        country: q.country,
        ongoing: q.ongoing.unwrap_or(false),
        since_ms,
    })
}

fn bad_query(r: QueryRejection) -> ApiFailure {
    ApiFailure::new(
        StatusCode::BAD_REQUEST,
        format!("bad query parameters: {}", r.body_text()),
    )
}

async fn get_outages<S: Store>(
    State(st): State<AppState<S>>,
    q: Result<Query<OutagesQuery>, QueryRejection>,
) -> Result<Json<Vec<OutageJson>>, ApiFailure> {
    let Query(q) = q.map_err(bad_query)?;
    let filter = outage_filter(q, st.clock.now_ms())
        .map_err(|m| ApiFailure::new(StatusCode::BAD_REQUEST, m))?;
    Ok(Json(
        views::outages(st.store.as_ref(), &filter, &st.names.snapshot())
            .await
            .map_err(ApiFailure::store)?,
    ))
}

async fn get_timeline<S: Store>(
    State(st): State<AppState<S>>,
    q: Result<Query<TimelineQuery>, QueryRejection>,
) -> Result<Json<Vec<TimelineJson>>, ApiFailure> {
    let Query(q) = q.map_err(bad_query)?;
    check_country(q.country.as_deref()).map_err(|m| ApiFailure::new(StatusCode::BAD_REQUEST, m))?;
    Ok(Json(
        signals::timeline(
            st.store.as_ref(),
            q.country.as_deref(),
            st.correlation.window_rounds,
            st.clock.now_ms(),
        )
        .await
        .map_err(ApiFailure::store)?,
    ))
}

/// `GET /v1/signals`: query pairs as they come, so that `vp` may repeat.
async fn get_signals<S: Store + BgpRows>(
    State(st): State<AppState<S>>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiFailure> {
    let Query(mut pairs) = q.map_err(bad_query)?;
    let now = st.clock.now_ms();
    // `source=bgp`: the routed prefixes' BGP signal (bgp::read);
    // `source=probes` (the default) is the share of blocks up.
    match bgp::source(&mut pairs).map_err(|m| ApiFailure::new(StatusCode::BAD_REQUEST, m))? {
        Some(bgp::Source::Bgp) => return bgp::get_bgp_signal(&st, &pairs, now).await,
        Some(bgp::Source::Probes) | None => {}
    }
    let q = SignalsQuery::from_pairs(&pairs, now)
        .map_err(|m| ApiFailure::new(StatusCode::BAD_REQUEST, m))?;
    match signals::signals(st.store.as_ref(), &q, now, &st.names.snapshot()).await {
        Ok(s) => Ok(Json::<SignalsJson>(s).into_response()),
        Err(e) => Err(e.into()),
    }
}

/// A signals request without an answer (probes' or BGP's), as HTTP.
impl From<SignalsError> for ApiFailure {
    fn from(e: SignalsError) -> Self {
        match e {
            SignalsError::BadRequest(m) => ApiFailure::new(StatusCode::BAD_REQUEST, m),
            SignalsError::NotFound(m) => ApiFailure::new(StatusCode::NOT_FOUND, m),
            SignalsError::Store(e) => ApiFailure::store(e),
        }
    }
}

/// Query of `GET /v1/scopes`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopesQuery {
    pub campaign: Option<String>,
}

async fn get_scopes<S: Store>(
    State(st): State<AppState<S>>,
    q: Result<Query<ScopesQuery>, QueryRejection>,
) -> Result<Json<Vec<SummaryKey>>, ApiFailure> {
    let Query(q) = q.map_err(bad_query)?;
    Ok(Json(
        signals::scopes(st.store.as_ref(), q.campaign.as_deref())
            .await
            .map_err(ApiFailure::store)?,
    ))
}

async fn get_status<S: Store>(
    State(st): State<AppState<S>>,
    q: Result<Query<std::collections::BTreeMap<String, String>>, QueryRejection>,
) -> Result<Json<Status>, ApiFailure> {
    let Query(q) = q.map_err(bad_query)?;
    if let Some(k) = q.keys().next() {
        return Err(ApiFailure::new(
            StatusCode::BAD_REQUEST,
            format!("/v1/status takes no query parameters (got {k:?})"),
        ));
    }
    Ok(Json(
        views::status(st.store.as_ref(), st.clock.now_ms(), &st.names.snapshot())
            .await
            .map_err(ApiFailure::store)?,
    ))
}

/// Query of `GET /v1/verdicts/{id}`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceQuery {
    /// Rounds shown before the start and after the end (default
    /// [`crate::evidence::ROUNDS_AROUND`], at most [`MAX_AROUND`]).
    pub around: Option<u64>,
}

/// Largest `around` of `/v1/verdicts/{id}`.
pub const MAX_AROUND: u64 = 100;

async fn get_verdict<S: Store>(
    State(st): State<AppState<S>>,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<EvidenceQuery>, QueryRejection>,
) -> Result<Json<crate::evidence::Evidence>, ApiFailure> {
    let Query(q) = q.map_err(bad_query)?;
    let bad = |m: String| ApiFailure::new(StatusCode::BAD_REQUEST, m);
    let id = id
        .map_err(|r| bad(format!("bad verdict id: {}", r.body_text())))?
        .0;
    let id: i64 = id
        .parse()
        .map_err(|_| bad(format!("verdict id {id:?} is not a number")))?;
    let around = q.around.unwrap_or(crate::evidence::ROUNDS_AROUND);
    if around > MAX_AROUND {
        return Err(bad(format!(
            "query parameter around={around} is more than {MAX_AROUND} rounds"
        )));
    }
    let names = st.names.snapshot();
    crate::evidence::load(st.store.as_ref(), id, around, st.clock.now_ms(), &names)
        .await
        .map_err(ApiFailure::store)?
        .map(Json)
        .ok_or_else(|| ApiFailure::new(StatusCode::NOT_FOUND, format!("no verdict with id {id}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock, SystemClock};
    use crate::store::{CampaignSpec, SqlStore};
    use darkwatch_schema::{round_of, BlockObservation, BlockState};

    /// A batch of one observation made at `ts_ms`.
    fn batch_at(id: &str, ts_ms: i64) -> ReportBatch {
        ReportBatch {
            observations: vec![BlockObservation {
                campaign: "kp".into(),
                round: round_of(ts_ms, 60),
                block: "198.18.0.0/24".parse().expect("block"),
                state: BlockState::Up,
                probes: 1,
                replies: 1,
                belief: 0.99,
                availability: 1.0,
                control: false,
                rtt_min_ms: None,
                rtt_median_ms: None,
                ts_ms,
            }],
            ..ReportBatch::new(id, ts_ms)
        }
    }

    async fn post(st: &AppState<SqlStore>, b: &ReportBatch) -> Result<BatchAck, ApiFailure> {
        let body = Bytes::from(serde_json::to_vec(b).expect("json"));
        post_reports(State(st.clone()), AuthedAgent("a".into()), Ok(body))
            .await
            .map(|Json(ack)| ack)
    }

    /// Ingest judges "the future" by the injected clock, not the system's:
    /// a report from a year after today is accepted once the clock is
    /// pinned there, and refused when the pinned clock goes back a day.
    #[tokio::test]
    async fn ingest_judges_the_future_by_the_injected_clock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("clock.sqlite");
        let store = SqlStore::open(db.to_str().expect("utf-8 path"))
            .await
            .expect("open");
        let t = SystemClock.now_ms() + 365 * 86_400_000;
        let clock = ManualClock::new(t);
        store.add_agent("a", "h", t).await.expect("agent");
        store
            .put_campaign(
                &CampaignSpec {
                    name: "kp".into(),
                    country: None,
                    interval_secs: 60,
                    prefixes: vec!["198.18.0.0/24".parse().expect("net")],
                    control: vec![],
                    agents: vec![],
                },
                false,
                t,
            )
            .await
            .expect("campaign");
        let st = AppState {
            store: Arc::new(store),
            metrics: Arc::new(Metrics::default()),
            clock: Arc::new(clock.clone()),
            correlation: Arc::new(CorrelationSettings::default()),
            names: Default::default(),
        };
        let ack = post(&st, &batch_at("00000001", t)).await.expect("accepted");
        assert_eq!(ack.observations_stored, 1);
        clock.set(t - 86_400_000);
        let e = post(&st, &batch_at("00000002", t)).await.unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(
            e.message.contains("outside the accepted range"),
            "{}",
            e.message
        );
        st.store.close().await;
    }

    #[test]
    fn outage_queries_map_to_the_cli_filter() {
        let now = 1_800_000_000_000;
        let f = outage_filter(
            OutagesQuery {
                country: Some("kp".into()),
                ongoing: Some(true),
                since: Some("2h".into()),
            },
            now,
        )
        .unwrap();
        assert_eq!(f.country.as_deref(), Some("kp"));
        assert!(f.ongoing);
        assert_eq!(f.since_ms, Some(now - 7_200_000));
        let f = outage_filter(OutagesQuery::default(), now).unwrap();
        assert!(!f.ongoing && f.country.is_none() && f.since_ms.is_none());
        let e = outage_filter(
            OutagesQuery {
                since: Some("yesterday".into()),
                ..Default::default()
            },
            now,
        )
        .unwrap_err();
        assert!(e.contains("since") && !e.contains("--since"), "{e}");
        let e = outage_filter(
            OutagesQuery {
                country: Some("KPX".into()),
                ..Default::default()
            },
            now,
        )
        .unwrap_err();
        assert!(e.contains("country"), "{e}");
    }

    #[test]
    fn json_errors_name_the_field() {
        let e = parse_batch(br#"{"batch_id":"00ff00ff","created_ms":"soon"}"#).unwrap_err();
        assert!(e.contains("created_ms"), "{e}");
        let e = parse_batch(
            br#"{"batch_id":"00ff00ff","created_ms":1,"observations":[{"campaign":"kp","round":1,"block":"x"}]}"#,
        )
        .unwrap_err();
        assert!(e.contains("observations[0].block"), "{e}");
        let e = parse_batch(b"{not json").unwrap_err();
        assert!(e.starts_with("invalid report JSON"), "{e}");
        let e = parse_batch(br#"{"batch_id":"00ff00ff","created_ms":1} trailing"#).unwrap_err();
        assert!(e.contains("trailing"), "{e}");
        assert!(parse_batch(br#"{"batch_id":"00ff00ff","created_ms":1}"#).is_ok());
    }
}
