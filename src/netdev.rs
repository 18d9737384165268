//! `linux.netDevices` (runtime-spec v1.3.0): moving existing host network interfaces
//! into a container's network namespace, over raw rtnetlink.
//!
//! The module owns the whole netlink conversation. Requests are built and replies
//! parsed by plain functions over byte buffers, so the wire format is unit-tested
//! without privileges; `Netlink` is the one small socket type that sends them and
//! turns kernel errors (with their extended-ack text) into `io::Error`s.
//!
//! Behaviour follows the spec and runc 1.3+:
//! - the move and the rename are one RTM_NEWLINK request (IFLA_NET_NS_FD plus
//!   IFLA_IFNAME); a `%d` template lets the kernel pick a free name;
//! - the kernel flushes addresses on a namespace change, so the permanent
//!   (IFA_F_PERMANENT) addresses of global scope are read before the move and
//!   added again inside; runc does the same, we also keep peer, broadcast, label,
//!   metric and the user-settable flags, which runc drops;
//! - the link is set up inside the container whatever its state was before, as
//!   the spec requires and runc does.
//!
//! Where kraal differs from runc on purpose. The kernel moves a link first and
//! renames it after, so a name already taken inside fails the request with the
//! link moved regardless, its addresses gone and its name unchanged: kraal checks
//! the name is free first, and whenever a step fails once the link has left the
//! host, it returns the link with its name, addresses and state. runc also sets
//! the host link down before moving it, so a failed move leaves it down; kraal
//! leaves it alone (a successful move closes the device anyway).
//!
//! Talking netlink inside the container's namespace needs a socket created there:
//! we `setns` this thread in, create the socket, and `setns` straight back. The
//! socket stays bound to the namespace it was created in, so nothing else runs
//! while the thread is away from home.

use std::fmt;
use std::fs::File;
use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;

use anyhow::{anyhow, bail, Context};
use nix::sched::{setns, CloneFlags};
use oci_spec::runtime::LinuxNetDevice;
use serde::{Deserialize, Serialize};

/// What kraal records about an interface it moved, so it can find it again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovedDevice {
    /// The interface's name on the host (the kernel's primary name, even when the
    /// config named it by an alternative name).
    pub host_name: String,
    /// The interface's name inside the container, with a `%d` template resolved.
    pub container_name: String,
}

/// Moves host interface `host_name` into the network namespace `netns` (an fd of
/// `/proc/<pid>/ns/net`), named `dev.name()` there if set, carrying its permanent
/// global addresses over and setting it up.
///
/// Called from the runtime's own network namespace. Either the interface ends up
/// configured in the container, or the call fails and the interface is on the
/// host as it was (the error says so when even that could not be done). The
/// returned record names the interface as the kernel knows it on both sides.
pub fn move_into(
    netns: BorrowedFd,
    host_name: &str,
    dev: &LinuxNetDevice,
) -> anyhow::Result<MovedDevice> {
    move_into_inner(netns, host_name, dev)
        .with_context(|| format!("linux.netDevices[{host_name:?}]"))
}

/// Returns a moved interface from the container's namespace `netns` to the
/// runtime's current network namespace, under its host name, with its permanent
/// global addresses and its up/down state.
///
/// runtime-spec v1.3.0 says a runtime MUST NOT move interfaces out before the
/// namespace is deleted (the kernel returns physical devices to the initial
/// namespace and destroys virtual ones), so this is for undoing a `create` that
/// fails after devices were moved, not for `delete`.
pub fn move_back(netns: BorrowedFd, moved: &MovedDevice) -> anyhow::Result<()> {
    move_back_inner(netns, moved)
        .with_context(|| format!("linux.netDevices[{:?}]", moved.host_name))
}

/// Checks an interface name the way the kernel's `dev_valid_name` does, plus the
/// `%d` template rule of `dev_alloc_name`, so a bad name fails before anything moves.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("interface name is empty".to_string());
    }
    if name.len() > MAX_IFNAME_LEN {
        return Err(format!(
            "interface name {name:?} is {} bytes long; the kernel allows at most {MAX_IFNAME_LEN}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("interface name {name:?} is reserved"));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| c == '/' || c == ':' || c == '\0' || c.is_whitespace())
    {
        return Err(format!("interface name {name:?} contains {c:?}"));
    }
    // The kernel tests whitespace byte by byte with a Latin-1 table, where 0xa0 is a
    // space; it occurs inside UTF-8 sequences such as "à".
    if name.bytes().any(|b| b == 0xa0) {
        return Err(format!(
            "interface name {name:?} contains byte 0xa0, which the kernel takes for whitespace"
        ));
    }
    if let Some(pos) = name.find('%') {
        if !name[pos..].starts_with("%d") || name[pos + 2..].contains('%') {
            return Err(format!(
                "interface name {name:?}: '%' may appear once, as the \"%d\" template"
            ));
        }
    }
    Ok(())
}

fn move_into_inner(
    netns: BorrowedFd,
    host_name: &str,
    dev: &LinuxNetDevice,
) -> anyhow::Result<MovedDevice> {
    validate_name(host_name)
        .map_err(anyhow::Error::msg)
        .context("invalid host interface name")?;
    // runc treats an empty name like a missing one: keep the host name.
    let wanted = match dev.name().as_deref() {
        Some(n) if !n.is_empty() => n,
        _ => host_name,
    };
    validate_name(wanted)
        .map_err(anyhow::Error::msg)
        .context("invalid name for the container")?;

    let home = thread_netns()?;
    if same_namespace(netns, home.as_fd())? {
        bail!(
            "the container shares the runtime's network namespace; netDevices need one of its own"
        );
    }
    let mut host = Netlink::open().context("open a netlink socket")?;
    let link = get_link(&mut host, LinkRef::Name(host_name)).context("look up host interface")?;
    let addrs = carried_addresses(&mut host, link.index)?;
    let mut inside = netlink_in(netns)?;

    let mut from = End {
        sock: &mut host,
        ns: home.as_fd(),
        what: "host network namespace",
    };
    let mut to = End {
        sock: &mut inside,
        ns: netns,
        what: "container network namespace",
    };
    ensure_name_free(&mut to, wanted)?;
    let moved = transfer(&mut from, &mut to, &link, &addrs, wanted, true)?;
    Ok(MovedDevice {
        host_name: link.name,
        container_name: moved.name,
    })
}

fn move_back_inner(netns: BorrowedFd, moved: &MovedDevice) -> anyhow::Result<()> {
    validate_name(&moved.host_name)
        .map_err(anyhow::Error::msg)
        .context("invalid host interface name")?;
    let home = thread_netns()?;
    if same_namespace(netns, home.as_fd())? {
        bail!("the container shares the runtime's network namespace");
    }
    let mut inside = netlink_in(netns)?;
    let link = get_link(&mut inside, LinkRef::Name(&moved.container_name)).with_context(|| {
        format!(
            "look up {:?} in the container network namespace",
            moved.container_name
        )
    })?;
    let addrs = carried_addresses(&mut inside, link.index)?;
    let mut host = Netlink::open().context("open a netlink socket")?;

    let mut from = End {
        sock: &mut inside,
        ns: netns,
        what: "container network namespace",
    };
    let mut to = End {
        sock: &mut host,
        ns: home.as_fd(),
        what: "host network namespace",
    };
    ensure_name_free(&mut to, &moved.host_name)?;
    let up = link.flags & IFF_UP != 0;
    transfer(&mut from, &mut to, &link, &addrs, &moved.host_name, up).map(drop)
}

/// One side of a move: a network namespace, a netlink socket living in it, and
/// how error messages name it.
struct End<'a> {
    sock: &'a mut Netlink,
    ns: BorrowedFd<'a>,
    what: &'static str,
}

/// Moves `link` from `from` to `to` as `name`, recreates `addrs` there and sets it
/// up if `up`. Should any of that fail once the link has left `from`, it goes back
/// under its old name, with its addresses and state, before the error is returned.
fn transfer(
    from: &mut End,
    to: &mut End,
    link: &Link,
    addrs: &[Address],
    name: &str,
    up: bool,
) -> anyhow::Result<Link> {
    let mut arrived = None;
    let err = match place(from, to, link, addrs, &link.name, name, up, &mut arrived) {
        Ok(placed) => return Ok(placed),
        Err(err) => err,
    };
    let Some(index) = arrived else {
        return Err(err);
    };
    let was_up = link.flags & IFF_UP != 0;
    let undo = get_link(to.sock, LinkRef::Index(index))
        .with_context(|| format!("find the interface in the {}", to.what))
        .and_then(|there| {
            place(
                to, from, &there, addrs, &link.name, &link.name, was_up, &mut None,
            )
        });
    Err(match undo {
        Ok(_) => err,
        Err(undo) => anyhow!("{err:#}; returning the interface failed too: {undo:#}"),
    })
}

/// Fails when `name` is taken in `end`: the spec wants an error, and leaving it to
/// the kernel would move the link before the rename fails.
fn ensure_name_free(end: &mut End, name: &str) -> anyhow::Result<()> {
    if name.contains('%') {
        return Ok(());
    }
    match get_link(end.sock, LinkRef::Name(name)) {
        Err(e) if errno_of(&e) == Some(libc::ENODEV) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("look up {name:?} in the {}", end.what)),
        Ok(_) => bail!("the {} already has an interface named {name:?}", end.what),
    }
}

