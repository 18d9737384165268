//! The device access list (`linux.resources.devices`): rules in the spec's order reduced
//! to what the kernel keeps (a default action plus per-device exceptions), the least
//! disruptive list of writes that moves a v1 `devices` cgroup from its current list to a
//! new one, and the devices every container may use.
//!
//! The same reduced state drives the v2 eBPF program, so both versions enforce exactly
//! the same access (as runc does).

use anyhow::{bail, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
use std::collections::BTreeMap;

/// Major or minor number meaning "any".
pub const ANY: i64 = -1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Block,
    Char,
}

impl Kind {
    pub fn letter(self) -> char {
        match self {
            Kind::Block => 'b',
            Kind::Char => 'c',
        }
    }
}

/// A set of `r` (read), `w` (write) and `m` (mknod).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Access(pub u8);

impl Access {
    pub const READ: Access = Access(1);
    pub const WRITE: Access = Access(2);
    pub const MKNOD: Access = Access(4);
    pub const ALL: Access = Access(7);

    pub fn parse(s: &str) -> Option<Access> {
        let mut a = 0;
        for c in s.chars() {
            a |= match c {
                'r' => 1,
                'w' => 2,
                'm' => 4,
                _ => return None,
            };
        }
        Some(Access(a))
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn union(self, o: Access) -> Access {
        Access(self.0 | o.0)
    }
    pub fn minus(self, o: Access) -> Access {
        Access(self.0 & !o.0)
    }
    pub fn overlaps(self, o: Access) -> bool {
        self.0 & o.0 != 0
    }
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (bit, c) in [(1, 'r'), (2, 'w'), (4, 'm')] {
            if self.0 & bit != 0 {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// One device (or wildcard family of devices) an exception is about. Ordered by
/// major, minor, then type, so transitions are written in a stable order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Node {
    pub major: i64,
    pub minor: i64,
    pub kind: Kind,
}

/// One entry of the spec's list; `kind: None` is type `a` (every device).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub kind: Option<Kind>,
    pub major: i64,
    pub minor: i64,
    pub access: Access,
}

fn num(n: i64) -> String {
    if n == ANY {
        "*".to_string()
    } else {
        n.to_string()
    }
}

impl Rule {
    /// The line written to `devices.allow` / `devices.deny`.
    pub fn cgroup_string(&self) -> String {
        let t = self.kind.map(Kind::letter).unwrap_or('a');
        format!(
            "{t} {}:{} {}",
            num(self.major),
            num(self.minor),
            self.access
        )
    }

    /// Converts `linux.resources.devices[i]`, naming the field at fault.
    pub fn from_spec(i: usize, d: &LinuxDeviceCgroup) -> Result<Rule> {
        let field = format!("linux.resources.devices[{i}]");
        let kind = match d.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => None,
            LinuxDeviceType::B => Some(Kind::Block),
            LinuxDeviceType::C => Some(Kind::Char),
            other => bail!(
                "{field}.type: {:?} is not a cgroup device type (a, b or c)",
                other.as_str()
            ),
        };
        let number = |name: &str, v: Option<i64>| -> Result<i64> {
            match v {
                None => Ok(ANY),
                Some(n) if n == ANY || (0..=i64::from(u32::MAX)).contains(&n) => Ok(n),
                Some(n) => bail!("{field}.{name}: {n} is not a device number"),
            }
        };
        let major = number("major", d.major())?;
        let minor = number("minor", d.minor())?;
        let text = d.access().as_deref().unwrap_or("");
        let access = match Access::parse(text) {
            Some(a) if !a.is_empty() => a,
            _ => bail!("{field}.access: {text:?} must be a non-empty combination of r, w and m"),
        };
        Ok(Rule {
            allow: d.allow(),
            kind,
            major,
            minor,
            access,
        })
    }
}

/// What the kernel keeps for a device cgroup: a default action and exceptions to it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub default_allow: bool,
    pub exceptions: BTreeMap<Node, Access>,
}

impl State {
    /// Every device denied: where a container's list starts (runc starts there too, so
    /// a config without device rules still gets only the default devices).
    pub fn deny_all() -> State {
        State::default()
    }

    pub fn is_allow_all(&self) -> bool {
        self.default_allow && self.exceptions.is_empty()
    }

    /// Reduces rules in order, with the kernel's semantics.
    pub fn from_rules(rules: &[Rule]) -> Result<State> {
        let mut s = State::deny_all();
        for r in rules {
            s.apply(r)?;
        }
        Ok(s)
    }

    pub fn apply(&mut self, r: &Rule) -> Result<()> {
        let Some(kind) = r.kind else {
            // Type `a` resets the cgroup whatever its numbers and access say (v1 does so).
            self.default_allow = r.allow;
            self.exceptions.clear();
            return Ok(());
        };
        let node = Node {
            major: r.major,
            minor: r.minor,
            kind,
        };
        if r.allow == self.default_allow {
            self.remove(node, r.access, r)
        } else {
            let e = self.exceptions.entry(node).or_default();
            *e = e.union(r.access);
            Ok(())
        }
    }

