//! The command line, with runc's command names, flags and exit codes; each handler
//! is a thin call into `container`.

pub mod cgroups;

use crate::container::{self, CreateOpts};
use crate::logging;
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "kraal",
    about = "Run OCI containers (runc-compatible command line)",
    disable_version_flag = true
)]
pub struct Cli {
    /// Root directory for container state.
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Write log messages to this file instead of stderr.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Log format.
    #[arg(long = "log-format", value_enum, default_value = "text")]
    pub log_format: logging::Format,
    /// Log debug messages.
    #[arg(long)]
    pub debug: bool,
    /// Use systemd to manage cgroups (cgroupsPath as slice:prefix:name).
    #[arg(long = "systemd-cgroup")]
    pub systemd_cgroup: bool,
    /// Rootless mode: auto, true or false.
    #[arg(long, value_parser = ["auto", "true", "false"], default_value = "auto")]
    pub rootless: String,
    /// Path to criu (accepted for runc compatibility; checkpointing is not supported).
    #[arg(long, hide = true)]
    pub criu: Option<PathBuf>,
    /// Print version information.
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// Path to the bundle directory (holding config.json).
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// File to write the container init's pid to.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master of a terminal container.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Pass this many extra fds (from 3 on) to the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Use MS_MOVE and chroot instead of pivot_root.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring for the container.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Container id.
    pub id: String,
}

