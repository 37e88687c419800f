//! The `portcullis` binary: command line, logging, signals and wiring. The
//! only crate that knows every other one.

mod assemble;
mod cluster;
mod console_view;
mod dev_certs;
mod idp_service;
mod logging;
mod metadata;
mod metadata_refresh;
mod password;
mod post_auth;
mod serve;
mod universal_logout;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A proxy allocates and frees many small buffers per request across
/// threads; mimalloc handles that pattern markedly better than glibc malloc
/// (measured with `benches/load.sh`). The `system-allocator` feature leaves
/// it out, so that heaptrack or valgrind, which see only malloc, can say
/// where memory goes.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "SAML access gateway and reverse proxy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gateway described by a configuration file.
    Run {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate a configuration file and print every problem with its location.
    Check {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Read a password on stdin and print its argon2id PHC hash.
    HashPassword,
    /// Write a development CA and a certificate for localhost / 127.0.0.1 / ::1.
    DevCerts {
        /// Directory to write ca.pem, localhost.pem and localhost-key.pem into.
        dir: PathBuf,
    },
}

/// Exit code for an invalid configuration, as `check` documents.
const EXIT_INVALID_CONFIG: u8 = 2;

/// `portcullis check`: the file, then everything it names (IdP files, SP
/// keys, metadata, JWKS, injected secrets), every problem printed.
fn check(path: &std::path::Path) -> ExitCode {
    let problems = match portcullis_config::load(path, &metadata::SamlMetadata) {
        Ok(config) => match assemble::build(&config) {
            Ok((files, _)) => {
                for note in assemble::notes(&config, files.as_ref()) {
                    println!("note: {note}");
                }
                println!(
                    "{}: ok ({} app{})",
                    path.display(),
                    config.apps.len(),
                    if config.apps.len() == 1 { "" } else { "s" }
                );
                return ExitCode::SUCCESS;
            }
            Err(problems) => portcullis_config::Problems {
                file: path.to_path_buf(),
                problems,
            },
        },
        Err(problems) => problems,
    };
    eprintln!("{problems}");
    eprintln!("{} problem(s) found", problems.problems.len());
    ExitCode::from(EXIT_INVALID_CONFIG)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Run { config } => match serve::run(&config) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("portcullis: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::HashPassword => match password::hash_from_stdin() {
            Ok(hash) => {
                println!("{hash}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("portcullis: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::DevCerts { dir } => match dev_certs::write(&dir) {
            Ok(written) => {
                for path in written {
                    println!("wrote {}", path.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("portcullis: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}
