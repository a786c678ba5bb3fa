//! `pollsim compare`: the livelock experiment.

pub mod calibrate;
pub mod cpus;
pub mod experiment;
pub mod hostcheck;
pub mod mlfrr;
pub mod model;
pub mod modes;
pub mod output;
pub mod plot;
pub mod plot_cpus;
pub mod profile;
pub mod sim;
pub mod summary;
pub mod sweep;
pub mod trials;
