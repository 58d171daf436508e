use clap::Parser;

fn main() -> std::process::ExitCode {
    // Before anything else: to `serve`, SIGHUP means "reload", and one sent
    // while the process starts must not end it (its default action).
    if invoked_as_serve() {
        statusmotd::serve::catch_sighup();
    }
    let cli = statusmotd::cli::Cli::parse();
    std::process::ExitCode::from(statusmotd::run(&cli))
}

/// Whether the subcommand is `serve`: the first argument that is not an
/// option (the only options before a subcommand are flags such as `-v`).
fn invoked_as_serve() -> bool {
    std::env::args_os()
        .skip(1)
        .find(|a| !a.as_encoded_bytes().starts_with(b"-"))
        .is_some_and(|a| a == "serve")
}