    fn remove(&mut self, node: Node, access: Access, r: &Rule) -> Result<()> {
        // v1 only removes an exception with exactly these numbers: a narrower rule cannot
        // take access away from a wildcard exception, and the kernel ignores it silently.
        // Refuse rather than leave the device open while the config says it is closed.
        for (major, minor) in [(ANY, node.minor), (node.major, ANY), (ANY, ANY)] {
            let wide = Node {
                major,
                minor,
                kind: node.kind,
            };
            if wide == node {
                continue;
            }
            if let Some(a) = self.exceptions.get(&wide) {
                if a.overlaps(access) {
                    bail!(
                        "device rule {:?} cannot narrow the earlier wildcard rule {:?}: cgroups cannot express it",
                        r.cgroup_string(),
                        format!("{} {}:{} {}", wide.kind.letter(), num(wide.major), num(wide.minor), a)
                    );
                }
            }
        }
        if let Some(a) = self.exceptions.get_mut(&node) {
            *a = a.minus(access);
            if a.is_empty() {
                self.exceptions.remove(&node);
            }
        }
        Ok(())
    }

    /// Parses v1's `devices.list`: `a *:* rwm` when the default is allow (the deny
    /// exceptions are then invisible), else one allowed exception per line.
    pub fn from_list(text: &str) -> Result<State> {
        let mut s = State::deny_all();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let bad = || anyhow::anyhow!("devices.list: malformed line {line:?}");
            let mut f = line.split([' ', ':']);
            let (t, ma, mi, acc) = (f.next(), f.next(), f.next(), f.next());
            let (Some(t), Some(ma), Some(mi), Some(acc), None) = (t, ma, mi, acc, f.next()) else {
                return Err(bad());
            };
            let kind = match t {
                "a" => None,
                "b" => Some(Kind::Block),
                "c" => Some(Kind::Char),
                _ => return Err(bad()),
            };
            let n = |v: &str| -> Result<i64> {
                if v == "*" {
                    return Ok(ANY);
                }
                v.parse::<u32>().map(i64::from).map_err(|_| bad())
            };
            let access = Access::parse(acc).ok_or_else(bad)?;
            s.apply(&Rule {
                allow: true,
                kind,
                major: n(ma)?,
                minor: n(mi)?,
                access,
            })?;
        }
        Ok(s)
    }

    /// The writes that turn a cgroup in state `self` into `target`, disturbing running
    /// processes as little as possible: the whole-cgroup reset (which briefly denies
    /// everything) is used only when the default action changes, or when the current
    /// deny exceptions cannot be read back.
    pub fn transition(&self, target: &State) -> Vec<Rule> {
        let mut out = Vec::new();
        let empty = BTreeMap::new();
        let old = if self.default_allow || self.default_allow != target.default_allow {
            out.push(Rule {
                allow: target.default_allow,
                kind: None,
                major: ANY,
                minor: ANY,
                access: Access::ALL,
            });
            &empty
        } else {
            &self.exceptions
        };
        let rule = |allow: bool, n: &Node, access: Access| Rule {
            allow,
            kind: Some(n.kind),
            major: n.major,
            minor: n.minor,
            access,
        };
        for (n, a) in old {
            let dropped = a.minus(target.exceptions.get(n).copied().unwrap_or_default());
            if !dropped.is_empty() {
                out.push(rule(target.default_allow, n, dropped));
            }
        }
        for (n, a) in &target.exceptions {
            let gained = a.minus(old.get(n).copied().unwrap_or_default());
            if !gained.is_empty() {
                out.push(rule(!target.default_allow, n, gained));
            }
        }
        out
    }
}

/// Devices every container may use, appended after the spec's rules as runc does
/// (mknod of anything, the standard character devices, ptys, /dev/net/tun).
pub fn default_rules() -> Vec<Rule> {
    let c = |major: i64, minor: i64, access: Access| Rule {
        allow: true,
        kind: Some(Kind::Char),
        major,
        minor,
        access,
    };
    vec![
        c(ANY, ANY, Access::MKNOD),
        Rule {
            allow: true,
            kind: Some(Kind::Block),
            major: ANY,
            minor: ANY,
            access: Access::MKNOD,
        },
        c(1, 3, Access::ALL),     // /dev/null
        c(1, 8, Access::ALL),     // /dev/random
        c(1, 7, Access::ALL),     // /dev/full
        c(5, 0, Access::ALL),     // /dev/tty
        c(1, 5, Access::ALL),     // /dev/zero
        c(1, 9, Access::ALL),     // /dev/urandom
        c(136, ANY, Access::ALL), // /dev/pts/*
        c(5, 2, Access::ALL),     // /dev/ptmx
        c(10, 200, Access::ALL),  // /dev/net/tun
    ]
}

