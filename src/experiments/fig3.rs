//! Figure 3 (Sec. 6): the synthetic k-subset experiment. (In progress.)

use super::{Profile, RunContext, Summary};
use anyhow::Result;
use serde::{Deserialize, Serialize};

/// Command-line overrides of Figure 3.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {}

/// Resolved configuration of Figure 3.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Config {}

impl Args {
    /// The configuration.
    pub fn resolve(&self, _profile: Profile) -> Result<Config> {
        Ok(Config {})
    }
}

/// Runs Figure 3.
pub fn run(_cfg: &Config, _ctx: &RunContext) -> Result<Summary> {
    anyhow::bail!("fig3 is not implemented yet")
}
