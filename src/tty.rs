//! Terminals: allocating a pty inside the container, handing its master to the
//! caller over `--console-socket` (SCM_RIGHTS, as runc does, which conmon and
//! containerd's shim rely on), and proxying it to kraal's own terminal otherwise.

use anyhow::{bail, Context, Result};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// Sends `fd` over a unix socket with `payload` as the message bytes.
pub fn send_fd(sock: BorrowedFd, fd: BorrowedFd, payload: &[u8]) -> std::io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut _,
        iov_len: payload.len(),
    };
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut RawFd, fd.as_raw_fd());
    }
    if unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Receives one fd (and the message bytes) sent by `send_fd`.
pub fn recv_fd(sock: BorrowedFd) -> std::io::Result<(OwnedFd, Vec<u8>)> {
    let mut buf = vec![0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let c = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    if c.is_null() || unsafe { (*c).cmsg_type } != libc::SCM_RIGHTS {
        return Err(std::io::Error::other("no file descriptor in the message"));
    }
    let fd = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const RawFd) };
    buf.truncate(n as usize);
    Ok((unsafe { OwnedFd::from_raw_fd(fd) }, buf))
}

/// Connects to the caller's `--console-socket` (done by the runtime, on the host).
pub fn connect_console_socket(path: &Path) -> Result<OwnedFd> {
    use std::os::unix::net::UnixStream;
    let s = UnixStream::connect(path)
        .with_context(|| format!("--console-socket: connect {}", path.display()))?;
    Ok(OwnedFd::from(s))
}

/// A new pty from the devpts instance at `ptmx`; returns (master, slave).
pub fn open_pty(ptmx: &std::ffi::CStr) -> Result<(OwnedFd, OwnedFd)> {
    let m = unsafe {
        libc::open(
            ptmx.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if m < 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("open {}", ptmx.to_string_lossy()));
    }
    let master = unsafe { OwnedFd::from_raw_fd(m) };
    let unlock: libc::c_int = 0;
    if unsafe { libc::ioctl(m, libc::TIOCSPTLCK, &unlock) } != 0 {
        return Err(std::io::Error::last_os_error()).context("unlock pty");
    }
    // TIOCGPTPEER opens the slave through the master, with no path lookup to race.
    let s = unsafe {
        libc::ioctl(
            m,
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if s < 0 {
        return Err(std::io::Error::last_os_error()).context("open pty slave");
    }
    Ok((master, unsafe { OwnedFd::from_raw_fd(s) }))
}

pub fn set_size(fd: BorrowedFd, rows: u16, cols: u16) -> Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(std::io::Error::last_os_error()).context("process.consoleSize: TIOCSWINSZ");
    }
    Ok(())
}

/// Makes `slave` the controlling terminal and stdio of the calling process.
pub fn become_session_leader(slave: BorrowedFd) -> Result<()> {
    if unsafe { libc::setsid() } < 0 {
        return Err(std::io::Error::last_os_error()).context("setsid");
    }
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).context("TIOCSCTTY");
    }
    for target in 0..3 {
        if unsafe { libc::dup2(slave.as_raw_fd(), target) } < 0 {
            return Err(std::io::Error::last_os_error()).context("dup2 pty onto stdio");
        }
    }
    Ok(())
}

/// Copies between kraal's stdin/stdout and the pty master until the container's
/// process exits; puts kraal's terminal in raw mode and forwards window sizes.
pub struct Proxy {
    master: OwnedFd,
    saved: Option<libc::termios>,
}

impl Proxy {
    pub fn new(master: OwnedFd) -> Proxy {
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        let saved = if unsafe { libc::tcgetattr(0, &mut t) } == 0 {
            let mut raw = t;
            unsafe { libc::cfmakeraw(&mut raw) };
            unsafe { libc::tcsetattr(0, libc::TCSANOW, &raw) };
            Some(t)
        } else {
            None
        };
        let p = Proxy { master, saved };
        p.resize();
        p
    }

    pub fn fd(&self) -> RawFd {
        self.master.as_raw_fd()
    }

