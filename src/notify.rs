//! sd_notify passthrough (NOTIFY_SOCKET), as runc does it: `create` bind-mounts a
//! directory of the state dir into the container at /run/notify and points the
//! container's NOTIFY_SOCKET there; `start` listens on it, waits for READY=1 and
//! tells the NOTIFY_SOCKET of its own environment (as runc's `start`), with MAINPID
//! set to the container's init. A container that exits before READY=1 ends the
//! wait without an error, as with runc. Unlike runc's socket (0777 in a directory
//! any local user can search), the directory here lets in only kraal and the
//! container's process user.

use anyhow::{Context, Result};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const IN_CONTAINER_DIR: &str = "/run/notify";
const SOCKET: &str = "notify.sock";

/// The caller's notify socket, if it asked for readiness notification.
pub fn host_socket() -> Option<PathBuf> {
    std::env::var_os("NOTIFY_SOCKET")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
}

/// The host-side directory holding the container's notify socket.
pub fn state_dir(container_dir: &Path) -> PathBuf {
    container_dir.join("notify")
}

/// The mount and env entry the container gets. The directory is reachable only by
/// kraal and by `owner`, the host ids of the container's `process.user` (the user
/// that sends READY=1): any other local user who could reach the socket could send
/// READY=1 for the container. Without a `process` it stays kraal's.
pub fn container_mount(
    container_dir: &Path,
    owner: Option<(u32, u32)>,
) -> Result<oci_spec::runtime::Mount> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = state_dir(container_dir);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("create {}", dir.display()))?;
    let d = std::fs::File::open(&dir).with_context(|| format!("open {}", dir.display()))?;
    use std::os::unix::fs::PermissionsExt;
    // DirBuilder's mode is cut by the umask: set it whole.
    d.set_permissions(std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod {}", dir.display()))?;
    if let Some((uid, gid)) = owner {
        crate::container::give_to(std::os::fd::AsFd::as_fd(&d), &dir, uid, gid)?;
    }
    let m = serde_json::json!({
        "destination": IN_CONTAINER_DIR,
        "type": "bind",
        "source": dir,
        "options": ["bind", "nosuid", "noexec", "nodev", "ro"],
    });
    serde_json::from_value(m).context("notify socket mount")
}

pub fn container_env() -> String {
    format!("NOTIFY_SOCKET={IN_CONTAINER_DIR}/{SOCKET}")
}

/// Bound before the init is released, so the container can always reach it.
pub fn listen(container_dir: &Path) -> Result<UnixDatagram> {
    let dir = state_dir(container_dir);
    let p = dir.join(SOCKET);
    let _ = std::fs::remove_file(&p);
    // A long state root would not fit sun_path: bind through the directory's fd.
    let d = std::fs::File::open(&dir).with_context(|| format!("open {}", dir.display()))?;
    let short = format!(
        "/proc/self/fd/{}/{SOCKET}",
        std::os::fd::AsRawFd::as_raw_fd(&d)
    );
    // The socket is made 0777 by bind itself (umask 0, restored at once), so that
    // whatever uid the container's processes run as may send; the directory keeps
    // everyone else out. No chmod by name after the bind: the directory belongs to
    // the container's user, who could swap the name for a symlink by then.
    // SAFETY: umask only swaps the process's file-mode mask; kraal `start` is single
    // threaded here, so no other thread creates files meanwhile.
    let old = unsafe { libc::umask(0) };
    let s = UnixDatagram::bind(&short);
    // SAFETY: as above; restores the caller's mask.
    unsafe { libc::umask(old) };
    let s = s.with_context(|| format!("bind {}", p.display()))?;
    Ok(s)
}

/// Waits for READY=1 from the container (while `alive` says the init runs), then
/// forwards readiness to `host` with the init's pid. When the init exits first,
/// nothing is forwarded and the wait ends without an error (runc's notifySocket.run
/// does the same: `start` reports success and the caller sees the exit).
pub fn wait_ready(
    sock: &UnixDatagram,
    host: &Path,
    pid: i32,
    alive: impl Fn() -> bool,
) -> Result<()> {
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .context("notify socket timeout")?;
    let mut buf = vec![0u8; 4096];
    loop {
        match sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]);
                if msg.lines().any(|l| l.trim() == "READY=1") {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if !alive() {
                    crate::logging::debug(
                        "NOTIFY_SOCKET: the container exited before it reported READY=1",
                    );
                    return Ok(());
                }
            }
            Err(e) => return Err(e).context("read the container's notify socket"),
        }
    }
    let out = UnixDatagram::unbound().context("notify socket")?;
    out.send_to(format!("READY=1\nMAINPID={pid}\n").as_bytes(), host)
        .with_context(|| format!("NOTIFY_SOCKET {}: send READY=1", host.display()))?;
    Ok(())
}
