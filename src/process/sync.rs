//! The runtime <-> init protocol over a SOCK_SEQPACKET socketpair.
//!
//! | from    | message       | meaning                                                   |
//! |---------|---------------|-----------------------------------------------------------|
//! | runtime | `Go`          | cgroups joined, id maps written, net devices moved        |
//! | init    | `Pid(p)`      | the namespaces needed a second fork; `p` is the real init |
//! | init    | `CreateHooks` | namespaces and mounts are ready: run createRuntime hooks  |
//! | runtime | `HooksDone(s)`| createRuntime hooks succeeded; `s` is the state for hooks |
//! | init    | `Ready`       | set up, now blocked on exec.fifo until `start`            |
//! | init    | `Error(text)` | setup failed; the text is the whole error chain           |
//! | init    | `Pty` + fd    | the pty master, for a foreground `run`/`exec` to proxy    |
//! | init    | `Seccomp` + fd| the seccomp notify listener, for the runtime to hand over |
//!
//! One message per datagram, so a message is never split or merged.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    Go,
    Pid(i32),
    CreateHooks,
    HooksDone(Vec<u8>),
    Ready,
    Error(String),
    /// Carries an fd out of band (SCM_RIGHTS); `Channel::take_fd` returns it.
    Pty,
    /// Carries the seccomp notify listener fd out of band.
    Seccomp,
}

impl Msg {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Msg::Go => vec![1],
            Msg::Pid(p) => {
                let mut v = vec![2];
                v.extend_from_slice(&p.to_le_bytes());
                v
            }
            Msg::CreateHooks => vec![3],
            Msg::HooksDone(s) => {
                let mut v = vec![4];
                v.extend_from_slice(s);
                v
            }
            Msg::Ready => vec![5],
            Msg::Error(s) => {
                let mut v = vec![6];
                v.extend_from_slice(s.as_bytes());
                v
            }
            Msg::Pty => vec![7],
            Msg::Seccomp => vec![8],
        }
    }

    pub fn decode(b: &[u8]) -> io::Result<Msg> {
        let bad = || {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad sync message {b:?}"),
            )
        };
        Ok(match b.first().ok_or_else(bad)? {
            1 => Msg::Go,
            2 => Msg::Pid(i32::from_le_bytes(
                b.get(1..5).ok_or_else(bad)?.try_into().map_err(|_| bad())?,
            )),
            3 => Msg::CreateHooks,
            4 => Msg::HooksDone(b[1..].to_vec()),
            5 => Msg::Ready,
            6 => Msg::Error(String::from_utf8_lossy(&b[1..]).into_owned()),
            7 => Msg::Pty,
            8 => Msg::Seccomp,
            _ => return Err(bad()),
        })
    }

    fn name(&self) -> &'static str {
        match self {
            Msg::Go => "Go",
            Msg::Pid(_) => "Pid",
            Msg::CreateHooks => "CreateHooks",
            Msg::HooksDone(_) => "HooksDone",
            Msg::Ready => "Ready",
            Msg::Error(_) => "Error",
            Msg::Pty => "Pty",
            Msg::Seccomp => "Seccomp",
        }
    }
}

/// One end of the socketpair.
pub struct Channel {
    fd: OwnedFd,
    received: std::cell::RefCell<Option<OwnedFd>>,
}

impl Channel {
    pub fn pair() -> io::Result<(Channel, Channel)> {
        let mut fds = [0; 2];
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(unsafe {
            (
                Channel {
                    fd: OwnedFd::from_raw_fd(fds[0]),
                    received: Default::default(),
                },
                Channel {
                    fd: OwnedFd::from_raw_fd(fds[1]),
                    received: Default::default(),
                },
            )
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }

    pub fn send(&self, m: &Msg) -> io::Result<()> {
        let b = m.encode();
        loop {
            let r = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    b.as_ptr().cast(),
                    b.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            if r >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Sends `fd` with a `Pty` message.
    pub fn send_pty(&self, fd: BorrowedFd) -> io::Result<()> {
        crate::tty::send_fd(self.fd(), fd, &Msg::Pty.encode())
    }

    /// Sends the seccomp notify listener with a `Seccomp` message.
    pub fn send_seccomp(&self, fd: BorrowedFd) -> io::Result<()> {
        crate::tty::send_fd(self.fd(), fd, &Msg::Seccomp.encode())
    }

    /// The fd that came with the last message, if any.
    pub fn take_fd(&self) -> Option<OwnedFd> {
        self.received.borrow_mut().take()
    }

    /// Receives one message; `None` when the other end closed. An fd sent with it
    /// is kept for `take_fd` (a plain recv would silently close it).
    pub fn recv(&self) -> io::Result<Option<Msg>> {
        let mut buf = [0u8; 8192];
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
        let mut cbuf = [0u8; 64];
        loop {
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            let r = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
            if r > 0 {
                let c = unsafe { libc::CMSG_FIRSTHDR(&msg) };
                if !c.is_null() && unsafe { (*c).cmsg_type } == libc::SCM_RIGHTS {
                    let fd =
                        unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const RawFd) };
                    *self.received.borrow_mut() = Some(unsafe { OwnedFd::from_raw_fd(fd) });
                }
                return Msg::decode(&buf[..r as usize]).map(Some);
            }
            if r == 0 {
                return Ok(None);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Waits for `want`; any other message is an error naming both.
    pub fn expect(&self, want: &Msg) -> io::Result<()> {
        match self.recv()? {
            Some(ref m) if m == want => Ok(()),
            Some(m) => Err(io::Error::other(format!(
                "sync: expected {}, got {}",
                want.name(),
                m.name()
            ))),
            None => Err(io::Error::other(format!(
                "sync: expected {}, the other side exited",
                want.name()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let (a, b) = Channel::pair().unwrap();
        for m in [
            Msg::Go,
            Msg::Pid(4242),
            Msg::CreateHooks,
            Msg::HooksDone(b"{}".to_vec()),
            Msg::Ready,
            Msg::Error("mount /proc: EPERM".into()),
        ] {
            a.send(&m).unwrap();
            assert_eq!(b.recv().unwrap(), Some(m));
        }
        a.send(&Msg::Ready).unwrap();
        let e = b.expect(&Msg::Go).unwrap_err();
        assert_eq!(e.to_string(), "sync: expected Go, got Ready");
        drop(a);
        assert_eq!(b.recv().unwrap(), None);
    }
}