/// The container's rules: the spec's list, then the defaults.
pub fn container_rules(spec: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>> {
    let mut rules = spec
        .iter()
        .enumerate()
        .map(|(i, d)| Rule::from_spec(i, d))
        .collect::<Result<Vec<_>>>()?;
    rules.extend(default_rules());
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(allow: bool, kind: Option<Kind>, major: i64, minor: i64, a: &str) -> Rule {
        Rule {
            allow,
            kind,
            major,
            minor,
            access: Access::parse(a).unwrap(),
        }
    }
    const C: Option<Kind> = Some(Kind::Char);

    fn strings(rules: &[Rule]) -> Vec<String> {
        rules.iter().map(|r| r.cgroup_string()).collect()
    }

    #[test]
    fn reduces_in_order() {
        let s = State::from_rules(&[
            rule(false, None, ANY, ANY, "rwm"),
            rule(true, C, 1, 3, "rw"),
            rule(true, C, 1, 3, "m"),
            rule(false, C, 1, 3, "w"),
            rule(true, C, 1, 5, "r"),
            rule(false, C, 1, 5, "r"),
        ])
        .unwrap();
        assert!(!s.default_allow);
        assert_eq!(s.exceptions.len(), 1);
        let n = Node {
            major: 1,
            minor: 3,
            kind: Kind::Char,
        };
        assert_eq!(s.exceptions[&n].to_string(), "rm");
    }

    #[test]
    fn a_resets() {
        let s = State::from_rules(&[rule(true, C, 1, 3, "rw"), rule(true, None, ANY, ANY, "r")])
            .unwrap();
        assert!(s.is_allow_all());
    }

    #[test]
    fn narrowing_a_wildcard_is_refused() {
        let e = State::from_rules(&[rule(true, C, 1, ANY, "rw"), rule(false, C, 1, 3, "w")])
            .unwrap_err();
        assert!(e.to_string().contains("c 1:* rw"), "{e}");
        // Disjoint access is fine.
        State::from_rules(&[rule(true, C, 1, ANY, "r"), rule(false, C, 1, 3, "w")]).unwrap();
    }

    #[test]
    fn fresh_cgroup_gets_reset_then_allows() {
        let target = State::from_rules(&container_rules(&[]).unwrap()).unwrap();
        let fresh = State::from_list("a *:* rwm\n").unwrap();
        assert!(fresh.is_allow_all());
        let t = strings(&fresh.transition(&target));
        assert_eq!(t[0], "a *:* rwm");
        assert!(!fresh.transition(&target)[0].allow);
        assert!(t.contains(&"c 1:3 rwm".to_string()));
        assert!(t.contains(&"c *:* m".to_string()));
        assert!(t.contains(&"c 136:* rwm".to_string()));
        assert_eq!(t.len(), 1 + 11);
    }

    #[test]
    fn update_writes_only_the_difference() {
        let cur = State::from_list("c 1:3 rwm\nc 1:5 rwm\nb *:* m\n").unwrap();
        let target = State::from_rules(&[
            rule(false, None, ANY, ANY, "rwm"),
            rule(true, C, 1, 3, "rwm"),
            rule(true, C, 1, 5, "r"),
            rule(true, C, 10, 200, "rw"),
        ])
        .unwrap();
        let t = cur.transition(&target);
        assert_eq!(strings(&t), ["b *:* m", "c 1:5 wm", "c 10:200 rw"], "{t:?}");
        assert_eq!(
            t.iter().map(|r| r.allow).collect::<Vec<_>>(),
            [false, false, true]
        );
        // Applying the transition to the current state lands exactly on the target.
        let mut after = cur.clone();
        for r in &t {
            after.apply(r).unwrap();
        }
        assert_eq!(after, target);
    }

    #[test]
    fn blacklist_target_from_allow_all() {
        let target = State::from_rules(&[
            rule(true, None, ANY, ANY, "rwm"),
            rule(false, C, 1, 11, "rwm"),
        ])
        .unwrap();
        let cur = State::from_list("a *:* rwm\n").unwrap();
        let t = cur.transition(&target);
        assert_eq!(strings(&t), ["a *:* rwm", "c 1:11 rwm"]);
        assert_eq!(t.iter().map(|r| r.allow).collect::<Vec<_>>(), [true, false]);
    }

    #[test]
    fn spec_fields() {
        let d: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow":true,"type":"c","major":1,"access":"rw"}"#).unwrap();
        let r = Rule::from_spec(0, &d).unwrap();
        assert_eq!(r.cgroup_string(), "c 1:* rw");
        let d: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow":true,"type":"p","access":"rw"}"#).unwrap();
        let e = Rule::from_spec(2, &d).unwrap_err();
        assert!(
            e.to_string().starts_with("linux.resources.devices[2].type"),
            "{e}"
        );
        let d: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow":true,"major":-5,"access":"r"}"#).unwrap();
        assert!(Rule::from_spec(0, &d).is_err());
        let d: LinuxDeviceCgroup = serde_json::from_str(r#"{"allow":false}"#).unwrap();
        assert!(Rule::from_spec(0, &d)
            .unwrap_err()
            .to_string()
            .contains("access"));
    }

    #[test]
    fn list_parse_errors() {
        assert!(State::from_list("c 1:3\n").is_err());
        assert!(State::from_list("x 1:3 rwm\n").is_err());
        assert!(State::from_list("c 1:3 rwx\n").is_err());
    }
}
