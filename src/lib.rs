//! kraal: an OCI container runtime with runc's command line.
//!
//! The library holds the whole runtime; `main.rs` only parses the command line
//! and maps errors to exit codes.

pub mod capabilities;
pub mod cgroups;
pub mod cli;
pub mod container;
pub mod dbus;
pub mod defaults;
pub mod exec;
pub mod exeseal;
pub mod failpoint;
pub mod features;
pub mod fs;
pub mod hooks;
pub mod logging;
pub mod mounts;
pub mod namespaces;
pub mod netdev;
pub mod notify;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod signals;
pub mod state;
pub mod sys;
pub mod timefmt;
pub mod tmpcopyup;
pub mod tty;
pub mod validate;

/// The runtime-spec version kraal implements.
pub const OCI_VERSION: &str = "1.3.0";
