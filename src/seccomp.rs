//! Seccomp filters from `linux.seccomp` (placeholder: being written).