/// The steps of [`transfer`] without the undo. `arrived` is set as soon as the
/// link is known to be in `to`: the kernel moves a link before renaming it, so
/// even a failed request can leave it there.
#[allow(clippy::too_many_arguments)]
fn place(
    from: &mut End,
    to: &mut End,
    link: &Link,
    addrs: &[Address],
    labels_from: &str,
    name: &str,
    up: bool,
    arrived: &mut Option<i32>,
) -> anyhow::Result<Link> {
    let (sent, new_index) = move_link(from.sock, link.index, to.ns, name);
    *arrived = new_index;
    sent.with_context(|| format!("move to {}", to.what))?;
    let placed = find_moved(to.sock, new_index, name)
        .with_context(|| format!("find the interface in the {}", to.what))?;
    *arrived = Some(placed.index);
    restore_addresses(to.sock, placed.index, addrs, labels_from, &placed.name)?;
    if up {
        set_up(to.sock, placed.index).context("set link up")?;
    }
    Ok(placed)
}

/// Sends the one request that moves link `index` into `to_ns` and names it `name`
/// there. Alongside the outcome comes the link's index in `to_ns` when the kernel's
/// RTM_DELLINK notification gave it (Linux 4.20 and later): with a `%d` name that
/// index is the only handle on the link, and it tells whether a failed request
/// moved the link anyway.
fn move_link(
    from: &mut Netlink,
    index: i32,
    to_ns: BorrowedFd,
    name: &str,
) -> (io::Result<()>, Option<i32>) {
    if let Err(e) = from.join_group(RTNLGRP_LINK) {
        return (Err(e), None);
    }
    from.notifications.clear();
    let sent = from
        .exchange(|seq| link_move_request(seq, index, to_ns.as_raw_fd(), name))
        .map(drop);
    let new_index = from
        .notifications
        .iter()
        .find_map(|m| new_ifindex(m.ty, &m.payload, index));
    (sent, new_index)
}

fn find_moved(sock: &mut Netlink, new_index: Option<i32>, name: &str) -> io::Result<Link> {
    match new_index {
        Some(index) => get_link(sock, LinkRef::Index(index)),
        None if !name.contains('%') => get_link(sock, LinkRef::Name(name)),
        None => Err(io::Error::other(
            "the kernel did not report the interface's new index, and its name is a template",
        )),
    }
}

fn restore_addresses(
    sock: &mut Netlink,
    index: i32,
    addrs: &[Address],
    labels_from: &str,
    new_name: &str,
) -> anyhow::Result<()> {
    for addr in addrs {
        sock.exchange(|seq| addr_add_request(seq, index, addr, labels_from, new_name))
            .with_context(|| format!("restore address {addr}"))?;
    }
    Ok(())
}

fn set_up(sock: &mut Netlink, index: i32) -> io::Result<()> {
    sock.exchange(|seq| link_set_up_request(seq, index))
        .map(drop)
}

enum LinkRef<'a> {
    Name(&'a str),
    Index(i32),
}

fn get_link(sock: &mut Netlink, which: LinkRef) -> io::Result<Link> {
    let replies = sock.exchange(|seq| link_get_request(seq, &which))?;
    let reply = replies
        .iter()
        .find(|m| m.ty == RTM_NEWLINK)
        .ok_or_else(|| malformed("RTM_GETLINK answered without a link"))?;
    parse_link(&reply.payload)
}

/// The addresses of link `index` that move with it.
fn carried_addresses(sock: &mut Netlink, index: i32) -> anyhow::Result<Vec<Address>> {
    Ok(dump_addresses(sock, index)
        .context("read the interface's addresses")?
        .into_iter()
        .filter(Address::is_carried)
        .collect())
}

