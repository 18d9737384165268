//! `update`, `pause`, `resume`, `events` and `ps` (placeholder: being written).
use anyhow::{bail, Result};
use clap::Args;
use std::path::Path;

#[derive(Args, Debug)]
pub struct UpdateArgs {
    pub id: String,
}
#[derive(Args, Debug)]
pub struct EventsArgs {
    pub id: String,
}
#[derive(Args, Debug)]
pub struct PsArgs {
    pub id: String,
}

pub fn update(_root: &Path, _a: &UpdateArgs) -> Result<()> {
    bail!("update: not implemented yet")
}
pub fn pause(_root: &Path, _id: &str) -> Result<()> {
    bail!("pause: not implemented yet")
}
pub fn resume(_root: &Path, _id: &str) -> Result<()> {
    bail!("resume: not implemented yet")
}
pub fn events(_root: &Path, _a: &EventsArgs) -> Result<()> {
    bail!("events: not implemented yet")
}
pub fn ps(_root: &Path, _a: &PsArgs) -> Result<()> {
    bail!("ps: not implemented yet")
}
