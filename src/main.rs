use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = statusmotd::cli::Cli::parse();
    std::process::ExitCode::from(statusmotd::run(&cli))
}