    /// Copies kraal's window size to the pty.
    pub fn resize(&self) {
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        if unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } == 0 {
            unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        }
    }

    /// Moves whatever is ready; returns false once the pty side has closed.
    pub fn pump(&self, stdin_open: &mut bool) -> bool {
        let mut fds = [
            libc::pollfd {
                fd: self.master.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if *stdin_open { 0 } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, 50) } <= 0 {
            return true;
        }
        let mut buf = [0u8; 8192];
        if fds[0].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            let n =
                unsafe { libc::read(self.master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return false;
            }
            write_all(1, &buf[..n as usize]);
        }
        if fds[1].revents & (libc::POLLIN | libc::POLLHUP) != 0 {
            let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                *stdin_open = false;
            } else {
                write_all(self.master.as_raw_fd(), &buf[..n as usize]);
            }
        }
        true
    }

    /// Copies what is left in the pty after the process exited. Bounded: without a
    /// pid namespace, a process that outlives the init may keep writing to the pty
    /// forever, and `run` (and the delete after it) must still return. What the init
    /// wrote before it exited sits in front of anything written later, and the kernel
    /// holds at most DRAIN_LIMIT bytes between the pty's slave and this reader, so
    /// reading that many (or until nothing is left) copies all of the init's output.
    pub fn drain(&self) {
        let mut buf = [0u8; 8192];
        let mut left = DRAIN_LIMIT;
        while left > 0 {
            let mut p = libc::pollfd {
                fd: self.master.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            if unsafe { libc::poll(&mut p, 1, 0) } <= 0 || p.revents & libc::POLLIN == 0 {
                return;
            }
            let want = buf.len().min(left);
            let n = unsafe { libc::read(self.master.as_raw_fd(), buf.as_mut_ptr().cast(), want) };
            if n <= 0 {
                return;
            }
            write_all(1, &buf[..n as usize]);
            left -= n as usize;
        }
    }
}

/// More than the kernel can hold between a pty's slave and its master's reader:
/// n_tty's 4 KiB read buffer plus the tty layer's flip buffers, capped at 640 KiB
/// per port (the kernel's TTYB_DEFAULT_MEM_LIMIT).
const DRAIN_LIMIT: usize = 1 << 20;

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(t) = self.saved {
            unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
        }
    }
}

fn write_all(fd: RawFd, mut b: &[u8]) {
    while !b.is_empty() {
        let n = unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) };
        if n <= 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        b = &b[n as usize..];
    }
}

/// runc's rules for combining terminal, detach and --console-socket.
pub fn check_flags(terminal: bool, detach: bool, console_socket: bool) -> Result<()> {
    if terminal && detach && !console_socket {
        bail!("--console-socket: required when process.terminal is true and the container is detached");
    }
    if console_socket && !terminal {
        bail!("--console-socket: given but process.terminal is false");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn fd_passing_roundtrip() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let f = std::fs::File::open("/dev/null").unwrap();
        send_fd(a.as_fd(), f.as_fd(), b"pty").unwrap();
        let (got, payload) = recv_fd(b.as_fd()).unwrap();
        assert_eq!(payload, b"pty");
        let p = std::fs::read_link(format!("/proc/self/fd/{}", got.as_raw_fd())).unwrap();
        assert_eq!(p, std::path::PathBuf::from("/dev/null"));
    }

    #[test]
    fn pty_pair_talks() {
        let (m, s) = open_pty(c"/dev/ptmx").unwrap();
        set_size(m.as_fd(), 30, 100).unwrap();
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        unsafe { libc::ioctl(s.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
        assert_eq!((ws.ws_row, ws.ws_col), (30, 100));
        write_all(s.as_raw_fd(), b"x");
        let mut b = [0u8; 1];
        assert_eq!(
            unsafe { libc::read(m.as_raw_fd(), b.as_mut_ptr().cast(), 1) },
            1
        );
        assert_eq!(&b, b"x");
    }

    #[test]
    fn flag_rules() {
        assert!(check_flags(true, true, false).is_err());
        assert!(check_flags(false, false, true).is_err());
        check_flags(true, false, false).unwrap();
        check_flags(true, true, true).unwrap();
    }
}