fn dump_addresses(sock: &mut Netlink, index: i32) -> io::Result<Vec<Address>> {
    // A dump that raced a change comes back flagged; its result may be torn.
    const ATTEMPTS: usize = 5;
    let mut attempt = 1;
    loop {
        match sock.exchange(addr_dump_request) {
            Ok(replies) => {
                let mut out = Vec::new();
                for m in replies.iter().filter(|m| m.ty == RTM_NEWADDR) {
                    let addr = parse_addr(&m.payload)?;
                    if i64::from(addr.index) == i64::from(index) {
                        out.push(addr);
                    }
                }
                return Ok(out);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted && attempt < ATTEMPTS => {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

// ---------------------------------------------------------------------------
// Namespaces

/// This thread's network namespace: `/proc/self` would name the thread-group
/// leader's, which differs from ours in a multi-threaded test harness.
fn thread_netns() -> anyhow::Result<OwnedFd> {
    const PATH: &str = "/proc/thread-self/ns/net";
    File::open(PATH)
        .map(OwnedFd::from)
        .with_context(|| format!("open {PATH}"))
}

fn same_namespace(a: BorrowedFd, b: BorrowedFd) -> anyhow::Result<bool> {
    let id = |fd: BorrowedFd| -> anyhow::Result<(u64, u64)> {
        let meta = fd
            .try_clone_to_owned()
            .and_then(|fd| File::from(fd).metadata())
            .context("stat a network namespace fd")?;
        Ok((meta.dev(), meta.ino()))
    };
    Ok(id(a)? == id(b)?)
}

/// Opens a netlink socket that lives in `netns`, returning this thread to its own
/// namespace before anything else happens.
fn netlink_in(netns: BorrowedFd) -> anyhow::Result<Netlink> {
    let home = thread_netns()?;
    setns(netns, CloneFlags::CLONE_NEWNET).context("enter the container network namespace")?;
    let sock = Netlink::open();
    // Staying in the container's namespace would misdirect every later operation on
    // the host, so failing to return outranks whatever happened to the socket.
    setns(&home, CloneFlags::CLONE_NEWNET).context("return to the runtime's network namespace")?;
    sock.context("open a netlink socket in the container network namespace")
}

// ---------------------------------------------------------------------------
// Netlink socket

/// A NETLINK_ROUTE socket that sends one request at a time and waits for its
/// answer: the ack, the reply and ack, or a whole dump.
struct Netlink {
    fd: OwnedFd,
    port: u32,
    seq: u32,
    in_groups: bool,
    /// Multicast notifications received so far (only after `join_group`).
    notifications: Vec<Msg>,
    buf: Vec<u8>,
}

struct Msg {
    ty: u16,
    payload: Vec<u8>,
}

impl Netlink {
    fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2); the result is checked before it is owned.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // Extended acks add the kernel's reason to an errno; capped acks keep the
        // request from being echoed back. Kernels before 4.12 lack them and just
        // give plainer errors.
        for opt in [libc::NETLINK_EXT_ACK, libc::NETLINK_CAP_ACK] {
            match setsockopt_int(fd.as_raw_fd(), libc::SOL_NETLINK, opt, 1) {
                Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => {}
                other => other?,
            }
        }
        // SAFETY: sockaddr_nl is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        let mut len = mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        // SAFETY: addr and len describe a valid sockaddr_nl.
        let bound = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                len,
            )
        };
        if bound < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as for bind; the kernel writes at most `len` bytes into addr.
        let named = unsafe {
            libc::getsockname(
                fd.as_raw_fd(),
                (&mut addr as *mut libc::sockaddr_nl).cast(),
                &mut len,
            )
        };
        if named < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Netlink {
            fd,
            port: addr.nl_pid,
            seq: 0,
            in_groups: false,
            notifications: Vec::new(),
            buf: vec![0; 32 * 1024],
        })
    }

    fn join_group(&mut self, group: u32) -> io::Result<()> {
        setsockopt_int(
            self.fd.as_raw_fd(),
            libc::SOL_NETLINK,
            libc::NETLINK_ADD_MEMBERSHIP,
            group as libc::c_int,
        )?;
        self.in_groups = true;
        Ok(())
    }

    /// Sends the request `build` makes for a fresh sequence number and returns the
    /// messages answering it. A dump ends at NLMSG_DONE; anything else must carry
    /// NLM_F_ACK and ends at its ack. NLMSG_ERROR with an errno becomes an `io::Error`.
    fn exchange(&mut self, build: impl FnOnce(u32) -> Vec<u8>) -> io::Result<Vec<Msg>> {
        self.seq = self.seq.wrapping_add(1).max(1);
        let seq = self.seq;
        let req = build(seq);
        let flags = header_flags(&req)?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        debug_assert!(dump || flags & NLM_F_ACK != 0, "request without NLM_F_ACK");
        self.send(&req)?;

        let mut replies = Vec::new();
        let mut interrupted = false;
        loop {
            let n = match self.recv() {
                Ok(n) => n,
                // Notifications overflowed the receive queue; they are lost, the
                // answer to our request is not.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) && self.in_groups => continue,
                Err(e) => return Err(e),
            };
            for m in parse_msgs(&self.buf[..n])? {
                if m.seq == 0 && m.pid == 0 {
                    self.notifications.push(Msg {
                        ty: m.ty,
                        payload: m.payload.to_vec(),
                    });
                    continue;
                }
                if m.seq != seq || m.pid != self.port {
                    continue; // left over from an earlier, failed exchange
                }
                interrupted |= m.flags & NLM_F_DUMP_INTR != 0;
                match m.ty {
                    NLMSG_ERROR => match parse_error(m.flags, m.payload)? {
                        Some(err) => return Err(err),
                        None if !dump => return Ok(replies),
                        None => {}
                    },
                    NLMSG_DONE if dump => {
                        if let Some(err) = parse_done(m.flags, m.payload)? {
                            return Err(err);
                        }
                        if interrupted {
                            return Err(io::Error::new(
                                io::ErrorKind::Interrupted,
                                "netlink dump interrupted by a concurrent change",
                            ));
                        }
                        return Ok(replies);
                    }
                    NLMSG_NOOP | NLMSG_DONE => {}
                    ty => replies.push(Msg {
                        ty,
                        payload: m.payload.to_vec(),
                    }),
                }
            }
        }
    }

    fn send(&self, msg: &[u8]) -> io::Result<()> {
        // SAFETY: all-zero sockaddr_nl with AF_NETLINK addresses the kernel.
        let mut kernel: libc::sockaddr_nl = unsafe { mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        loop {
            // SAFETY: msg and kernel are valid for the lengths passed.
            let n = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    msg.as_ptr().cast(),
                    msg.len(),
                    0,
                    (&kernel as *const libc::sockaddr_nl).cast(),
                    mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if n >= 0 {
                return if n as usize == msg.len() {
                    Ok(())
                } else {
                    Err(io::Error::other("short netlink send"))
                };
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    /// Receives one datagram into `self.buf`, growing it first if the datagram is
    /// larger, so a big dump message is never truncated.
    fn recv(&mut self) -> io::Result<usize> {
        let pending = self.recv_with(libc::MSG_PEEK | libc::MSG_TRUNC)?;
        if pending > self.buf.len() {
            self.buf.resize(pending, 0);
        }
        self.recv_with(0)
    }

    fn recv_with(&mut self, flags: libc::c_int) -> io::Result<usize> {
        loop {
            // SAFETY: buf is valid for writes of its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    flags,
                )
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    opt: libc::c_int,
    val: libc::c_int,
) -> io::Result<()> {
    // SAFETY: val lives across the call and its size is passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&val as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A kernel errno from NLMSG_ERROR, with the extended-ack reason when given.
#[derive(Debug)]
struct KernelError {
    errno: i32,
    reason: Option<String>,
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(nix::errno::Errno::from_raw(self.errno).desc())?;
        if let Some(reason) = &self.reason {
            write!(f, " ({reason})")?;
        }
        Ok(())
    }
}

impl std::error::Error for KernelError {}

/// The errno behind `err`, whether the kernel sent it in NLMSG_ERROR or a syscall
/// returned it.
fn errno_of(err: &io::Error) -> Option<i32> {
    err.raw_os_error().or_else(|| {
        err.get_ref()
            .and_then(|e| e.downcast_ref::<KernelError>())
            .map(|k| k.errno)
    })
}

fn kernel_error(errno: i32, reason: Option<String>) -> io::Error {
    let kind = io::Error::from_raw_os_error(errno).kind();
    io::Error::new(kind, KernelError { errno, reason })
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed netlink message: {what}"),
    )
}

// ---------------------------------------------------------------------------
// Wire format (include/uapi/linux/{netlink,rtnetlink,if_link,if_addr}.h)

/// IFNAMSIZ less the terminating NUL.
const MAX_IFNAME_LEN: usize = 15;

const NLMSG_HDRLEN: usize = 16;
const NLA_HDRLEN: usize = 4;
const IFINFOMSG_LEN: usize = 16;
const IFADDRMSG_LEN: usize = 8;

const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;

const NLM_F_REQUEST: u16 = 0x01;
const NLM_F_ACK: u16 = 0x04;
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
// Flags on an NLMSG_ERROR message.
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLA_TYPE_MASK: u16 = !(0x8000 | 0x4000);

const RTNLGRP_LINK: u32 = 1;

const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_EXT_MASK: u16 = 29;
const IFLA_NEW_IFINDEX: u16 = 49;
const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;
const IFF_UP: u32 = 0x1;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_LABEL: u16 = 3;
const IFA_BROADCAST: u16 = 4;
const IFA_FLAGS: u16 = 8;
const IFA_RT_PRIORITY: u16 = 9;
const IFA_PROTO: u16 = 11;
const IFA_F_PERMANENT: u32 = 0x80;
/// Flags a user sets on an address (nodad, home, mngtmpaddr, noprefixroute,
/// autojoin); the others describe its state and are the kernel's to set.
const IFA_F_SETTABLE: u32 = 0x02 | 0x10 | 0x100 | 0x200 | 0x400;
const RT_SCOPE_UNIVERSE: u8 = 0;

const AF_UNSPEC: u8 = libc::AF_UNSPEC as u8;
const AF_INET: u8 = libc::AF_INET as u8;

fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// Starts a request: a header whose length `finish` fills in.
fn new_msg(ty: u16, flags: u16, seq: u32) -> Vec<u8> {
    let mut buf = Vec::with_capacity(128);
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes()); // port: the kernel fills in ours
    buf
}

fn finish(mut buf: Vec<u8>) -> Vec<u8> {
    let len = buf.len() as u32;
    buf[..4].copy_from_slice(&len.to_ne_bytes());
    buf
}

fn put_ifinfomsg(buf: &mut Vec<u8>, index: i32, flags: u32, change: u32) {
    buf.push(AF_UNSPEC); // family
    buf.push(0); // pad
    buf.extend_from_slice(&0u16.to_ne_bytes()); // device type
    buf.extend_from_slice(&index.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&change.to_ne_bytes());
}

fn put_ifaddrmsg(buf: &mut Vec<u8>, family: u8, prefix_len: u8, flags: u8, scope: u8, index: u32) {
    buf.extend_from_slice(&[family, prefix_len, flags, scope]);
    buf.extend_from_slice(&index.to_ne_bytes());
}

/// Appends one attribute and pads it to the 4-byte boundary the next one needs.
/// The length field counts header and payload, never the padding.
fn put_attr(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    debug_assert_eq!(buf.len() % 4, 0, "attribute would start unaligned");
    let len = NLA_HDRLEN + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(buf.len() + align4(len) - len, 0);
}

fn put_attr_str(buf: &mut Vec<u8>, ty: u16, s: &str) {
    let mut payload = Vec::with_capacity(s.len() + 1);
    payload.extend_from_slice(s.as_bytes());
    payload.push(0);
    put_attr(buf, ty, &payload);
}

fn put_attr_u32(buf: &mut Vec<u8>, ty: u16, v: u32) {
    put_attr(buf, ty, &v.to_ne_bytes());
}

/// RTM_NEWLINK that moves link `index` into the namespace `netns_fd` and names it
/// `name` there, in one step.
fn link_move_request(seq: u32, index: i32, netns_fd: RawFd, name: &str) -> Vec<u8> {
    let mut buf = new_msg(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq);
    put_ifinfomsg(&mut buf, index, 0, 0);
    put_attr_u32(&mut buf, IFLA_NET_NS_FD, netns_fd as u32);
    put_attr_str(&mut buf, IFLA_IFNAME, name);
    finish(buf)
}

fn link_set_up_request(seq: u32, index: i32) -> Vec<u8> {
    let mut buf = new_msg(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq);
    put_ifinfomsg(&mut buf, index, IFF_UP, IFF_UP);
    finish(buf)
}

fn link_get_request(seq: u32, which: &LinkRef) -> Vec<u8> {
    let mut buf = new_msg(RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK, seq);
    match which {
        LinkRef::Index(index) => put_ifinfomsg(&mut buf, *index, 0, 0),
        LinkRef::Name(name) => {
            put_ifinfomsg(&mut buf, 0, 0, 0);
            put_attr_str(&mut buf, IFLA_IFNAME, name);
        }
    }
    put_attr_u32(&mut buf, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    finish(buf)
}

fn addr_dump_request(seq: u32) -> Vec<u8> {
    let mut buf = new_msg(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq);
    put_ifaddrmsg(&mut buf, AF_UNSPEC, 0, 0, 0, 0);
    finish(buf)
}

/// RTM_NEWADDR that recreates `addr` on link `index`; an IPv4 label naming the old
/// interface (`eth1:0`) is carried over to the new name.
fn addr_add_request(
    seq: u32,
    index: i32,
    addr: &Address,
    old_name: &str,
    new_name: &str,
) -> Vec<u8> {
    let flags = addr.flags & IFA_F_SETTABLE;
    let mut buf = new_msg(
        RTM_NEWADDR,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        seq,
    );
    put_ifaddrmsg(
        &mut buf,
        addr.family,
        addr.prefix_len,
        (flags & 0xff) as u8,
        addr.scope,
        index as u32,
    );
    if let Some(local) = &addr.local {
        put_attr(&mut buf, IFA_LOCAL, local);
    }
    if let Some(address) = &addr.address {
        put_attr(&mut buf, IFA_ADDRESS, address);
    }
    if let Some(brd) = &addr.broadcast {
        put_attr(&mut buf, IFA_BROADCAST, brd);
    }
    if addr.family == AF_INET {
        if let Some(label) = addr
            .label
            .as_deref()
            .and_then(|l| relabel(l, old_name, new_name))
        {
            put_attr_str(&mut buf, IFA_LABEL, &label);
        }
    }
    put_attr_u32(&mut buf, IFA_FLAGS, flags);
    if let Some(prio) = addr.priority {
        put_attr_u32(&mut buf, IFA_RT_PRIORITY, prio);
    }
    if let Some(proto) = addr.proto {
        put_attr(&mut buf, IFA_PROTO, &[proto]);
    }
    finish(buf)
}

/// The label to give an address after its interface is renamed. A label equal to
/// the interface name is the kernel's default and needs no attribute.
fn relabel(label: &str, old_name: &str, new_name: &str) -> Option<String> {
    if label == old_name {
        return None;
    }
    match label.strip_prefix(old_name) {
        Some(alias) if alias.starts_with(':') => {
            let renamed = format!("{new_name}{alias}");
            (renamed.len() <= MAX_IFNAME_LEN).then_some(renamed)
        }
        _ => Some(label.to_string()),
    }
}

fn header_flags(msg: &[u8]) -> io::Result<u16> {
    msg.get(6..8)
        .map(|b| u16::from_ne_bytes([b[0], b[1]]))
        .ok_or_else(|| malformed("request shorter than its header"))
}

fn ne_u16(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn ne_u32(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn ne_i32(b: &[u8], at: usize) -> i32 {
    ne_u32(b, at) as i32
}

struct RawMsg<'a> {
    ty: u16,
    flags: u16,
    seq: u32,
    pid: u32,
    payload: &'a [u8],
}

fn parse_msgs(mut buf: &[u8]) -> io::Result<Vec<RawMsg<'_>>> {
    let mut out = Vec::new();
    while buf.len() >= NLMSG_HDRLEN {
        let len = ne_u32(buf, 0) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err(malformed("bad message length"));
        }
        out.push(RawMsg {
            ty: ne_u16(buf, 4),
            flags: ne_u16(buf, 6),
            seq: ne_u32(buf, 8),
            pid: ne_u32(buf, 12),
            payload: &buf[NLMSG_HDRLEN..len],
        });
        buf = &buf[align4(len).min(buf.len())..];
    }
    Ok(out)
}

fn parse_attrs(mut buf: &[u8]) -> io::Result<Vec<(u16, &[u8])>> {
    let mut out = Vec::new();
    while buf.len() >= NLA_HDRLEN {
        let len = ne_u16(buf, 0) as usize;
        if len < NLA_HDRLEN || len > buf.len() {
            return Err(malformed("bad attribute length"));
        }
        out.push((ne_u16(buf, 2) & NLA_TYPE_MASK, &buf[NLA_HDRLEN..len]));
        buf = &buf[align4(len).min(buf.len())..];
    }
    Ok(out)
}

fn attr_str(payload: &[u8]) -> String {
    let end = payload
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(payload.len());
    String::from_utf8_lossy(&payload[..end]).into_owned()
}

fn attr_u32(payload: &[u8]) -> io::Result<u32> {
    if payload.len() < 4 {
        return Err(malformed("short 32-bit attribute"));
    }
    Ok(ne_u32(payload, 0))
}

/// NLMSG_ERROR: `None` for an ack, the kernel's error otherwise.
fn parse_error(flags: u16, payload: &[u8]) -> io::Result<Option<io::Error>> {
    if payload.len() < 4 {
        return Err(malformed("short NLMSG_ERROR"));
    }
    let errno = -ne_i32(payload, 0);
    if errno == 0 {
        return Ok(None);
    }
    let mut reason = None;
    if flags & NLM_F_ACK_TLVS != 0 && payload.len() >= 4 + NLMSG_HDRLEN {
        // The TLVs follow the echoed request: its header only when capped.
        let echoed = if flags & NLM_F_CAPPED != 0 {
            NLMSG_HDRLEN
        } else {
            align4(ne_u32(payload, 4) as usize)
        };
        if let Some(tlvs) = payload.get(4 + echoed..) {
            reason = parse_attrs(tlvs)?
                .into_iter()
                .find(|(ty, _)| *ty == NLMSGERR_ATTR_MSG)
                .map(|(_, v)| attr_str(v));
        }
    }
    Ok(Some(kernel_error(errno, reason)))
}

/// NLMSG_DONE ends a dump with an int that is a negative errno when it failed.
fn parse_done(flags: u16, payload: &[u8]) -> io::Result<Option<io::Error>> {
    if payload.len() < 4 || ne_i32(payload, 0) >= 0 {
        return Ok(None);
    }
    let mut reason = None;
    if flags & NLM_F_ACK_TLVS != 0 {
        reason = parse_attrs(&payload[4..])?
            .into_iter()
            .find(|(ty, _)| *ty == NLMSGERR_ATTR_MSG)
            .map(|(_, v)| attr_str(v));
    }
    Ok(Some(kernel_error(-ne_i32(payload, 0), reason)))
}

#[derive(Debug, Clone, PartialEq)]
struct Link {
    index: i32,
    flags: u32,
    name: String,
}

fn parse_link(payload: &[u8]) -> io::Result<Link> {
    if payload.len() < IFINFOMSG_LEN {
        return Err(malformed("short ifinfomsg"));
    }
    let name = parse_attrs(&payload[IFINFOMSG_LEN..])?
        .into_iter()
        .find(|(ty, _)| *ty == IFLA_IFNAME)
        .map(|(_, v)| attr_str(v))
        .ok_or_else(|| malformed("link without IFLA_IFNAME"))?;
    Ok(Link {
        index: ne_i32(payload, 4),
        flags: ne_u32(payload, 8),
        name,
    })
}

/// The link's index in its new namespace, if `ty`/`payload` is the RTM_DELLINK the
/// kernel sends when link `old_index` leaves for another namespace.
fn new_ifindex(ty: u16, payload: &[u8], old_index: i32) -> Option<i32> {
    if ty != RTM_DELLINK || payload.len() < IFINFOMSG_LEN || ne_i32(payload, 4) != old_index {
        return None;
    }
    parse_attrs(&payload[IFINFOMSG_LEN..])
        .ok()?
        .into_iter()
        .find(|(ty, _)| *ty == IFLA_NEW_IFINDEX)
        .and_then(|(_, v)| attr_u32(v).ok())
        .map(|v| v as i32)
}

/// One interface address as RTM_NEWADDR describes it.
#[derive(Debug, Clone, PartialEq)]
struct Address {
    family: u8,
    prefix_len: u8,
    flags: u32,
    scope: u8,
    index: u32,
    local: Option<Vec<u8>>,
    address: Option<Vec<u8>>,
    broadcast: Option<Vec<u8>>,
    label: Option<String>,
    priority: Option<u32>,
    proto: Option<u8>,
}

impl Address {
    /// The spec carries permanent addresses of global scope; dynamic ones depend on
    /// the old namespace's context, and link- or host-scoped ones mean nothing in
    /// another namespace.
    fn is_carried(&self) -> bool {
        self.flags & IFA_F_PERMANENT != 0 && self.scope == RT_SCOPE_UNIVERSE
    }
}

fn ip_from(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| IpAddr::V6(Ipv6Addr::from(b))),
        _ => None,
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self
            .local
            .as_deref()
            .or(self.address.as_deref())
            .and_then(ip_from)
        {
            Some(ip) => write!(f, "{ip}/{}", self.prefix_len),
            None => write!(f, "(family {})/{}", self.family, self.prefix_len),
        }
    }
}

fn parse_addr(payload: &[u8]) -> io::Result<Address> {
    if payload.len() < IFADDRMSG_LEN {
        return Err(malformed("short ifaddrmsg"));
    }
    let mut addr = Address {
        family: payload[0],
        prefix_len: payload[1],
        flags: u32::from(payload[2]),
        scope: payload[3],
        index: ne_u32(payload, 4),
        local: None,
        address: None,
        broadcast: None,
        label: None,
        priority: None,
        proto: None,
    };
    for (ty, v) in parse_attrs(&payload[IFADDRMSG_LEN..])? {
        match ty {
            IFA_LOCAL => addr.local = Some(v.to_vec()),
            IFA_ADDRESS => addr.address = Some(v.to_vec()),
            IFA_BROADCAST => addr.broadcast = Some(v.to_vec()),
            IFA_LABEL => addr.label = Some(attr_str(v)),
            // The 32-bit flags supersede the 8 bits in the header.
            IFA_FLAGS => addr.flags = attr_u32(v)?,
            IFA_RT_PRIORITY => addr.priority = Some(attr_u32(v)?),
            IFA_PROTO => addr.proto = v.first().copied(),
            _ => {}
        }
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs_of(msg: &[u8], fixed: usize) -> Vec<(u16, Vec<u8>)> {
        parse_attrs(&msg[NLMSG_HDRLEN + fixed..])
            .unwrap()
            .into_iter()
            .map(|(t, v)| (t, v.to_vec()))
            .collect()
    }

    #[test]
    fn move_request_encoding() {
        let msg = link_move_request(7, 42, 9, "eth1");
        let mut want = Vec::new();
        // nlmsghdr: len 52, RTM_NEWLINK, REQUEST|ACK, seq 7, port 0
        want.extend_from_slice(&52u32.to_ne_bytes());
        want.extend_from_slice(&16u16.to_ne_bytes());
        want.extend_from_slice(&5u16.to_ne_bytes());
        want.extend_from_slice(&7u32.to_ne_bytes());
        want.extend_from_slice(&0u32.to_ne_bytes());
        // ifinfomsg: AF_UNSPEC, index 42, no flag changes
        want.extend_from_slice(&[0, 0, 0, 0]);
        want.extend_from_slice(&42i32.to_ne_bytes());
        want.extend_from_slice(&0u32.to_ne_bytes());
        want.extend_from_slice(&0u32.to_ne_bytes());
        // IFLA_NET_NS_FD (28) = 9
        want.extend_from_slice(&8u16.to_ne_bytes());
        want.extend_from_slice(&28u16.to_ne_bytes());
        want.extend_from_slice(&9u32.to_ne_bytes());
        // IFLA_IFNAME (3) = "eth1\0": length 9, padded to 12
        want.extend_from_slice(&9u16.to_ne_bytes());
        want.extend_from_slice(&3u16.to_ne_bytes());
        want.extend_from_slice(b"eth1\0\0\0\0");
        assert_eq!(msg, want);
    }

    #[test]
    fn attributes_are_padded_to_four_bytes() {
        for (name, nla_len, padded) in [
            ("abc", 8, 8),
            ("abcd", 9, 12),
            ("abcdefg", 12, 12),
            ("abcdefghijklmno", 20, 20),
        ] {
            let mut buf = Vec::new();
            put_attr_str(&mut buf, IFLA_IFNAME, name);
            assert_eq!(ne_u16(&buf, 0) as usize, nla_len, "{name}");
            assert_eq!(buf.len(), padded, "{name}");
            assert!(buf[nla_len..].iter().all(|&b| b == 0));
            // The next attribute starts aligned and parses back.
            put_attr_u32(&mut buf, IFLA_EXT_MASK, 5);
            let attrs = parse_attrs(&buf).unwrap();
            assert_eq!(attrs.len(), 2);
            assert_eq!(attr_str(attrs[0].1), name);
            assert_eq!(attrs[1], (IFLA_EXT_MASK, &5u32.to_ne_bytes()[..]));
        }
    }

    #[test]
    fn link_requests() {
        let up = link_set_up_request(3, 5);
        assert_eq!(up.len(), NLMSG_HDRLEN + IFINFOMSG_LEN);
        assert_eq!(ne_u32(&up, 0) as usize, up.len());
        assert_eq!(ne_i32(&up, NLMSG_HDRLEN + 4), 5);
        assert_eq!(ne_u32(&up, NLMSG_HDRLEN + 8), IFF_UP);
        assert_eq!(ne_u32(&up, NLMSG_HDRLEN + 12), IFF_UP);

        let get = link_get_request(4, &LinkRef::Name("veth0"));
        assert_eq!(ne_u16(&get, 4), RTM_GETLINK);
        assert_eq!(ne_i32(&get, NLMSG_HDRLEN + 4), 0);
        let attrs = attrs_of(&get, IFINFOMSG_LEN);
        assert_eq!(attrs[0], (IFLA_IFNAME, b"veth0\0".to_vec()));
        assert_eq!(attrs[1].0, IFLA_EXT_MASK);

        let dump = addr_dump_request(6);
        assert_eq!(header_flags(&dump).unwrap(), NLM_F_REQUEST | NLM_F_DUMP);
        assert_eq!(dump.len(), NLMSG_HDRLEN + IFADDRMSG_LEN);
    }

    fn sample_v4() -> Address {
        Address {
            family: AF_INET,
            prefix_len: 24,
            flags: IFA_F_PERMANENT | 0x200, // noprefixroute
            scope: RT_SCOPE_UNIVERSE,
            index: 4,
            local: Some(vec![192, 0, 2, 1]),
            address: Some(vec![192, 0, 2, 1]),
            broadcast: Some(vec![192, 0, 2, 255]),
            label: Some("eth1:web".into()),
            priority: Some(100),
            proto: Some(4),
        }
    }

    #[test]
    fn address_add_request_round_trips() {
        let addr = sample_v4();
        let msg = addr_add_request(9, 17, &addr, "eth1", "ctr0");
        assert_eq!(ne_u16(&msg, 4), RTM_NEWADDR);
        assert_eq!(
            header_flags(&msg).unwrap(),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
        );
        let parsed = parse_addr(&msg[NLMSG_HDRLEN..]).unwrap();
        assert_eq!(parsed.index, 17);
        assert_eq!(parsed.flags, 0x200, "permanent is the kernel's to set");
        assert_eq!(parsed.label.as_deref(), Some("ctr0:web"));
        assert_eq!(
            (&parsed.local, &parsed.address, &parsed.broadcast),
            (&addr.local, &addr.address, &addr.broadcast)
        );
        assert_eq!((parsed.priority, parsed.proto), (Some(100), Some(4)));
        assert_eq!(addr.to_string(), "192.0.2.1/24");
    }

    #[test]
    fn labels_follow_the_rename() {
        assert_eq!(relabel("eth1", "eth1", "c0"), None);
        assert_eq!(relabel("eth1:0", "eth1", "c0").as_deref(), Some("c0:0"));
        assert_eq!(relabel("eth10", "eth1", "c0").as_deref(), Some("eth10"));
        assert_eq!(relabel("e:123456789", "e", "abcdefgh"), None);
    }

    #[test]
    fn only_permanent_global_addresses_are_carried() {
        let mut a = sample_v4();
        assert!(a.is_carried());
        a.scope = 253; // link
        assert!(!a.is_carried());
        a.scope = RT_SCOPE_UNIVERSE;
        a.flags = 0;
        assert!(!a.is_carried());
    }

    fn error_msg(errno: i32, flags: u16, reason: Option<&str>) -> Vec<u8> {
        let mut buf = new_msg(NLMSG_ERROR, flags, 1);
        buf.extend_from_slice(&(-errno).to_ne_bytes());
        // the echoed request header (capped)
        buf.extend_from_slice(&link_set_up_request(1, 2)[..NLMSG_HDRLEN]);
        if let Some(r) = reason {
            put_attr_str(&mut buf, NLMSGERR_ATTR_MSG, r);
        }
        finish(buf)
    }

    #[test]
    fn errors_carry_errno_and_reason() {
        let plain = error_msg(libc::ENODEV, NLM_F_CAPPED, None);
        let m = &parse_msgs(&plain).unwrap()[0];
        let err = parse_error(m.flags, m.payload).unwrap().unwrap();
        assert_eq!(err.to_string(), "No such device");
        assert_eq!(errno_of(&err), Some(libc::ENODEV));

        let with_reason = error_msg(
            libc::EEXIST,
            NLM_F_CAPPED | NLM_F_ACK_TLVS,
            Some("name in use"),
        );
        let m = &parse_msgs(&with_reason).unwrap()[0];
        let err = parse_error(m.flags, m.payload).unwrap().unwrap();
        assert_eq!(err.to_string(), "File exists (name in use)");
        assert_eq!(errno_of(&err), Some(libc::EEXIST));
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);

        let ack = error_msg(0, NLM_F_CAPPED, None);
        let m = &parse_msgs(&ack).unwrap()[0];
        assert!(parse_error(m.flags, m.payload).unwrap().is_none());
    }

    #[test]
    fn uncapped_error_skips_the_echoed_request() {
        let req = link_move_request(1, 2, 3, "abcde");
        let mut buf = new_msg(NLMSG_ERROR, NLM_F_ACK_TLVS, 1);
        buf.extend_from_slice(&(-libc::EINVAL).to_ne_bytes());
        buf.extend_from_slice(&req);
        put_attr_str(&mut buf, NLMSGERR_ATTR_MSG, "immutable");
        let buf = finish(buf);
        let m = &parse_msgs(&buf).unwrap()[0];
        let err = parse_error(m.flags, m.payload).unwrap().unwrap();
        assert_eq!(err.to_string(), "Invalid argument (immutable)");
    }

    #[test]
    fn several_messages_in_one_datagram() {
        let mut dgram = link_set_up_request(1, 1);
        dgram.extend(link_move_request(2, 3, 4, "x"));
        let msgs = parse_msgs(&dgram).unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!((msgs[0].seq, msgs[1].seq), (1, 2));
        assert_eq!(msgs[1].payload.len(), IFINFOMSG_LEN + 8 + 8);

        let mut bad = link_set_up_request(1, 1);
        bad[0] = 200; // longer than the datagram
        assert!(parse_msgs(&bad).is_err());
        let mut bad_attr = Vec::new();
        put_attr_u32(&mut bad_attr, 1, 1);
        bad_attr[0] = 2; // shorter than an attribute header
        assert!(parse_attrs(&bad_attr).is_err());
    }

    #[test]
    fn dellink_notification_gives_new_index() {
        let mut payload = Vec::new();
        put_ifinfomsg(&mut payload, 12, 0, 0);
        put_attr_str(&mut payload, IFLA_IFNAME, "eth1");
        put_attr_u32(&mut payload, IFLA_NEW_IFINDEX, 3);
        assert_eq!(new_ifindex(RTM_DELLINK, &payload, 12), Some(3));
        assert_eq!(new_ifindex(RTM_DELLINK, &payload, 13), None);
        assert_eq!(new_ifindex(RTM_NEWLINK, &payload, 12), None);
        let link = parse_link(&payload).unwrap();
        assert_eq!((link.index, link.name.as_str()), (12, "eth1"));
    }

    #[test]
    fn names_follow_the_kernel_rules() {
        for ok in [
            "eth0",
            "a",
            "abcdefghijklmno",
            "eth%d",
            "c%dx",
            "veth-1_2.3",
            "é",
        ] {
            assert_eq!(validate_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "abcdefghijklmnop",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "a\tb",
            "a\nb",
            "a\0b",
            "à",
            "a\u{a0}b",
            "eth%",
            "eth%s",
            "e%d%d",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        let err = validate_name("abcdefghijklmnop").unwrap_err();
        assert!(err.contains("16 bytes"), "{err}");
    }

    #[test]
    fn moved_device_state_round_trips() {
        let moved = MovedDevice {
            host_name: "eth1".into(),
            container_name: "net0".into(),
        };
        let json = serde_json::to_string(&moved).unwrap();
        assert_eq!(json, r#"{"host_name":"eth1","container_name":"net0"}"#);
        assert_eq!(serde_json::from_str::<MovedDevice>(&json).unwrap(), moved);
    }

    /// Real-kernel checks: veth pairs and throwaway namespaces made with `ip`,
    /// removed by a guard on every path.
    mod kernel {
        use super::super::*;
        use oci_spec::runtime::LinuxNetDeviceBuilder;
        use std::process::Command;
        use std::sync::atomic::{AtomicUsize, Ordering};

        static NEXT: AtomicUsize = AtomicUsize::new(0);

        fn ip(args: &[&str]) -> Result<String, String> {
            let out = Command::new("ip")
                .args(args)
                .output()
                .map_err(|e| format!("run ip {args:?}: {e}"))?;
            if out.status.success() {
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            } else {
                Err(format!(
                    "ip {args:?}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        }

        fn must(args: &[&str]) -> String {
            ip(args).unwrap_or_else(|e| panic!("{e}"))
        }

        /// A namespace and veth pairs `<tag>a`/`<tag>b`; the `a` ends are what the
        /// tests move, the `b` ends stay on the host, so deleting them removes
        /// the pairs wherever the `a` ends went.
        struct Fixture {
            ns: String,
            tags: Vec<String>,
        }

        impl Fixture {
            fn new(pairs: usize) -> Fixture {
                assert!(
                    nix::unistd::geteuid().is_root(),
                    "the netdev kernel tests need root"
                );
                let n = NEXT.fetch_add(1, Ordering::SeqCst);
                let pid = std::process::id();
                let mut fx = Fixture {
                    ns: format!("kraal-nd-{pid}-{n}"),
                    tags: Vec::new(),
                };
                must(&["netns", "add", &fx.ns]);
                for i in 0..pairs {
                    let tag = format!("knd{pid}{n}{i}");
                    assert!(tag.len() < MAX_IFNAME_LEN, "{tag}");
                    fx.tags.push(tag.clone());
                    must(&[
                        "link",
                        "add",
                        &format!("{tag}a"),
                        "type",
                        "veth",
                        "peer",
                        "name",
                        &format!("{tag}b"),
                    ]);
                }
                fx
            }

            fn dev(&self, i: usize) -> String {
                format!("{}a", self.tags[i])
            }

            fn ns_fd(&self) -> File {
                File::open(format!("/var/run/netns/{}", self.ns)).unwrap()
            }

            fn in_ns(&self, args: &[&str]) -> Result<String, String> {
                let mut all = vec!["-n", self.ns.as_str()];
                all.extend_from_slice(args);
                ip(&all)
            }
        }

        impl Drop for Fixture {
            fn drop(&mut self) {
                for tag in &self.tags {
                    let _ = ip(&["link", "del", &format!("{tag}b")]);
                    let _ = ip(&["link", "del", &format!("{tag}a")]);
                }
                let _ = ip(&["netns", "del", &self.ns]);
            }
        }

        fn named(name: &str) -> LinuxNetDevice {
            LinuxNetDeviceBuilder::default().name(name).build().unwrap()
        }

        fn is_up(link_show: &str) -> bool {
            link_show
                .split_once('<')
                .and_then(|(_, rest)| rest.split_once('>'))
                .is_some_and(|(flags, _)| flags.split(',').any(|f| f == "UP"))
        }

        #[test]
        fn move_in_with_addresses_and_back() {
            let fx = Fixture::new(1);
            let dev = fx.dev(0);
            let inner = format!("kc{}", &fx.tags[0][3..]);
            must(&["addr", "add", "192.0.2.1/24", "brd", "+", "dev", &dev]);
            must(&[
                "addr",
                "add",
                "192.0.2.9/32",
                "dev",
                &dev,
                "label",
                &format!("{dev}:s"),
            ]);
            must(&[
                "-6",
                "addr",
                "add",
                "2001:db8:5::1/64",
                "dev",
                &dev,
                "nodad",
            ]);
            // Not carried: host scope, and a dynamic (non-permanent) address.
            must(&[
                "addr",
                "add",
                "198.51.100.1/24",
                "dev",
                &dev,
                "scope",
                "host",
            ]);
            must(&[
                "-6",
                "addr",
                "add",
                "2001:db8:6::1/64",
                "dev",
                &dev,
                "nodad",
                "valid_lft",
                "600",
                "preferred_lft",
                "600",
            ]);
            assert!(!is_up(&must(&["link", "show", &dev])));

            let ns = fx.ns_fd();
            let moved = move_into(ns.as_fd(), &dev, &named(&inner)).unwrap();
            assert_eq!(
                moved,
                MovedDevice {
                    host_name: dev.clone(),
                    container_name: inner.clone()
                }
            );

            assert!(ip(&["link", "show", &dev]).is_err(), "still on the host");
            let link = fx.in_ns(&["link", "show", &inner]).unwrap();
            assert!(is_up(&link), "not up in the container: {link}");
            let addrs = fx.in_ns(&["addr", "show", "dev", &inner]).unwrap();
            assert!(
                addrs.contains("inet 192.0.2.1/24 brd 192.0.2.255 "),
                "{addrs}"
            );
            assert!(
                addrs.contains(&format!("inet 192.0.2.9/32 scope global {inner}:s")),
                "{addrs}"
            );
            assert!(
                addrs.contains("inet6 2001:db8:5::1/64 scope global nodad"),
                "{addrs}"
            );
            assert!(!addrs.contains("198.51.100.1"), "{addrs}");
            assert!(!addrs.contains("2001:db8:6::1"), "{addrs}");

            move_back(ns.as_fd(), &moved).unwrap();
            assert!(fx.in_ns(&["link", "show", &inner]).is_err());
            let link = must(&["link", "show", &dev]);
            assert!(is_up(&link), "{link}");
            let addrs = must(&["addr", "show", "dev", &dev]);
            assert!(
                addrs.contains("inet 192.0.2.1/24 brd 192.0.2.255 "),
                "{addrs}"
            );
            assert!(
                addrs.contains(&format!("inet 192.0.2.9/32 scope global {dev}:s")),
                "{addrs}"
            );
            assert!(addrs.contains("inet6 2001:db8:5::1/64"), "{addrs}");
        }

        #[test]
        fn template_names_and_clashes() {
            let fx = Fixture::new(2);
            let (first, second) = (fx.dev(0), fx.dev(1));
            let ns = fx.ns_fd();

            let moved = move_into(ns.as_fd(), &first, &named("kt%d")).unwrap();
            assert_eq!(moved.container_name, "kt0");
            fx.in_ns(&["link", "show", "kt0"]).unwrap();

            // The name is taken inside: the move must fail and change nothing.
            must(&["addr", "add", "203.0.113.7/24", "dev", &second]);
            must(&["link", "set", &second, "up"]);
            let err = move_into(ns.as_fd(), &second, &named("kt0")).unwrap_err();
            assert_eq!(
                format!("{err:#}"),
                format!("linux.netDevices[{second:?}]: the container network namespace already has an interface named \"kt0\"")
            );
            let link = must(&["link", "show", &second]);
            assert!(is_up(&link), "{link}");
            assert!(must(&["addr", "show", "dev", &second]).contains("203.0.113.7/24"));

            // Without a new name the host name is kept.
            let kept = move_into(ns.as_fd(), &second, &LinuxNetDevice::default()).unwrap();
            assert_eq!(kept.container_name, second);
            let addrs = fx.in_ns(&["addr", "show", "dev", &second]).unwrap();
            assert!(addrs.contains("inet 203.0.113.7/24"), "{addrs}");
        }

        /// Without the name check, the kernel moves the link and then fails the
        /// rename; `transfer` must bring it back as it was.
        #[test]
        fn failed_rename_after_move_is_undone() {
            let fx = Fixture::new(2);
            let (taken, dev) = (fx.dev(0), fx.dev(1));
            let ns = fx.ns_fd();
            must(&["link", "set", &taken, "netns", &fx.ns, "name", "taken0"]);
            must(&[
                "addr",
                "add",
                "192.0.2.44/24",
                "dev",
                &dev,
                "label",
                &format!("{dev}:x"),
            ]);
            must(&[
                "-6",
                "addr",
                "add",
                "2001:db8:8::1/64",
                "dev",
                &dev,
                "nodad",
            ]);
            must(&["link", "set", &dev, "up"]);

            let home = thread_netns().unwrap();
            let mut host = Netlink::open().unwrap();
            let mut inside = netlink_in(ns.as_fd()).unwrap();
            let link = get_link(&mut host, LinkRef::Name(&dev)).unwrap();
            let addrs = carried_addresses(&mut host, link.index).unwrap();
            assert_eq!(addrs.len(), 2, "{addrs:?}");
            let err = transfer(
                &mut End {
                    sock: &mut host,
                    ns: home.as_fd(),
                    what: "host network namespace",
                },
                &mut End {
                    sock: &mut inside,
                    ns: ns.as_fd(),
                    what: "container network namespace",
                },
                &link,
                &addrs,
                "taken0",
                true,
            )
            .unwrap_err();
            assert_eq!(
                format!("{err:#}"),
                "move to container network namespace: File exists"
            );
            assert!(fx.in_ns(&["link", "show", &dev]).is_err());
            let shown = must(&["link", "show", &dev]);
            assert!(is_up(&shown), "{shown}");
            let addrs = must(&["addr", "show", "dev", &dev]);
            assert!(
                addrs.contains(&format!("inet 192.0.2.44/24 scope global {dev}:x")),
                "{addrs}"
            );
            assert!(addrs.contains("inet6 2001:db8:8::1/64"), "{addrs}");
        }

        #[test]
        fn failure_inside_returns_the_interface() {
            let fx = Fixture::new(1);
            let dev = fx.dev(0);
            // IPv6 off for devices arriving in the namespace: restoring the IPv6
            // address fails after the move.
            let off = Command::new("ip")
                .args(["netns", "exec", &fx.ns, "sh", "-c"])
                .arg("echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6")
                .status()
                .unwrap();
            assert!(off.success());
            must(&["addr", "add", "192.0.2.33/24", "dev", &dev]);
            must(&[
                "-6",
                "addr",
                "add",
                "2001:db8:7::1/64",
                "dev",
                &dev,
                "nodad",
            ]);
            must(&["link", "set", &dev, "up"]);

            let ns = fx.ns_fd();
            let err = move_into(ns.as_fd(), &dev, &named("inside0")).unwrap_err();
            let msg = format!("{err:#}");
            assert!(
                msg.starts_with(&format!(
                    "linux.netDevices[{dev:?}]: restore address 2001:db8:7::1/64: Permission denied"
                )),
                "{msg}"
            );
            assert!(fx.in_ns(&["link", "show", "inside0"]).is_err());
            let link = must(&["link", "show", &dev]);
            assert!(is_up(&link), "{link}");
            let addrs = must(&["addr", "show", "dev", &dev]);
            assert!(addrs.contains("inet 192.0.2.33/24"), "{addrs}");
            assert!(addrs.contains("inet6 2001:db8:7::1/64"), "{addrs}");
        }

        #[test]
        fn bad_requests_fail_cleanly() {
            let fx = Fixture::new(1);
            let dev = fx.dev(0);
            let ns = fx.ns_fd();

            let missing = format!("{}x", fx.tags[0]);
            let err = move_into(ns.as_fd(), &missing, &LinuxNetDevice::default()).unwrap_err();
            assert_eq!(
                format!("{err:#}"),
                format!("linux.netDevices[{missing:?}]: look up host interface: No such device")
            );

            let err = move_into(ns.as_fd(), &dev, &named("bad/name")).unwrap_err();
            assert!(
                format!("{err:#}").contains("invalid name for the container"),
                "{err:#}"
            );

            let own = File::open("/proc/thread-self/ns/net").unwrap();
            let err = move_into(own.as_fd(), &dev, &LinuxNetDevice::default()).unwrap_err();
            assert!(format!("{err:#}").contains("shares the runtime's network namespace"));

            // lo cannot change namespace; the kernel says so and nothing moves.
            let err = move_into(ns.as_fd(), "lo", &named("lo2")).unwrap_err();
            assert!(
                format!("{err:#}").starts_with(
                    "linux.netDevices[\"lo\"]: move to container network namespace: Invalid argument"
                ),
                "{err:#}"
            );
            must(&["link", "show", "lo"]);

            must(&["link", "show", &dev]);
            assert!(fx.in_ns(&["link", "show", &dev]).is_err());
            let gone = MovedDevice {
                host_name: dev.clone(),
                container_name: "nothere0".into(),
            };
            let err = move_back(ns.as_fd(), &gone).unwrap_err();
            assert!(format!("{err:#}").contains("No such device"), "{err:#}");
        }
    }
}
