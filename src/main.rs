use clap::Parser;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::new().filter_or("UFRECS_LOG", "info")).init();
    // A file-size limit must fail a write (and so answer 503), not kill the server.
    // SAFETY: setting a signal's disposition to ignore before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    std::process::exit(ufrecs::cli::run(ufrecs::cli::Cli::parse()));
}
