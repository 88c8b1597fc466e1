//! The running service: `App` holds everything a request needs (settings, the writer, the
//! read pool, the in-memory state), built once at start from the database. `start` binds
//! nothing itself: it takes a listener (port 0 in tests) and a shutdown future.

use std::path::Path;
use std::sync::Arc;

use ipnet::IpNet;
use parking_lot::RwLock;
use rand::RngCore;

use crate::auth::password::Hasher;
use crate::auth::ratelimit::RateLimits;
use crate::auth::tokens::Tokens;
use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::change::Effect;
use crate::domain::directory::Directory;
use crate::metrics::Metrics;
use crate::stats::Stats;
use crate::store::reads;
use crate::store::{self, Writer};

pub struct App {
    pub settings: Arc<Settings>,
    pub clock: Arc<dyn Clock>,
    pub writer: Writer,
    pub reader: store::Reader,
    pub stats: Arc<Stats>,
    pub tokens: Arc<Tokens>,
    pub limits: RateLimits,
    pub hasher: Hasher,
    pub metrics: Arc<Metrics>,
    pub directory: Arc<RwLock<Arc<Directory>>>,
    pub trusted_proxies: Vec<IpNet>,
    /// The hashing secret (voters' keyed hashes).
    pub secret: Vec<u8>,
    /// Mints reporters' S3 credentials.
    pub s3: crate::s3::Service,
    /// The verification WebSocket's hub.
    pub hubs: crate::ws::Hubs,
    /// The evidence index's cache.
    pub evidence: Arc<crate::s3::evidence::Evidence>,
    /// `Cache-Control` of the public GETs, built once.
    pub public_cache_control: warp::http::HeaderValue,
    /// The transparency log (section 6e).
    pub log: Arc<crate::transparency::Log>,
    /// What the server sees of the replica Litestream keeps (section 10).
    pub replication: Arc<crate::replication::Monitor>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Open(#[from] store::OpenError),
    #[error("cannot load the database: {0}")]
    Load(#[from] rusqlite::Error),
    #[error("secret file {0}: {1}")]
    Secret(String, String),
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
    #[error("cannot follow other writers: {0}")]
    Follow(std::io::Error),
    #[error(transparent)]
    Log(#[from] crate::transparency::LogError),
}

/// The hub's verifications, written by the single writer like every other write.
fn verifier(writer: Writer) -> crate::ws::Verify {
    use crate::store::{ops::WriteOp, OpError, WriteError};
    use crate::ws::hub::Written;
    Arc::new(move |vote_id, voter_hash, attrs| {
        let writer = writer.clone();
        Box::pin(async move {
            match writer.verify(WriteOp::Verify { vote_id, voter_hash, attrs }).await {
                Ok(receipt) => Written::Recorded(receipt),
                Err(WriteError::Op(OpError::AlreadyVerified | OpError::NoSuchVote)) => Written::AlreadyVerified,
                Err(_) => Written::Failed,
            }
        })
    })
}

/// What happens after a commit, in this order: the directory, the aggregates, the
/// reporters' tokens, then the verification hub. The writer calls it with each commit's
/// effects (a reload of another process's commit included) before it answers the requests.
pub struct Committed {
    pub stats: Arc<Stats>,
    pub tokens: Arc<Tokens>,
    pub directory: Arc<RwLock<Arc<Directory>>>,
    pub metrics: Arc<Metrics>,
    pub hub: crate::ws::Feed,
    pub log: Arc<crate::transparency::Log>,
}

impl Committed {
    pub fn apply(&self, effects: &[Effect]) {
        for effect in effects {
            if let Effect::Directory(d) = effect {
                self.stats.set_directory(&d.0);
                *self.directory.write() = d.0.clone();
            }
        }
        self.log.apply(effects);
        self.stats.apply(effects);
        self.tokens.apply(effects);
        self.metrics.tokens.store(self.tokens.len() as u64, std::sync::atomic::Ordering::Relaxed);
        (self.hub)(effects);
    }
}

/// Reads the hashing secret, creating it (mode 0600) when missing, unless verifications
/// exist: a new secret would let every voter verify again.
fn load_secret(path: &Path, verifications: i64) -> Result<Vec<u8>, StartError> {
    let err = |e: String| StartError::Secret(path.display().to_string(), e);
    match std::fs::read_to_string(path) {
        Ok(text) => hex::decode(text.trim()).map_err(|_| err("is not hex".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if verifications > 0 {
                return Err(err(format!(
                    "is missing but {verifications} verifications exist: restore it from the backup (a new secret would let every voter verify again)"
                )));
            }
            let mut secret = vec![0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut secret);
            crate::secret_file::create(path, &hex::encode(&secret)).map_err(|e| err(e.to_string()))?;
            log::info!("generated a new hashing secret in {}", path.display());
            Ok(secret)
        }
        Err(e) => Err(err(e.to_string())),
    }
}

/// Opens the database, rebuilds the in-memory state from it and starts the writer.
pub fn build(settings: Settings, clock: Arc<dyn Clock>) -> Result<(Arc<App>, std::thread::JoinHandle<()>), StartError> {
    // Large blocks (argon2id's 19 MiB above all) always come from mmap and go back to the
    // system when freed: glibc's moving threshold would otherwise keep them in the arenas.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; it is called before the server's threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
    let conn = store::open(&settings.database.path, settings.durability())?;
    store::recount_derived(&conn)?;
    // Where following other processes starts: before the memory is read, so a CLI commit
    // while it loads is reloaded after, never missed.
    let followed_from = reads::last_seq(&conn)?;
    // When the file's first and newest entries were written: what the replica may lack.
    let audit_times = if settings.replication.enabled { Some(reads::audit_times(&conn)?) } else { None };
    let verifications = reads::count_verifications(&conn)?;
    let secret = load_secret(&settings.auth.secret_file, verifications)?;
    if !store::secret_matches(&conn, &crate::domain::source::secret_fingerprint(&secret), verifications)? {
        return Err(StartError::Secret(
            settings.auth.secret_file.display().to_string(),
            format!(
                "is not the secret this database's {verifications} verifications were hashed with: restore the old box's secret from the backups folder (another secret would let every voter verify again)"
            ),
        ));
    }
    // The aggregates and the log's tree are rebuilt side by side, each from its own
    // connection: the tree from `audit_log`, the aggregates from the other tables.
    let pool = store::read_pool(&settings.database.path, 4)?;
    let log_conn = store::open(&settings.database.path, settings.durability())?;
    let (log_settings, log_pool, now) = (&settings.log, pool.clone(), clock.now());
    let (log, rebuilt) = std::thread::scope(|s| {
        let log = s.spawn(move || crate::transparency::Log::open(&log_conn, log_settings, log_pool, now));
        let rebuilt = (|| -> rusqlite::Result<_> {
            let directory = reads::directory(&conn)?;
            let stats = Arc::new(Stats::new());
            stats.set_directory(&directory);
            reads::all_effects(&conn, &mut |chunk| stats.apply(chunk))?;
            stats.compact();
            Ok((directory, stats))
        })();
        (log.join().expect("the log's rebuild does not panic"), rebuilt)
    });
    let (directory, stats) = rebuilt?;
    let (log, office_seqs) = log?;
    stats.apply(&office_seqs);
    // The rows read for the rebuild are gone: give their pages back to the system.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the system.
    unsafe {
        libc::malloc_trim(0)
    };
    let tokens = Arc::new(Tokens::new());
    tokens.load(reads::live_tokens(&conn, None)?);
    let directory = Arc::new(RwLock::new(Arc::new(directory)));
    let metrics = Arc::new(Metrics::default());
    metrics.tokens.store(tokens.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let log = Arc::new(log);
    let (hubs, hub) = crate::ws::Hubs::channel(&settings.ws);
    let committed = Committed {
        stats: stats.clone(),
        tokens: tokens.clone(),
        directory: directory.clone(),
        metrics: metrics.clone(),
        hub: hubs.feed(),
        log: log.clone(),
    };
    let sink = Box::new(move |effects: &[Effect]| committed.apply(effects));
    let (writer, handle) = Writer::start(conn, clock.clone(), metrics.clone(), sink);
    hub.start(verifier(writer.clone()), metrics.clone(), clock.clone());
    let replication = match audit_times {
        Some((first_at, last_at)) => {
            let ms =
                |at: Option<String>| at.as_deref().and_then(crate::domain::time::parse).map(|t| t.timestamp_millis());
            crate::store::note_newest_entry_ms(ms(last_at).unwrap_or(0));
            crate::replication::Monitor::spawn(&settings, ms(first_at))
        }
        None => crate::replication::Monitor::off(),
    };
    let app = App {
        public_cache_control: warp::http::HeaderValue::from_str(&format!(
            "public, max-age={}",
            settings.http.public_max_age_secs
        ))
        .expect("digits are a valid header"),
        s3: crate::s3::Service::new(&settings.s3, metrics.clone()),
        hubs,
        evidence: crate::s3::evidence::Evidence::new(clock.clone()),
        limits: RateLimits::new(
            settings.auth.failed_per_address_per_min,
            settings.auth.failures_before_lockout,
            settings.auth.new_sources_per_address_per_min,
        ),
        trusted_proxies: settings.trusted_proxies(),
        settings: Arc::new(settings),
        clock,
        writer,
        reader: store::Reader::new(pool),
        stats,
        tokens,
        hasher: Hasher::default(),
        metrics,
        directory,
        secret,
        log,
        replication,
    };
    let app = Arc::new(app);
    app.log.spawn_checkpoints(
        app.writer.downgrade(),
        app.clock.clone(),
        std::time::Duration::from_millis(app.settings.log.checkpoint_interval_ms),
        (!app.settings.s3.endpoint.is_empty()).then(|| app.settings.s3.clone()),
    );
    crate::follow::spawn(app.writer.downgrade(), app.metrics.clone(), &app.settings.database.path, followed_from)
        .map_err(StartError::Follow)?;
    Ok((app, handle))
}
