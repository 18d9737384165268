//! Test-only failpoints: named places where a `failpoints` build kills its own process
//! with SIGKILL, so tests can see what a runtime killed at that moment leaves behind.
//!
//! Without the `failpoints` cargo feature `hit` is an empty inline function: release
//! builds carry no failpoint code and never read the environment for one.

/// The environment variable naming the one failpoint to fire.
pub const ENV: &str = "KRAAL_FAILPOINT";

/// The failpoints of `container::create`, in the order it passes them.
pub const CREATE_STAGES: &[&str] = &[
    "after-state-dir",
    "after-cgroups",
    "after-clone",
    "after-go",
    "after-ready",
    "after-state-json",
];

/// Kills this process with SIGKILL when `KRAAL_FAILPOINT` equals `name`.
#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    if fires(name, std::env::var_os(ENV).as_deref()) {
        // SIGKILL, not exit: no destructor, undo guard or buffered write may run, just
        // as when the OOM killer or an impatient caller ends kraal.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        // Delivery to oneself happens before kill(2) returns; never go on regardless.
        loop {
            unsafe { libc::pause() };
        }
    }
}

/// Without the `failpoints` feature a failpoint is nothing at all.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) {}

#[cfg(feature = "failpoints")]
fn fires(name: &str, wanted: Option<&std::ffi::OsStr>) -> bool {
    wanted.is_some_and(|w| w == name)
}

#[cfg(all(test, feature = "failpoints"))]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn only_the_named_failpoint_fires() {
        assert!(fires("after-clone", Some(OsStr::new("after-clone"))));
        assert!(!fires("after-clone", Some(OsStr::new("after-cgroups"))));
        assert!(!fires("after-clone", Some(OsStr::new("after-clone-x"))));
        assert!(!fires("after-clone", Some(OsStr::new(""))));
        assert!(!fires("after-clone", None));
    }

    #[test]
    fn every_create_stage_is_placed_once() {
        let src = include_str!("container.rs");
        for name in CREATE_STAGES {
            let call = format!("crate::failpoint::hit({name:?});");
            assert_eq!(src.matches(&call).count(), 1, "{call} in src/container.rs");
        }
    }
}
