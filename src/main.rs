//! The `kraal` binary: parse the command line, set up logging, run, and map errors to
//! runc's exit codes (1 for a failed command; the container's status for `run`).

use clap::Parser;

fn main() {
    let cli = kraal::cli::Cli::parse();
    if let Err(e) = kraal::logging::init(cli.log.as_deref(), cli.log_format, cli.debug) {
        eprintln!("kraal: {e}");
        std::process::exit(1);
    }
    match kraal::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let msg = format!("{e:#}");
            kraal::logging::error(&msg);
            // Like runc: the error also reaches stderr unless the log already went there.
            if kraal::logging::to_file() {
                eprintln!("kraal: {msg}");
            }
            std::process::exit(1);
        }
    }
}
