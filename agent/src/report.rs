//! Talking to the collector: pulling assignments and posting spooled batches.
//!
//! `drain` sends the spool oldest first and deletes a batch only after the
//! collector acknowledged it. Errors are sorted into "try again later"
//! (network, 5xx, 401, 408, 429: nothing is wrong with the batch) and
//! "refused" (other 4xx: the batch itself is bad and is set aside, so that one
//! poisoned batch cannot block the rest forever). One refusal is acted on
//! instead: a packed round whose block space the collector does not know
//! (the campaign changed after the round was packed) is unpacked and resent
//! as plain observations ([`plain_batches`]), so nothing is lost.
//!
//! Rounds are numbered by this host's clock. When the collector's clock
//! (its answers' `Date` header) differs by more than a bound, this host's
//! rounds cannot be placed: reported, they would land in the wrong round
//! (a round ahead is refused; one behind would overwrite the past). So
//! `drain` holds the spool instead ([`clock_unplaceable`]), logs and counts
//! it, and sends once the offset is back within the bound.

use std::time::Duration;

use darkwatch_schema::census::CENSUS_QUERY;
use darkwatch_schema::packed::ERROR_UNKNOWN_BLOCK_SPACE;
use darkwatch_schema::{
    ApiError, Assignments, BatchAck, BlockSpace, CensusSet, ReportBatch, API_VERSION,
    ERROR_ROUND_AHEAD, MAX_ITEMS_PER_BATCH,
};

use crate::spool::{Spool, SpoolError};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("collector unreachable: {0}")]
    Network(String),
    #[error("collector answered {status}: {message}")]
    Retry { status: u16, message: String },
    #[error("collector refused the request ({status}): {message}")]
    Refused {
        status: u16,
        message: String,
        /// `ApiError::code`, when the collector gave one.
        code: Option<String>,
    },
    #[error("collector sent an unreadable answer: {0}")]
    Decode(String),
    #[error(
        "this host's clock is {}s off the collector's (collector minus agent; at most {}s \
         allowed): its rounds cannot be placed, so batches stay spooled until its time is \
         fixed (NTP)",
        *offset_ms as f64 / 1000.0,
        *bound_ms as f64 / 1000.0
    )]
    ClockOffset { offset_ms: i64, bound_ms: i64 },
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

impl ReportError {
    /// Worth sending again later, the batch kept: a network or server
    /// failure, or a round the collector's clock has not reached yet (this
    /// agent's clock runs ahead: the round becomes acceptable).
    pub fn is_retryable(&self) -> bool {
        match self {
            ReportError::Refused { code, .. } => code.as_deref() == Some(ERROR_ROUND_AHEAD),
            _ => true,
        }
    }
}

/// The collector's clock minus this agent's, in ms, from the `Date` header
/// of an answer received at `local_ms`. `Date` has whole seconds, so the
/// server's time is taken at the middle of its second (±500 ms).
pub fn clock_offset_ms(date: &str, local_ms: i64) -> Option<i64> {
    let t = httpdate::parse_http_date(date).ok()?;
    let secs = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some(i64::try_from(secs).ok()? * 1000 + 500 - local_ms)
}

/// The measured offset when it is beyond `bound_ms` either way (this
/// host's rounds cannot be placed); `None` within it or when not measured
/// yet (the first answer measures it).
pub fn clock_unplaceable(offset_ms: Option<i64>, bound_ms: i64) -> Option<i64> {
    offset_ms.filter(|o| o.abs() > bound_ms)
}

/// Default of [`Reporter::with_max_clock_offset`] (the agent's
/// `report.max_clock_offset_secs`).
pub const MAX_CLOCK_OFFSET_MS: i64 = 60_000;

/// Offsets smaller than this are not worth a warning (the `Date` header's
/// resolution is a second).
pub const CLOCK_OFFSET_WARN_MS: i64 = 2_000;

