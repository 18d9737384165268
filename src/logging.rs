//! Runtime logging: `--log FILE` and `--log-format text|json`, as runc writes them.
//!
//! containerd and Podman read the last `error` line of the log file to report why a
//! runtime call failed, so the JSON shape (`level`, `msg`, `time`) must match runc's.

use std::fs::{File, OpenOptions};
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
        Some(p) => Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| {
                    std::io::Error::new(e.kind(), format!("open log file {}: {e}", p.display()))
                })?,
        ),
        None => None,
    };
    if let Ok(mut l) = LOGGER.lock() {
        l.file = file;
        l.format = format;
        l.min = if debug { Level::Debug } else { Level::Info };
    }
    Ok(())
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
