//! Filesystem access that must not be fooled by what a container image contains.

pub mod safe_path;