/// HTTP client for one collector.
#[derive(Clone)]
pub struct Reporter {
    http: reqwest::Client,
    base: String,
    token: String,
    /// The latest clock offset measured (`i64::MIN`: none yet), shared by
    /// clones.
    offset_ms: std::sync::Arc<std::sync::atomic::AtomicI64>,
    /// `ETag` of the assignments last received, sent back in
    /// `If-None-Match`: an unchanged assignment then costs no transfer and
    /// no parse.
    etag: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    /// Beyond this clock offset (ms) `drain` holds the spool.
    max_offset_ms: i64,
}

/// A campaign's census as [`Reporter::census`] fetched it.
pub struct FetchedCensus {
    pub set: CensusSet,
    /// Its `ETag`.
    pub tag: Option<String>,
    /// The body as received ([`CensusSet::encode`]).
    pub encoded: Vec<u8>,
}

/// What one pass over the spool did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Drained {
    pub sent: usize,
    pub duplicates: usize,
    pub rejected: usize,
    /// Packed batches replaced by plain ones (unknown block space).
    pub unpacked: usize,
    /// Batches the collector stored only in part (a copy kept in
    /// `rejected/` with the reason).
    pub partial: usize,
    /// Batches not sent because this host's clock is too far off the
    /// collector's (kept spooled).
    pub held: usize,
    pub remaining: usize,
}

/// The same data as `batch`, with its packed rounds unpacked into plain
/// observations, in batches within the item limit. Ids derive from the
/// batch's own, so converting twice (a crash between spooling the new
/// batches and removing the old) gives the same batches, which the
/// collector stores once. `space` finds a block space by digest.
pub fn plain_batches(
    batch: &ReportBatch,
    space: impl Fn(&str) -> Option<BlockSpace>,
) -> Result<Vec<ReportBatch>, String> {
    let mut observations = Vec::new();
    for p in &batch.packed {
        let s =
            space(&p.space).ok_or_else(|| format!("block space {} is not known here", p.space))?;
        observations.extend(p.to_observations(&s).map_err(|e| e.to_string())?);
    }
    let stem = &batch.batch_id[..batch.batch_id.len().min(56)];
    let mut first = ReportBatch {
        packed: Vec::new(),
        ..batch.clone()
    };
    let mut out = Vec::new();
    let mut rest = observations.into_iter().peekable();
    loop {
        let room = MAX_ITEMS_PER_BATCH.saturating_sub(
            first.observations.len()
                + first.traces.len()
                + first.coverage.len()
                + first.rounds.len()
                + first
                    .probe_errors
                    .iter()
                    .map(|p| 1 + p.blocks.len())
                    .sum::<usize>()
                + first
                    .census
                    .iter()
                    .map(|c| c.blocks.len() * 2)
                    .sum::<usize>(),
        );
        first.observations.extend(rest.by_ref().take(room));
        first.batch_id = format!("{stem}{:08x}", out.len());
        out.push(first);
        if rest.peek().is_none() {
            return Ok(out);
        }
        // Later pieces carry observations only; each takes its id from the
        // stem at the top of the loop.
        first = ReportBatch::new(batch.batch_id.clone(), batch.created_ms);
    }
}

impl Reporter {
    pub fn new(base: &str, token: &str, timeout: Duration) -> Result<Reporter, ReportError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("darkwatch-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ReportError::Network(e.to_string()))?;
        Ok(Reporter {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            offset_ms: std::sync::Arc::new(std::sync::atomic::AtomicI64::new(i64::MIN)),
            etag: Default::default(),
            max_offset_ms: MAX_CLOCK_OFFSET_MS,
        })
    }

    /// Holds the spool while the clock offset exceeds `bound` (default
    /// [`MAX_CLOCK_OFFSET_MS`]).
    pub fn with_max_clock_offset(mut self, bound: Duration) -> Reporter {
        self.max_offset_ms = i64::try_from(bound.as_millis()).unwrap_or(i64::MAX);
        self
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{API_VERSION}/{path}", self.base)
    }

