//! The container's init process: how it is spawned, how it talks to the runtime,
//! and the sequence it runs before exec.

pub mod attrs;
pub mod finish;
pub mod init;
pub mod spawn;
pub mod sync;
