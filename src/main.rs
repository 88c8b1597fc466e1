fn main() {
    env_logger::Builder::from_env(env_logger::Env::new().filter_or("UFRECS_LOG", "info")).init();
    // A file-size limit must fail a write (and so answer 503), not kill the server.
    // SAFETY: setting a signal's disposition to ignore before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let status = match ufrecs::cli::parse(std::env::args_os()) {
        Ok(cli) => ufrecs::cli::run(cli),
        Err(status) => status,
    };
    std::process::exit(status);
}