    /// The collector's clock minus this agent's (ms), as last measured
    /// from an answer's `Date` header.
    pub fn clock_offset_ms(&self) -> Option<i64> {
        let v = self.offset_ms.load(std::sync::atomic::Ordering::Relaxed);
        (v != i64::MIN).then_some(v)
    }

    /// Measures the clock offset from `resp` (see [`Self::measure`]), then
    /// [`Self::check`]s it.
    async fn answer(&self, resp: reqwest::Response) -> Result<reqwest::Response, ReportError> {
        self.measure(&resp);
        Self::check(resp).await
    }

    /// Measures the clock offset from `resp`'s `Date` header, logged when
    /// it is large or changed much.
    fn measure(&self, resp: &reqwest::Response) {
        let local = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
        let date = resp.headers().get(reqwest::header::DATE);
        if let Some(offset) = date
            .and_then(|d| d.to_str().ok())
            .and_then(|d| clock_offset_ms(d, local))
        {
            let before = self
                .offset_ms
                .swap(offset, std::sync::atomic::Ordering::Relaxed);
            let was = (before != i64::MIN).then_some(before);
            if offset.abs() >= CLOCK_OFFSET_WARN_MS
                && was.is_none_or(|b| (b - offset).abs() >= CLOCK_OFFSET_WARN_MS)
            {
                tracing::warn!(
                    offset_ms = offset,
                    "this host's clock differs from the collector's (collector minus agent): \
                     rounds are numbered by this clock; fix its time sync (NTP)"
                );
            }
        }
    }

