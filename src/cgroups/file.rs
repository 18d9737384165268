//! Reading and writing cgroupfs control files, with errors that name the file and
//! the value, and keep the errno reachable (callers retry on EINVAL or explain EBUSY).

use anyhow::{anyhow, Context, Result};
use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// Writes `value` to `dir/file` in one write(2), as cgroupfs expects. O_TRUNC is
/// ignored by cgroupfs (as for a shell's `>`) and keeps fake files in tests exact.
pub fn write_raw(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(dir.join(file))?;
    f.write_all(value.as_bytes())
}

pub fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    write_raw(dir, file, value)
        .with_context(|| format!("write {value:?} to {}", dir.join(file).display()))
}

/// The errno of the io::Error at the bottom of an error chain, if any.
pub fn errno(e: &anyhow::Error) -> Option<i32> {
    e.chain()
        .find_map(|c| c.downcast_ref::<io::Error>())
        .and_then(|e| e.raw_os_error())
}

pub fn exists(dir: &Path, file: &str) -> bool {
    dir.join(file).exists()
}

pub fn read(dir: &Path, file: &str) -> Result<String> {
    let p = dir.join(file);
    fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))
}

/// Reads a single number; `max` (v2) reads as u64::MAX.
pub fn read_u64(dir: &Path, file: &str) -> Result<u64> {
    let s = read(dir, file)?;
    parse_u64(s.trim()).ok_or_else(|| {
        anyhow!(
            "{}: {:?} is not a number",
            dir.join(file).display(),
            s.trim()
        )
    })
}

pub fn parse_u64(s: &str) -> Option<u64> {
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

/// The value of `key` in a flat-keyed file (`memory.stat`, `memory.events`, `cpu.stat`).
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| parse_u64(v.trim())).flatten()
    })
}

/// Reads a flat-keyed file as (key, value) pairs, skipping lines that are not numbers.
pub fn keyed_all(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), parse_u64(v.trim())?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_files() {
        let t = "oom 0\noom_kill 3\nmax max\n";
        assert_eq!(keyed(t, "oom_kill"), Some(3));
        assert_eq!(keyed(t, "oom"), Some(0));
        assert_eq!(keyed(t, "max"), Some(u64::MAX));
        assert_eq!(keyed(t, "nope"), None);
        assert_eq!(keyed_all(t).len(), 3);
    }

    #[test]
    fn errno_survives_context() {
        let dir = std::env::temp_dir().join(format!("kraal-file-test-{}", std::process::id()));
        let e = write(&dir, "missing", "1").unwrap_err();
        assert_eq!(errno(&e), Some(libc::ENOENT));
        assert!(format!("{e:#}").contains("missing"), "{e:#}");
    }
}
