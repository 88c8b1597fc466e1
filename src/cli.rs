//! The `ufrecs` command: `serve` (the default) and the operator's subcommands.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::clock::{Clock, SystemClock};
use crate::config;
use crate::store::{self, ops::Actor, Outcome, WriteOp};

#[derive(Parser)]
#[command(
    name = "ufrecs",
    version,
    about = "UFRECS backend: election observers' reports, cross-checked and published live"
)]
pub struct Cli {
    /// Configuration file (default: UFRECS_CONFIG, else ./ufrecs.toml, else
    /// /etc/ufrecs/ufrecs.toml, the first that exists).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the API (the default).
    Serve,
    /// A consistent copy of the live database to FILE; with --s3, uploaded to
    /// {s3.prefix}backups/ with the operator's key.
    Backup {
        file: Option<PathBuf>,
        #[arg(long)]
        s3: bool,
    },
    /// Checks the database: integrity, accepted values recomputed from the proposals, and
    /// the audit chain. Exit status 1 and the first fault otherwise.
    Check,
    /// Enrol and verify reporters (the admin API's twins, for an operator on the box).
    Source {
        #[command(subcommand)]
        what: SourceCmd,
    },
    /// Import a directory file (CSV with a header row); re-importing updates by identifier.
    Import {
        #[command(subcommand)]
        what: ImportKind,
    },
    /// Rehearse an election day against a running server (loopback only): reporters,
    /// verifying voters and public readers, then every total checked against what was sent.
    Simulate(SimulateArgs),
    /// Witness a UFRECS log from another machine: mirror it, verify it, cosign its
    /// checkpoints (and submit them with --submit). Exit status 3 and an evidence-*
    /// folder in the state folder when the log is inconsistent.
    Witness(WitnessArgs),
    /// The transparency log (section 6e of the contract).
    Log {
        #[command(subcommand)]
        what: LogCmd,
    },
    /// Continuous replication to S3 by Litestream (section 10 of the contract).
    Replication {
        #[command(subcommand)]
        what: ReplicationCmd,
    },
    /// Restores the database from this box's replica (or --box-id's) into the configured
    /// database path, which must not exist, then checks it.
    Restore {
        /// Restore from the replica in S3 (the only source there is).
        #[arg(long, required = true)]
        from_replica: bool,
        /// Whose replica: another box's id (default: replication.box_id).
        #[arg(long)]
        box_id: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum ReplicationCmd {
    /// Prints the Litestream configuration generated from ufrecs.toml.
    Config,
    /// Writes that configuration beside the database and runs `litestream replicate`
    /// with the replication key (what the ufrecs-replicate unit runs).
    Run,
    /// Exit status 0 when replication.enabled is true, 1 otherwise (the unit's
    /// ExecCondition: without replication, Litestream is not started).
    Enabled,
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WitnessArgs {
    #[command(subcommand)]
    cmd: Option<WitnessCmd>,
    /// The log's base URL (https://observe.example.org).
    #[arg(long)]
    log: Option<String>,
    /// The log's verifier key, as `ufrecs log vkey` prints it.
    #[arg(long)]
    vkey: Option<String>,
    /// This witness's signer key file (`ufrecs witness keygen`).
    #[arg(long)]
    key: Option<PathBuf>,
    /// The folder where the witness keeps its verified mirror and its state.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Repeat every SECS seconds instead of one pass.
    #[arg(long)]
    every: Option<u64>,
    /// Post each cosignature to the log (POST /log/cosignature).
    #[arg(long)]
    submit: bool,
}

#[derive(Subcommand)]
pub enum WitnessCmd {
    /// Creates a witness key (mode 0600) and prints its verifier key, for the log's
    /// operator to add to log.witnesses.
    Keygen {
        #[arg(long)]
        name: String,
        #[arg(long)]
        key: PathBuf,
    },
    /// Checks a witness's evidence offline: exit 0 when it proves misbehaviour by the
    /// holder of VKEY, 1 otherwise.
    VerifyEvidence {
        #[arg(long)]
        vkey: String,
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum LogCmd {
    /// Prints the log's note verifier key (what witnesses and verifiers pin).
    Vkey,
    /// Writes the latest checkpoint and every tile it covers to DIR (the C2SP tlog-tiles
    /// layout), for a static mirror; full tiles already there are kept.
    Export { dir: PathBuf },
}

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// The server to drive (http on a loopback address).
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
    /// Offices, taken from the directory among those without data (1-5000).
    #[arg(long, default_value_t = 20)]
    offices: usize,
    /// Voters per office (1-2000).
    #[arg(long, default_value_t = 60)]
    voters: usize,
    /// How long the voting lasts (1-3600 s); the count follows at full speed.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Public readers polling stats and results.
    #[arg(long, default_value_t = 20)]
    readers: usize,
    /// Share of voters who verify their vote over the WebSocket (0-1).
    #[arg(long, default_value_t = 0.2)]
    verify_share: f64,
    /// The seed the day is drawn from.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// With the admin token, each office's first reporter is enrolled as official.
    #[arg(long)]
    admin_token: Option<String>,
}

#[derive(Subcommand)]
pub enum SourceCmd {
    /// Create a source.
    Add {
        elector_id: String,
        /// unverified, independent, official or political_party.
        #[arg(long, default_value = "unverified")]
        status: String,
        #[arg(long)]
        full_name: Option<String>,
        #[arg(long)]
        org: Option<String>,
    },
    /// Change a source's status (re-weighs the offices it reports at).
    SetStatus { elector_id: String, status: String },
    /// Set a source's password, read from standard input (revokes its tokens).
    SetPassword { elector_id: String },
}

#[derive(Subcommand)]
pub enum ImportKind {
    /// identifier,name,country,state,region,city,county,district,voters_count
    PollOffices { file: PathBuf },
    /// identifier,party_name,candidate_name
    Parties { file: PathBuf },
}

/// Parses the arguments. `--help` and `--version` print and give exit status 0; a usage
/// mistake gives one line on standard error and exit status 2.
pub fn parse<I, T>(args: I) -> Result<Cli, i32>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    Cli::try_parse_from(args).map_err(|e| {
        if !e.use_stderr() {
            let _ = e.print();
            return 0;
        }
        // clap's message runs to the first blank line (then comes its usage block).
        let text = e.to_string();
        let message: Vec<&str> = text.lines().map(str::trim).take_while(|l| !l.is_empty()).collect();
        eprintln!("ufrecs: {} (see ufrecs --help)", message.join(" ").trim_start_matches("error: "));
        2
    })
}

/// Runs the command line; returns the process exit status.
pub fn run(cli: Cli) -> i32 {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let settings = match config::load(cli.config.as_deref(), &env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ufrecs: configuration: {e}");
            return 2;
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
        Command::Backup { file, s3 } => report(backup(&settings, file, s3)),
        Command::Check => report(existing_database(&settings).and_then(crate::check::check)),
        Command::Import { what } => report(import(&settings, what)),
        Command::Source { what } => report(source(&settings, what)),
        Command::Witness(w) => witness(w),
        Command::Log { what: LogCmd::Vkey } => report(log_vkey(&settings)),
        Command::Log { what: LogCmd::Export { dir } } => {
            report(existing_database(&settings).and_then(|db| crate::mirror::export(db, &dir)))
        }
        Command::Replication { what: ReplicationCmd::Config } => {
            report(crate::replication::litestream_config(&settings, &settings.replication.box_id))
        }
        Command::Replication { what: ReplicationCmd::Run } => report(crate::replication::run(&settings)),
        Command::Replication { what: ReplicationCmd::Enabled } => report(if settings.replication.enabled {
            Ok("replication is enabled".into())
        } else {
            Err("replication is not enabled (replication.enabled = false)".into())
        }),
        Command::Restore { from_replica: _, box_id } => {
            report(crate::replication::restore(&settings, box_id.as_deref()))
        }
        Command::Simulate(a) => report(crate::simulate::run(crate::simulate::Options {
            url: a.url,
            offices: a.offices,
            voters: a.voters,
            seconds: a.seconds,
            readers: a.readers,
            verify_share: a.verify_share,
            seed: a.seed,
            admin_token: a.admin_token,
        })),
    }
}

fn witness(w: WitnessArgs) -> i32 {
    match w.cmd {
        Some(WitnessCmd::Keygen { name, key }) => report(crate::witness::keygen(&name, &key)),
        Some(WitnessCmd::VerifyEvidence { vkey, dir }) => crate::witness::verify_evidence(&vkey, &dir),
        None => match (w.log, w.vkey, w.key, w.state) {
            (Some(log), Some(vkey), Some(key), Some(state)) => {
                crate::witness::run(crate::witness::Options { log, vkey, key, state, every: w.every, submit: w.submit })
            }
            _ => report(Err("ufrecs witness needs --log URL --vkey VKEY --key FILE --state DIR".into())),
        },
    }
}

/// The verifier key of the log key `log.key_file` holds (the server creates it).
fn log_vkey(settings: &config::Settings) -> Result<String, String> {
    let path = &settings.log.key_file;
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!("cannot read the log key {}: {e} (the server creates it at its first start)", path.display())
    })?;
    let key = crate::domain::note::LogKey::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(key.vkey().to_owned())
}

fn report(r: Result<String, String>) -> i32 {
    match r {
        Ok(msg) => {
            println!("{msg}");
            0
        }
        Err(e) => {
            eprintln!("ufrecs: {e}");
            1
        }
    }
}

/// A subcommand other than `serve` never creates a database: without the file, it says
/// where it looked and how to point it at the right one.
fn existing_database(settings: &config::Settings) -> Result<&std::path::Path, String> {
    let db = &settings.database.path;
    if db.exists() {
        return Ok(db);
    }
    let shown = std::path::absolute(db).unwrap_or_else(|_| db.clone());
    Err(format!(
        "no database at {} (only `ufrecs serve` creates one): give the server's configuration with --config (on an installed box: --config {})",
        shown.display(),
        config::SYSTEM_CONFIG
    ))
}

fn open_existing(settings: &config::Settings) -> Result<rusqlite::Connection, String> {
    store::open(existing_database(settings)?, settings.durability()).map_err(|e| e.to_string())
}

fn backup(settings: &config::Settings, file: Option<PathBuf>, to_s3: bool) -> Result<String, String> {
    let db = existing_database(settings)?;
    let now = SystemClock.now();
    let (path, scratch) = match file {
        Some(f) => (f, false),
        None if to_s3 => (crate::backup::scratch_path(db, now), true),
        None => return Err("name a FILE, or --s3".into()),
    };
    crate::backup::snapshot(db, &path)?;
    let mut done = format!("backup written to {}", path.display());
    if to_s3 {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        let uploaded = runtime.block_on(crate::backup::upload(&settings.s3, &path, now));
        if scratch {
            let _ = std::fs::remove_file(&path);
        }
        let key = uploaded?;
        done = if scratch {
            format!("backup uploaded to s3://{}/{key}", settings.s3.bucket)
        } else {
            format!("{done} and uploaded to s3://{}/{key}", settings.s3.bucket)
        };
    }
    Ok(done)
}

fn source(settings: &config::Settings, what: SourceCmd) -> Result<String, String> {
    use crate::domain::ids::ElectorId;
    use crate::domain::source::Status;
    let elector = |e: &str| ElectorId::parse(e).map_err(|m| format!("elector_id {m}"));
    let status = |s: &str| Status::parse(s).ok_or_else(|| format!("status {}", Status::EXPECTED));
    let name = |field: &str, v: Option<String>| {
        v.map(|t| crate::domain::source::name_text(&t).map_err(|m| format!("{field} {m}"))).transpose()
    };
    let op = match what {
        SourceCmd::Add { elector_id, status: st, full_name, org } => WriteOp::CreateSource {
            source: crate::domain::input::NewSource {
                elector_id: elector(&elector_id)?,
                status: status(&st)?,
                full_name: name("--full-name", full_name)?,
                official_org: name("--org", org)?,
                email: None,
                phone_number: None,
                password: None,
            },
            password_hash: None,
            actor: Actor::Cli,
        },
        SourceCmd::SetStatus { elector_id, status: st } => WriteOp::UpdateSource {
            elector_id: elector(&elector_id)?,
            update: store::ops::SourceUpdate { status: Some(status(&st)?), ..Default::default() },
            actor: Actor::Cli,
        },
        SourceCmd::SetPassword { elector_id } => {
            let elector_id = elector(&elector_id)?;
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map_err(|e| format!("reading the password: {e}"))?;
            let password = line.trim_end_matches(['\n', '\r']);
            if password.is_empty() || password.chars().count() > crate::domain::input::PASSWORD_MAX {
                return Err("give the password (1 to 1024 characters) on standard input".into());
            }
            let hash = crate::auth::password::hash_now(password);
            WriteOp::UpdateSource {
                elector_id,
                update: store::ops::SourceUpdate { password_hash: Some(hash), ..Default::default() },
                actor: Actor::Cli,
            }
        }
    };
    let mut conn = open_existing(settings)?;
    match store::writer::apply_now(&mut conn, &op, SystemClock.now()).map(Outcome::source) {
        Ok(s) => {
            Ok(format!("source-{}: {} ({}password)", s.n, s.status.as_str(), if s.has_password { "" } else { "no " }))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Parses the file, then writes it in one transaction, directly into the database (the
/// same operation the server's writer would apply; SQLite serialises the two writers).
fn import(settings: &config::Settings, what: ImportKind) -> Result<String, String> {
    let open = |file: &PathBuf| std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()));
    let (op, file) = match what {
        ImportKind::PollOffices { file } => {
            let rows =
                crate::import::parse_poll_offices(open(&file)?).map_err(|e| format!("{}: {e}", file.display()))?;
            (WriteOp::ImportPollOffices { rows, actor: Actor::Cli }, file)
        }
        ImportKind::Parties { file } => {
            let rows = crate::import::parse_parties(open(&file)?).map_err(|e| format!("{}: {e}", file.display()))?;
            (WriteOp::ImportParties { rows, actor: Actor::Cli }, file)
        }
    };
    let mut conn = open_existing(settings)?;
    let (created, updated) =
        store::writer::apply_now(&mut conn, &op, SystemClock.now()).map_err(|e| e.to_string())?.imported();
    Ok(format!("{}: {created} created, {updated} updated", file.display()))
}

fn serve(settings: config::Settings) -> i32 {
    log::info!("configuration: {settings:?}");
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ufrecs: cannot start the runtime: {e}");
            return 1;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(settings.listen_addr()).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("ufrecs: cannot listen on {}: {e}", settings.server.listen);
                return 1;
            }
        };
        let running = match crate::http::server::start(settings, Arc::new(SystemClock), listener).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("ufrecs: {e}");
                return 1;
            }
        };
        log::info!("listening on {}", running.addr);
        // Tests and scripts read this line to learn the port when listening on port 0.
        println!("listening on {}", running.addr);
        shutdown_signal().await;
        log::info!("shutting down");
        running.stop().await;
        0
    })
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}