    async fn check(resp: reqwest::Response) -> Result<reqwest::Response, ReportError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        let (message, code) = match serde_json::from_str::<ApiError>(&text) {
            Ok(e) => (e.error, e.code),
            Err(_) => (text, None),
        };
        let status = status.as_u16();
        if (500..600).contains(&status) || matches!(status, 401 | 403 | 408 | 429) {
            Err(ReportError::Retry { status, message })
        } else {
            Err(ReportError::Refused {
                status,
                message,
                code,
            })
        }
    }

    /// The agent's assignments; `None` when they did not change since the
    /// last ones received (`304 Not Modified` to their `ETag`).
    pub async fn assignments(&self) -> Result<Option<Assignments>, ReportError> {
        let etag = self.etag.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // Asks for the census apart (compact, fetched on change with
        // [`Self::census`]); an older collector ignores the query and
        // sends it inline.
        let mut req = self
            .http
            .get(self.url("assignments"))
            .query(&[CENSUS_QUERY])
            .bearer_auth(&self.token);
        if let Some(t) = &etag {
            req = req.header(reqwest::header::IF_NONE_MATCH, t);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| ReportError::Network(e.to_string()))?;
        if resp.status() == reqwest::StatusCode::NOT_MODIFIED && etag.is_some() {
            self.measure(&resp);
            return Ok(None);
        }
        let resp = self.answer(resp).await?;
        let new_etag = resp
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let a = resp
            .json()
            .await
            .map_err(|e| ReportError::Decode(e.to_string()))?;
        *self.etag.lock().unwrap_or_else(|e| e.into_inner()) = new_etag;
        Ok(Some(a))
    }

    /// Forgets the assignments' `ETag`: the next poll gets them in full
    /// (after a census could not be fetched, so that it is tried again).
    pub fn forget_assignments_tag(&self) {
        *self.etag.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The census of `campaign` (`GET /v1/census/{campaign}`): the set,
    /// its tag and its encoded form (to cache on disk).
    pub async fn census(&self, campaign: &str) -> Result<FetchedCensus, ReportError> {
        let resp = self
            .http
            .get(self.url(&format!("census/{campaign}")))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| ReportError::Network(e.to_string()))?;
        let resp = self.answer(resp).await?;
        let tag = resp
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let body = resp
            .bytes()
            .await
            .map_err(|e| ReportError::Network(e.to_string()))?;
        let set = CensusSet::decode(&body).map_err(|e| ReportError::Decode(e.to_string()))?;
        Ok(FetchedCensus {
            set,
            tag,
            encoded: body.to_vec(),
        })
    }

    pub async fn send(&self, batch: &ReportBatch) -> Result<BatchAck, ReportError> {
        let resp = self
            .http
            .post(self.url("reports"))
            .bearer_auth(&self.token)
            .json(batch)
            .send()
            .await
            .map_err(|e| ReportError::Network(e.to_string()))?;
        let ack: BatchAck = self
            .answer(resp)
            .await?
            .json()
            .await
            .map_err(|e| ReportError::Decode(e.to_string()))?;
        if ack.batch_id != batch.batch_id {
            return Err(ReportError::Decode(format!(
                "acknowledged batch {} while sending {}",
                ack.batch_id, batch.batch_id
            )));
        }
        Ok(ack)
    }

    /// Sends every spooled batch, oldest first. Stops at the first retryable
    /// error (the collector is down: no point hammering it) and returns it
    /// with what was done so far.
    pub async fn drain(&self, spool: &Spool) -> (Drained, Option<ReportError>) {
        let mut d = Drained::default();
        // Unpacked rounds were spooled anew: send them in the same call.
        loop {
            let unpacked = d.unpacked;
            let entries = match spool.entries() {
                Ok(e) => e,
                Err(e) => return (d, Some(e.into())),
            };
            let total = entries.len();
            for (i, entry) in entries.iter().enumerate() {
                // Checked before every batch: the first answer may be the
                // one that measures the offset.
                if let Some(offset_ms) =
                    clock_unplaceable(self.clock_offset_ms(), self.max_offset_ms)
                {
                    let e = ReportError::ClockOffset {
                        offset_ms,
                        bound_ms: self.max_offset_ms,
                    };
                    tracing::error!(held = total - i, error = %e, "not reporting");
                    d.held = total - i;
                    d.remaining = total - i;
                    return (d, Some(e));
                }
                let batch = match spool.read(entry) {
                    Ok(Some(b)) => b,
                    Ok(None) => continue,
                    Err(e) => return (d, Some(e.into())),
                };
                match self.send(&batch).await {
                    Ok(ack) => {
                        if ack.observations_not_stored > 0 {
                            let why = format!(
                                "{} of its observations not stored: {}",
                                ack.observations_not_stored,
                                ack.not_stored_reason
                                    .as_deref()
                                    .unwrap_or("no reason given")
                            );
                            tracing::warn!(batch = %batch.batch_id, why, "collector stored a batch in part; a copy is kept in rejected/");
                            if let Err(e) = spool.keep_partial(entry, &why) {
                                return (d, Some(e.into()));
                            }
                            d.partial += 1;
                        }
                        if let Err(e) = spool.ack(entry) {
                            return (d, Some(e.into()));
                        }
                        d.sent += 1;
                        d.duplicates += usize::from(ack.duplicate);
                    }
                    Err(e) if e.is_retryable() => {
                        if matches!(e, ReportError::Refused { .. }) {
                            tracing::warn!(batch = %batch.batch_id, offset_ms = self.clock_offset_ms(), error = %e, "the collector's clock has not reached this round yet; kept to send again");
                        }
                        d.remaining = total - i;
                        return (d, Some(e));
                    }
                    Err(ReportError::Refused {
                        code: Some(code), ..
                    }) if code == ERROR_UNKNOWN_BLOCK_SPACE && !batch.packed.is_empty() => {
                        match plain_batches(&batch, |digest| spool.space(digest)) {
                            Ok(plain) => {
                                tracing::warn!(batch = %batch.batch_id, batches = plain.len(), "the collector does not know this round's block list (the campaign changed); resending it as plain observations");
                                if let Err(e) = spool.replace(entry, &plain) {
                                    return (d, Some(e.into()));
                                }
                                d.unpacked += 1;
                            }
                            Err(why) => {
                                tracing::error!(batch = %batch.batch_id, why, "cannot unpack a refused packed round; kept in rejected/");
                                if let Err(e) = spool.reject(
                                    entry,
                                    &format!("cannot unpack a refused packed round: {why}"),
                                ) {
                                    return (d, Some(e.into()));
                                }
                                d.rejected += 1;
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!(batch = %batch.batch_id, error = %e, "collector refused a batch; kept in rejected/");
                        if let Err(e) = spool.reject(entry, &e.to_string()) {
                            return (d, Some(e.into()));
                        }
                        d.rejected += 1;
                    }
                }
            }
            if d.unpacked == unpacked {
                return (d, None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use darkwatch_schema::packed::{pack_chunks, PackedBlock};
    use darkwatch_schema::BlockState;

    #[test]
    fn clock_offset_from_the_date_header() {
        // RFC 9110's example date: 784111777 s after the epoch.
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(clock_offset_ms(date, 784_111_777_500), Some(0));
        // This host 90 s ahead: the collector's clock is 90 s behind.
        assert_eq!(clock_offset_ms(date, 784_111_867_500), Some(-90_000));
        assert_eq!(clock_offset_ms("yesterday", 0), None);
    }

    /// Assignments are pulled with the last `ETag` in `If-None-Match`; a
    /// `304 Not Modified` answers `None` (use the ones held), a change a
    /// new document and tag. Against a small HTTP server of the test's.
    #[tokio::test]
    async fn assignments_are_pulled_only_when_changed() {
        use axum::http::{header, HeaderMap, StatusCode};
        use axum::response::IntoResponse;
        use std::sync::{Arc, Mutex};
        let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
        let tag = Arc::new(Mutex::new("\"one\"".to_string()));
        let app = axum::Router::new().route(
            "/v1/assignments",
            axum::routing::get({
                let (seen, tag) = (seen.clone(), tag.clone());
                move |h: HeaderMap| async move {
                    let sent = h
                        .get(header::IF_NONE_MATCH)
                        .map(|v| v.to_str().unwrap().to_string());
                    seen.lock().unwrap().push(sent.clone());
                    let tag = tag.lock().unwrap().clone();
                    if sent.as_deref() == Some(tag.as_str()) {
                        return (StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response();
                    }
                    let body = serde_json::json!({ "agent": "vp1", "campaigns": [] });
                    ([(header::ETAG, tag)], axum::Json(body)).into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let r = Reporter::new(&format!("http://{addr}"), "t", Duration::from_secs(5)).unwrap();
        assert_eq!(
            r.assignments().await.unwrap().map(|a| a.agent),
            Some("vp1".into())
        );
        assert!(r.assignments().await.unwrap().is_none(), "unchanged: 304");
        *tag.lock().unwrap() = "\"two\"".into();
        assert!(r.assignments().await.unwrap().is_some(), "changed");
        assert!(r.assignments().await.unwrap().is_none());
        assert_eq!(
            *seen.lock().unwrap(),
            [
                None,
                Some("\"one\"".into()),
                Some("\"one\"".into()),
                Some("\"two\"".into())
            ]
        );
    }

    /// A host whose clock is beyond the bound off the collector's reports
    /// nothing: the batches stay spooled (counted as held) until an answer
    /// shows the offset back within the bound. Against a small HTTP server
    /// of the test's whose `Date` header is set by the test.
    #[tokio::test]
    async fn a_clock_too_far_off_holds_the_spool() {
        use axum::http::header;
        use std::sync::{Arc, Mutex};
        let skew_s = Arc::new(Mutex::new(3_600i64));
        let date = {
            let skew_s = skew_s.clone();
            move || {
                let s = *skew_s.lock().unwrap();
                let t = std::time::SystemTime::now() + Duration::from_secs(s as u64);
                [(header::DATE, httpdate::fmt_http_date(t))]
            }
        };
        let app = axum::Router::new()
            .route(
                "/v1/reports",
                axum::routing::post({
                    let date = date.clone();
                    move |axum::Json(b): axum::Json<ReportBatch>| async move {
                        let ack = serde_json::json!({
                            "batch_id": b.batch_id, "duplicate": false,
                            "observations_stored": 0, "traces_stored": 0
                        });
                        (date(), axum::Json(ack))
                    }
                }),
            )
            .route(
                "/v1/assignments",
                axum::routing::get(move || async move {
                    let body = serde_json::json!({ "agent": "vp1", "campaigns": [] });
                    (date(), axum::Json(body))
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        for i in 0..3u8 {
            let now = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
            spool
                .push(&ReportBatch::new(format!("{i:02x}").repeat(32), now))
                .unwrap();
        }
        let r = Reporter::new(&format!("http://{addr}"), "t", Duration::from_secs(5))
            .unwrap()
            .with_max_clock_offset(Duration::from_secs(60));
        // The first answer measures the offset (an hour): the rest is held.
        let (d, err) = r.drain(&spool).await;
        assert_eq!((d.sent, d.held, d.remaining), (1, 2, 2), "{d:?}");
        assert!(
            matches!(
                err,
                Some(ReportError::ClockOffset {
                    bound_ms: 60_000,
                    ..
                })
            ),
            "{err:?}"
        );
        assert!(err.unwrap().is_retryable(), "kept, not rejected");
        assert_eq!(spool.entries().unwrap().len(), 2);
        let (d, _) = r.drain(&spool).await;
        assert_eq!((d.sent, d.held), (0, 2));
        // Within the bound (an assignment poll measures it): all sent.
        *skew_s.lock().unwrap() = 30;
        r.assignments().await.unwrap();
        let (d, err) = r.drain(&spool).await;
        assert!(err.is_none(), "{err:?}");
        assert_eq!((d.sent, d.held), (2, 0));
        assert!(spool.entries().unwrap().is_empty());
    }

    /// A round the collector's clock has not reached is kept to be sent
    /// again (this host's clock runs ahead); other refusals are final.
    #[test]
    fn a_round_ahead_is_retried_other_refusals_are_not() {
        let refused = |code: Option<&str>| ReportError::Refused {
            status: 409,
            message: "m".into(),
            code: code.map(String::from),
        };
        assert!(refused(Some(ERROR_ROUND_AHEAD)).is_retryable());
        assert!(!refused(Some(ERROR_UNKNOWN_BLOCK_SPACE)).is_retryable());
        assert!(!refused(None).is_retryable());
        assert!(ReportError::Network("down".into()).is_retryable());
    }

    #[test]
    fn packed_rounds_unpack_into_bounded_plain_batches_with_stable_ids() {
        let prefixes = vec!["10.0.0.0/7".parse().unwrap()];
        let space = BlockSpace::new(&prefixes);
        let n = MAX_ITEMS_PER_BATCH as u64 + 10;
        let blocks = (0..n)
            .map(|index| PackedBlock {
                index,
                state: BlockState::Up,
                probes: 1,
                replies: 1,
                belief: 255,
                availability: 255,
                rtt: darkwatch_schema::rtt::Rtt::NONE,
            })
            .collect();
        let batch = ReportBatch {
            packed: pack_chunks("kp", 1, &space, 1_800_000_000_000, blocks, 1 << 20).unwrap(),
            ..ReportBatch::new("ab".repeat(32), 1_800_000_000_000)
        };
        let known = |d: &str| (d == space.digest()).then(|| space.clone());
        let out = plain_batches(&batch, known).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(
            out.iter().map(|b| b.observations.len() as u64).sum::<u64>(),
            n
        );
        for b in &out {
            assert!(b.packed.is_empty());
            b.validate(1_800_000_000_000).unwrap();
        }
        // The same conversion twice gives the same ids (resending is harmless).
        let again = plain_batches(&batch, known).unwrap();
        let ids = |v: &[ReportBatch]| v.iter().map(|b| b.batch_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&out), ids(&again));
        assert_ne!(out[0].batch_id, out[1].batch_id);
        assert!(plain_batches(&batch, |_| None).is_err());
    }
}
