//! Runtime logging: `--log FILE` and `--log-format text|json`, as runc writes them.
//!
//! containerd and Podman read the last `error` line of the log file to report why a
//! runtime call failed, so the JSON shape (`level`, `msg`, `time`) must match runc's.

use std::fs::File;
use std::io::Write;
use std::sync::Mutex;
use std::time::SystemTime;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warning",
            Level::Error => "error",
        }
    }
}

struct Logger {
    file: Option<File>,
    format: Format,
    min: Level,
}

// kraal is single-threaded; the mutex only satisfies `static` rules and is never contended.
static LOGGER: Mutex<Logger> = Mutex::new(Logger {
    file: None,
    format: Format::Text,
    min: Level::Warn,
});

/// Opens the log destination. Without a file, messages go to stderr.
pub fn init(path: Option<&std::path::Path>, format: Format, debug: bool) -> std::io::Result<()> {
    let file = match path {
        Some(p) => Some(open_log(p).map_err(|e| {
            std::io::Error::new(e.kind(), format!("open log file {}: {e}", p.display()))
        })?),
        None => None,
    };
    if let Ok(mut l) = LOGGER.lock() {
        l.file = file;
        l.format = format;
        l.min = if debug { Level::Debug } else { Level::Info };
    }
    Ok(())
}

/// Opens the `--log` file for appending. Every call of a container's life (create,
/// start, delete...) appends to the same file, so it cannot be created O_EXCL as
/// other files kraal writes in caller-chosen places are; instead the directory is
/// checked like theirs, a symlink at the path is refused (O_NOFOLLOW), and only a
/// regular file or a FIFO is accepted (O_NONBLOCK while opening, so a FIFO without
/// a reader fails instead of hanging kraal; blocking again for the writes).
fn open_log(p: &std::path::Path) -> std::io::Result<File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let other = |e: anyhow::Error| std::io::Error::other(format!("{e:#}"));
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let dir = crate::state::open_trusted_dir(parent, "--log").map_err(other)?;
    let name = p
        .file_name()
        .ok_or_else(|| std::io::Error::other("the path has no file name"))?;
    let name = crate::sys::cstr(std::path::Path::new(name))?;
    // Relative to the checked directory: the path is not looked up a second time.
    let f = File::from(crate::sys::openat(
        Some(std::os::fd::AsFd::as_fd(&dir)),
        &name,
        libc::O_WRONLY
            | libc::O_CREAT
            | libc::O_APPEND
            | libc::O_NOFOLLOW
            | libc::O_NONBLOCK
            | libc::O_NOCTTY,
        0o644,
    )?);
    let md = f.metadata()?;
    let t = md.file_type();
    if !t.is_file() && !t.is_fifo() {
        return Err(std::io::Error::other("not a regular file or a FIFO"));
    }
    // In a sticky shared directory another user may have made the file first: their
    // file would collect kraal's log lines, their FIFO could block every write.
    let euid = nix::unistd::geteuid().as_raw();
    if md.uid() != euid && md.uid() != 0 {
        return Err(std::io::Error::other(format!(
            "owned by uid {}, neither root nor uid {euid}",
            md.uid()
        )));
    }
    // SAFETY: F_GETFL/F_SETFL on the descriptor `f` owns.
    unsafe {
        let fl = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
        if fl < 0 || libc::fcntl(f.as_raw_fd(), libc::F_SETFL, fl & !libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(f)
}

/// True when log lines go to a file rather than stderr.
pub fn to_file() -> bool {
    LOGGER.lock().map(|l| l.file.is_some()).unwrap_or(false)
}

/// One log line, in the configured format.
pub fn render(format: Format, level: Level, msg: &str, now: SystemTime) -> String {
    let time = crate::timefmt::rfc3339(now);
    match format {
        Format::Json => {
            let v = serde_json::json!({"level": level.name(), "msg": msg, "time": time});
            format!("{v}\n")
        }
        Format::Text => format!(
            "time=\"{time}\" level={} msg={}\n",
            level.name(),
            serde_json::Value::String(msg.to_string())
        ),
    }
}

pub fn log(level: Level, msg: &str) {
    let Ok(mut l) = LOGGER.lock() else { return };
    if level < l.min {
        return;
    }
    let line = render(l.format, level, msg, SystemTime::now());
    match l.file.as_mut() {
        Some(f) => {
            let _ = f.write_all(line.as_bytes());
        }
        None => {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }
}

pub fn error(msg: &str) {
    log(Level::Error, msg)
}
pub fn warn(msg: &str) {
    log(Level::Warn, msg)
}
pub fn debug(msg: &str) {
    log(Level::Debug, msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn json_line_matches_runc_shape() {
        let line = render(Format::Json, Level::Error, "bad \"x\"", UNIX_EPOCH);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "bad \"x\"");
        assert_eq!(v["time"], "1970-01-01T00:00:00Z");
    }

    #[test]
    fn text_line_quotes_message() {
        let line = render(Format::Text, Level::Warn, "a b", UNIX_EPOCH);
        assert_eq!(
            line,
            "time=\"1970-01-01T00:00:00Z\" level=warning msg=\"a b\"\n"
        );
    }
}
