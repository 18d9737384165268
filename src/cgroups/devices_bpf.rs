//! cgroup v2 device access: v2 has no `devices` files, so kraal builds a small
//! BPF_PROG_TYPE_CGROUP_DEVICE program from the reduced device list, loads it with
//! bpf(BPF_PROG_LOAD) and attaches it to the container's cgroup directory, replacing
//! the program it attached before (on `update`).
//!
//! The program is raw BPF instructions (no compiler, no library): registers hold the
//! request's type, access, major and minor; one block per exception jumps to the next
//! block when it does not match, and the last instruction returns the default action.

use super::devices::{Access, Kind, State, ANY};
use anyhow::{bail, Context, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// One BPF instruction (struct bpf_insn): `regs` holds dst in the low, src in the high nibble.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Instruction classes, operations and sources from linux/bpf_common.h and linux/bpf.h.
const BPF_LDX: u8 = 0x01;
const BPF_ALU: u8 = 0x04;
const BPF_JMP: u8 = 0x05;
const BPF_W: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
const BPF_K: u8 = 0x00;
const BPF_X: u8 = 0x08;
const BPF_AND: u8 = 0x50;
const BPF_RSH: u8 = 0x70;
const BPF_MOV: u8 = 0xb0;
const BPF_JEQ: u8 = 0x10;
const BPF_JNE: u8 = 0x50;
const BPF_EXIT: u8 = 0x90;

// struct bpf_cgroup_dev_ctx access bits and device types.
const DEVCG_ACC_MKNOD: i32 = 1;
const DEVCG_ACC_READ: i32 = 2;
const DEVCG_ACC_WRITE: i32 = 4;
const DEVCG_DEV_BLOCK: i32 = 1;
const DEVCG_DEV_CHAR: i32 = 2;

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}
fn load_u32(dst: u8, src: u8, off: i16) -> Insn {
    insn(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0)
}
fn alu32_imm(op: u8, dst: u8, imm: i32) -> Insn {
    insn(BPF_ALU | op | BPF_K, dst, 0, 0, imm)
}
fn mov32_reg(dst: u8, src: u8) -> Insn {
    insn(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0)
}
fn jump_imm(op: u8, dst: u8, imm: i32, off: i16) -> Insn {
    insn(BPF_JMP | op | BPF_K, dst, 0, off, imm)
}
fn jump_reg(op: u8, dst: u8, src: u8, off: i16) -> Insn {
    insn(BPF_JMP | op | BPF_X, dst, src, off, 0)
}
fn exit() -> Insn {
    insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
}

fn bpf_access(a: Access) -> i32 {
    let mut v = 0;
    if a.overlaps(Access::READ) {
        v |= DEVCG_ACC_READ;
    }
    if a.overlaps(Access::WRITE) {
        v |= DEVCG_ACC_WRITE;
    }
    if a.overlaps(Access::MKNOD) {
        v |= DEVCG_ACC_MKNOD;
    }
    v
}