impl CreateArgs {
    fn opts(&self) -> CreateOpts {
        CreateOpts {
            id: self.id.clone(),
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            preserve_fds: self.preserve_fds,
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
            foreground: false,
            rootless: false,
            systemd_cgroup: false,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct ExecArgs {
    /// process.json describing the process (instead of a command).
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Working directory inside the container.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (repeatable).
    #[arg(short = 'e', long)]
    pub env: Vec<String>,
    /// uid[:gid] to run as.
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Additional gids (repeatable).
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Add a capability (repeatable).
    #[arg(short = 'c', long = "cap")]
    pub caps: Vec<String>,
    /// Set no_new_privs for the process (`--no-new-privs=false` clears the
    /// container's setting, as with runc).
    #[arg(long = "no-new-privs", num_args = 0..=1, require_equals = true,
          default_missing_value = "true")]
    pub no_new_privs: Option<bool>,
    /// AppArmor profile for the process.
    #[arg(long)]
    pub apparmor: Option<String>,
    /// SELinux label for the process.
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// Do not wait for the process.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// File to write the process's pid to.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Pass this many extra fds (from 3 on) to the process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Allow exec in a paused container.
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// Run in this sub-cgroup of the container: `path`, or `controller[,controller]:path`
    /// for v1 hierarchies (repeatable).
    #[arg(long)]
    pub cgroup: Vec<String>,
    /// Container id.
    pub id: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container (its process waits for `start`).
    Create(CreateArgs),
    /// Start the user process of a created container.
    Start { id: String },
    /// Create and start a container, and wait for it.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Do not wait for the container; return once it started.
        #[arg(short = 'd', long)]
        detach: bool,
        /// Keep the container's state after it exits.
        #[arg(long)]
        keep: bool,
    },
    /// Run a new process in a running container.
    Exec(Box<ExecArgs>),
    /// Print the state of a container as JSON.
    State { id: String },
    /// Send a signal to a container's init (default SIGTERM).
    Kill {
        /// Send the signal to every process in the container.
        #[arg(short = 'a', long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container and everything it holds.
    Delete {
        /// Kill the container first if it is running.
        #[arg(short = 'f', long)]
        force: bool,
        id: String,
    },
    /// List containers.
    #[command(alias = "ps-all")]
    List {
        /// Output format: table or json.
        #[arg(short = 'f', long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        /// Print only the container ids.
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Write a default config.json.
    Spec {
        /// Directory to write config.json into.
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
        /// Write a config for a rootless container.
        #[arg(long = "rootless", id = "spec_rootless")]
        rootless: bool,
    },
    /// Print the features this build of kraal supports, as JSON.
    Features,
    /// Change the resource limits of a running container.
    Update(Box<cgroups::UpdateArgs>),
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Print resource statistics and OOM events of a container.
    Events(cgroups::EventsArgs),
    /// List the processes of a container.
    Ps(cgroups::PsArgs),
}

fn version() -> String {
    format!(
        "kraal version {}\ncommit: {}\nspec: {}\nlibseccomp: {}\n",
        env!("CARGO_PKG_VERSION"),
        env!("KRAAL_COMMIT"),
        crate::OCI_VERSION,
        libseccomp::ScmpVersion::current()
            .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
            .unwrap_or_else(|e| format!("unavailable ({e})")),
    )
}

/// Runs the command; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32> {
    if cli.version {
        print!("{}", version());
        return Ok(0);
    }
    let rootless = match cli.rootless.as_str() {
        "true" => true,
        "false" => false,
        _ => !nix::unistd::geteuid().is_root(),
    };
    let Some(cmd) = cli.command else {
        use clap::CommandFactory;
        Cli::command().print_help().context("print help")?;
        return Ok(0);
    };
    // Checked (and made) only for the commands that keep state in it.
    let root = if matches!(cmd, Command::Spec { .. } | Command::Features) {
        PathBuf::new()
    } else {
        let creates = matches!(cmd, Command::Create(_) | Command::Run { .. });
        crate::state::prepare_root(cli.root.as_deref(), creates)?
    };
    // The commands that fork into a container run from an image of kraal that
    // nothing can write (CVE-2019-5736); the others stay cheap. The state root, made
    // above for create and run, is the overlay's spare layer.
    if matches!(
        cmd,
        Command::Create(_) | Command::Run { .. } | Command::Exec(_)
    ) {
        crate::exeseal::ensure_sealed(&root)?;
    }
    match cmd {
        Command::Create(a) => {
            container::create(
                &root,
                &CreateOpts {
                    rootless,
                    systemd_cgroup: cli.systemd_cgroup,
                    ..a.opts()
                },
            )?;
        }
        Command::Start { id } => container::start(&root, &id)?,
        Command::Run {
            create,
            detach,
            keep,
        } => {
            let o = CreateOpts {
                rootless,
                systemd_cgroup: cli.systemd_cgroup,
                ..create.opts()
            };
            return container::run(&root, &o, detach, keep);
        }
        Command::Exec(a) => {
            let a = *a;
            let o = crate::exec::ExecOpts {
                id: a.id,
                process_file: a.process,
                args: a.command,
                tty: a.tty,
                cwd: a.cwd,
                env: a.env,
                user: a.user,
                additional_gids: a.additional_gids,
                caps: a.caps,
                no_new_privs: a.no_new_privs,
                apparmor: a.apparmor,
                process_label: a.process_label,
                detach: a.detach,
                pid_file: a.pid_file,
                console_socket: a.console_socket,
                preserve_fds: a.preserve_fds,
                ignore_paused: a.ignore_paused,
                cgroup: a.cgroup,
            };
            return crate::exec::exec(&root, &o);
        }
        Command::State { id } => {
            let r = container::state(&root, &id)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&r).context("encode state")?
            );
        }
        Command::Kill { all, id, signal } => {
            let sig = crate::signals::parse(&signal)?;
            container::kill(&root, &id, sig, all)?;
        }
        Command::Delete { force, id } => container::delete(&root, &id, force)?,
        Command::List { format, quiet } => {
            let rows = container::list(&root)?;
            if quiet {
                for r in &rows {
                    println!("{}", r.id);
                }
            } else if format == "json" {
                // runc encodes an empty list as null.
                if rows.is_empty() {
                    println!("null");
                } else {
                    println!("{}", serde_json::to_string(&rows).context("encode list")?);
                }
            } else {
                print!("{}", container::format_table(&rows));
            }
        }
        Command::Spec { bundle, rootless } => container::write_spec(&bundle, rootless)?,
        Command::Update(a) => cgroups::update(&root, &a)?,
        Command::Pause { id } => cgroups::pause(&root, &id)?,
        Command::Resume { id } => cgroups::resume(&root, &id)?,
        Command::Events(a) => cgroups::events(&root, &a)?,
        Command::Ps(a) => cgroups::ps(&root, &a)?,
        Command::Features => {
            let v = crate::features::features();
            println!(
                "{}",
                serde_json::to_string_pretty(&v).context("encode features")?
            );
        }
    }
    Ok(0)
}
