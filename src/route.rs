//! The route table: every endpoint the server answers, declared once with its metrics
//! label, the methods it takes and the paths it owns. The metrics label requests with it,
//! a 405's `Allow` header reads it, and the upgrade of the verification socket is decided
//! by it; the handlers' filters (`http`) are written for the same paths. Adding an
//! endpoint is one variant here and its filter there.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    // In the order of `ALL` (the metrics series): `index` is the discriminant.
    Authenticate,
    Vote,
    VotingPaperResult,
    Stats,
    Results,
    Evidence,
    Flags,
    Directory,
    RefreshS3Credentials,
    Audit,
    AuditHead,
    Healthz,
    Metrics,
    Reporters,
    Sources,
    WsVoteVerification,
    Page,
    Other,
    Batch,
    LogCheckpoint,
    LogTile,
    LogProof,
    LogCosignature,
}

impl Route {
    /// Every route, in the order of their metrics series.
    pub const ALL: [Route; 23] = [
        Route::Authenticate,
        Route::Vote,
        Route::VotingPaperResult,
        Route::Stats,
        Route::Results,
        Route::Evidence,
        Route::Flags,
        Route::Directory,
        Route::RefreshS3Credentials,
        Route::Audit,
        Route::AuditHead,
        Route::Healthz,
        Route::Metrics,
        Route::Reporters,
        Route::Sources,
        Route::WsVoteVerification,
        Route::Page,
        Route::Other,
        Route::Batch,
        Route::LogCheckpoint,
        Route::LogTile,
        Route::LogProof,
        Route::LogCosignature,
    ];

    /// Its label in `/metrics` (a template, never a raw path).
    pub fn label(self) -> &'static str {
        match self {
            Route::Authenticate => "authenticate",
            Route::Vote => "vote",
            Route::VotingPaperResult => "votingpaperresult",
            Route::Batch => "batch",
            Route::Stats => "pollofficesstats",
            Route::Results => "pollofficeresults",
            Route::Evidence => "pollofficeevidence",
            Route::Flags => "flags",
            Route::Directory => "directory",
            Route::RefreshS3Credentials => "refresh_s3_credentials",
            Route::Audit => "audit",
            Route::AuditHead => "audit_head",
            Route::Healthz => "healthz",
            Route::Metrics => "metrics",
            Route::Reporters => "reporters",
            Route::Sources => "sources",
            Route::WsVoteVerification => "ws_vote_verification",
            Route::Page => "page",
            Route::Other => "other",
            Route::LogCheckpoint => "log_checkpoint",
            Route::LogTile => "log_tile",
            Route::LogProof => "log_proof",
            Route::LogCosignature => "log_cosignature",
        }
    }

    /// The methods it takes, as a 405's `Allow` header lists them.
    pub fn methods(self) -> &'static str {
        match self {
            Route::Authenticate
            | Route::Vote
            | Route::VotingPaperResult
            | Route::Batch
            | Route::Reporters
            | Route::LogCosignature => "POST",
            Route::RefreshS3Credentials => "GET, POST",
            Route::Sources => "PATCH",
            _ => "GET",
        }
    }

    /// Its place in `ALL` (checked by a test): every request is counted by it.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The route that owns a request path (with or without its trailing slash).
    pub fn of(path: &str) -> Route {
        let mut segs = path.trim_matches('/').split('/');
        match (segs.next(), segs.next(), segs.next()) {
            (Some("api"), Some("authenticate"), None) => Route::Authenticate,
            (Some("api"), Some("vote"), None) => Route::Vote,
            (Some("api"), Some("votingpaperresult"), None) => Route::VotingPaperResult,
            (Some("api"), Some("vote" | "votingpaperresult"), Some("batch")) => Route::Batch,
            (Some("api"), Some("pollofficesstats" | "pollofficestats"), _) => Route::Stats,
            (Some("api"), Some("pollofficeresults"), _) => Route::Results,
            (Some("api"), Some("pollofficeevidence"), _) => Route::Evidence,
            (Some("api"), Some("flags"), None) => Route::Flags,
            (Some("api"), Some("polloffices" | "candidateparties"), None) => Route::Directory,
            (Some("api"), Some("refresh-s3-credentials"), None) => Route::RefreshS3Credentials,
            (Some("api"), Some("audit"), Some("head")) => Route::AuditHead,
            (Some("api"), Some("audit"), None) => Route::Audit,
            (Some("api"), Some("reporters"), None) => Route::Reporters,
            (Some("api"), Some("sources"), _) => Route::Sources,
            (Some("api"), Some("log"), Some("inclusion" | "consistency")) => Route::LogProof,
            (Some("log"), Some("checkpoint" | "vkey"), None) => Route::LogCheckpoint,
            (Some("log"), Some("tile"), Some(_)) => Route::LogTile,
            (Some("log"), Some("cosignature"), None) => Route::LogCosignature,
            (Some("healthz"), None, None) => Route::Healthz,
            (Some("metrics"), None, None) => Route::Metrics,
            (Some("ws"), Some("vote-verification"), None) => Route::WsVoteVerification,
            (Some("" | "page" | "office"), _, _) => Route::Page,
            _ => Route::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_owned_by_their_route_template() {
        let label = |p| Route::of(p).label();
        assert_eq!(label("/api/pollofficesstats/PO-1/"), "pollofficesstats");
        assert_eq!(label("/api/vote"), "vote");
        assert_eq!(label("/api/vote/batch/"), "batch");
        assert_eq!(label("/api/audit/head/"), "audit_head");
        assert_eq!(label("/nope/x"), "other");
        assert_eq!(label("/"), "page");
        assert_eq!(Route::of("/ws/vote-verification/"), Route::WsVoteVerification);
        assert_eq!(Route::of("/api/refresh-s3-credentials/").methods(), "GET, POST");
        for (i, r) in Route::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