/// Builds the program enforcing `state` with v1's matching rules: an allow exception
/// must cover every requested access bit, a deny exception matches any overlap.
pub fn program(state: &State) -> Vec<Insn> {
    let mut p = vec![
        // struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
        load_u32(R2, R1, 0),
        alu32_imm(BPF_AND, R2, 0xffff), // device type: low 16 bits
        load_u32(R3, R1, 0),
        alu32_imm(BPF_RSH, R3, 16), // access: high 16 bits
        load_u32(R4, R1, 4),
        load_u32(R5, R1, 8),
    ];
    let verdict = i32::from(!state.default_allow);
    for (node, access) in &state.exceptions {
        // Jumps are written with off = 0 and pointed at the block's end afterwards.
        let mut block = Vec::new();
        let ty = match node.kind {
            Kind::Block => DEVCG_DEV_BLOCK,
            Kind::Char => DEVCG_DEV_CHAR,
        };
        block.push(jump_imm(BPF_JNE, R2, ty, 0));
        let acc = bpf_access(*access);
        if state.default_allow {
            block.push(mov32_reg(R1, R3));
            block.push(alu32_imm(BPF_AND, R1, acc));
            block.push(jump_imm(BPF_JEQ, R1, 0, 0));
        } else if *access != Access::ALL {
            block.push(mov32_reg(R1, R3));
            block.push(alu32_imm(BPF_AND, R1, acc));
            block.push(jump_reg(BPF_JNE, R1, R3, 0));
        }
        if node.major != ANY {
            block.push(jump_imm(BPF_JNE, R4, node.major as u32 as i32, 0));
        }
        if node.minor != ANY {
            block.push(jump_imm(BPF_JNE, R5, node.minor as u32 as i32, 0));
        }
        block.push(alu32_imm(BPF_MOV, R0, verdict));
        block.push(exit());
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code & 0x07 == BPF_JMP && ins.code & 0xf0 != BPF_EXIT {
                ins.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
    }
    p.push(alu32_imm(BPF_MOV, R0, i32::from(state.default_allow)));
    p.push(exit());
    p
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 1 << 1;
const BPF_F_REPLACE: u32 = 1 << 2;

#[repr(C)]
#[derive(Default)]
struct LoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Loads the program; on failure asks the verifier why and reports its log.
pub fn load(insns: &[Insn]) -> Result<OwnedFd> {
    let license = c"Apache-2.0";
    let mut name = [0u8; 16];
    name[..11].copy_from_slice(b"kraal_devcg");
    let mut attr = LoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(e)
            if e.raw_os_error() != Some(libc::EACCES) && e.raw_os_error() != Some(libc::EINVAL) =>
        {
            return Err(e).context("bpf(BPF_PROG_LOAD) of the device cgroup program");
        }
        Err(_) => {}
    }
    let mut log = vec![0u8; 64 * 1024];
    attr.log_level = 1;
    attr.log_size = log.len() as u32;
    attr.log_buf = log.as_mut_ptr() as u64;
    let e = match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(e) => e,
    };
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(&log[..end]);
    Err(e).with_context(|| {
        format!(
            "bpf(BPF_PROG_LOAD) of the device cgroup program: verifier said: {}",
            text.trim()
        )
    })
}

/// Ids of the device programs attached to a cgroup directory.
pub fn attached(dir_fd: &OwnedFd) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    for _ in 0..10 {
        let mut q = QueryAttr {
            target_fd: dir_fd.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            ..Default::default()
        };
        match bpf(BPF_PROG_QUERY, &mut q) {
            Ok(_) => {
                ids.truncate(q.prog_cnt as usize);
                return Ok(ids);
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                ids = vec![0u32; q.prog_cnt as usize + 16];
            }
            Err(e) => return Err(e).context("bpf(BPF_PROG_QUERY, BPF_CGROUP_DEVICE)"),
        }
    }
    bail!("bpf(BPF_PROG_QUERY): the list of device programs kept changing")
}

fn prog_fd(id: u32) -> Result<OwnedFd> {
    let mut a = GetFdAttr {
        prog_id: id,
        ..Default::default()
    };
    let fd = bpf(BPF_PROG_GET_FD_BY_ID, &mut a)
        .with_context(|| format!("bpf(BPF_PROG_GET_FD_BY_ID, {id})"))?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn attach(dir_fd: &OwnedFd, prog: &OwnedFd, replace: Option<&OwnedFd>) -> std::io::Result<()> {
    let mut a = AttachAttr {
        target_fd: dir_fd.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    if let Some(old) = replace {
        a.attach_flags |= BPF_F_REPLACE;
        a.replace_bpf_fd = old.as_raw_fd() as u32;
    }
    bpf(BPF_PROG_ATTACH, &mut a).map(|_| ())
}

fn detach(dir_fd: &OwnedFd, prog: &OwnedFd) -> std::io::Result<()> {
    let mut a = AttachAttr {
        target_fd: dir_fd.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    bpf(BPF_PROG_DETACH, &mut a).map(|_| ())
}

/// Makes `state` the device policy of the cgroup at `dir`: loads the new program,
/// then swaps it for the one attached before (atomically with BPF_F_REPLACE when there
/// is exactly one), so there is no moment with no policy or with two.
pub fn apply(dir: &Path, state: &State) -> Result<()> {
    let dir_fd: OwnedFd = std::fs::File::open(dir)
        .with_context(|| format!("open cgroup {}", dir.display()))?
        .into();
    let old: Vec<OwnedFd> = attached(&dir_fd)
        .with_context(|| format!("list device programs of {}", dir.display()))?
        .into_iter()
        .map(prog_fd)
        .collect::<Result<_>>()?;
    let prog = load(&program(state))?;
    let what = || format!("bpf(BPF_PROG_ATTACH) device program to {}", dir.display());
    if old.len() == 1 {
        match attach(&dir_fd, &prog, Some(&old[0])) {
            Ok(()) => return Ok(()),
            // Kernels before 5.6 lack BPF_F_REPLACE: attach, then detach the old one.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(e).with_context(what),
        }
    }
    attach(&dir_fd, &prog, None).with_context(what)?;
    for o in &old {
        detach(&dir_fd, o).with_context(|| {
            format!(
                "bpf(BPF_PROG_DETACH) previous device program from {}",
                dir.display()
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::devices::{Node, Rule};
    use super::*;

    #[test]
    fn allow_list_program_layout() {
        let s = State::from_rules(&[
            Rule {
                allow: false,
                kind: None,
                major: ANY,
                minor: ANY,
                access: Access::ALL,
            },
            Rule {
                allow: true,
                kind: Some(Kind::Char),
                major: 1,
                minor: 3,
                access: Access::ALL,
            },
            Rule {
                allow: true,
                kind: Some(Kind::Block),
                major: 8,
                minor: ANY,
                access: Access::READ,
            },
        ])
        .unwrap();
        let p = program(&s);
        // Prologue: 6, block "c 1:3 rwm": jne type, jne major, jne minor, mov, exit.
        assert_eq!(p.len(), 6 + 7 + 5 + 2);
        // Blocks come in (major, minor, type) order: c 1:3 first.
        let b1 = &p[6..11];
        assert_eq!(b1[0], jump_imm(BPF_JNE, R2, DEVCG_DEV_CHAR, 4));
        assert_eq!(b1[1], jump_imm(BPF_JNE, R4, 1, 3));
        assert_eq!(b1[2], jump_imm(BPF_JNE, R5, 3, 2));
        assert_eq!(b1[3], alu32_imm(BPF_MOV, R0, 1));
        assert_eq!(b1[4], exit());
        let b2 = &p[11..18];
        assert_eq!(b2[0], jump_imm(BPF_JNE, R2, DEVCG_DEV_BLOCK, 6));
        assert_eq!(b2[2], alu32_imm(BPF_AND, R1, DEVCG_ACC_READ));
        assert_eq!(b2[3], jump_reg(BPF_JNE, R1, R3, 3));
        assert_eq!(b2[4], jump_imm(BPF_JNE, R4, 8, 2));
        // Default: deny.
        assert_eq!(p[p.len() - 2], alu32_imm(BPF_MOV, R0, 0));
        assert_eq!(p[p.len() - 1], exit());
        // Encoding of the first instruction: ldxw r2, [r1+0].
        assert_eq!(p[0].code, 0x61);
        assert_eq!(p[0].regs, 0x12);
    }

    #[test]
    fn deny_list_matches_any_overlap() {
        let mut s = State {
            default_allow: true,
            ..Default::default()
        };
        s.exceptions.insert(
            Node {
                major: 1,
                minor: 11,
                kind: Kind::Char,
            },
            Access::WRITE,
        );
        let p = program(&s);
        assert_eq!(p[7], mov32_reg(R1, R3));
        assert_eq!(p[8], alu32_imm(BPF_AND, R1, DEVCG_ACC_WRITE));
        assert_eq!(p[9].code, BPF_JMP | BPF_JEQ | BPF_K);
        assert_eq!(p[12], alu32_imm(BPF_MOV, R0, 0));
        assert_eq!(p[p.len() - 2], alu32_imm(BPF_MOV, R0, 1));
    }
}
