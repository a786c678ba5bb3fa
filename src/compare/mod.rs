//! `pollsim compare`: the livelock experiment.

pub mod calibrate;
pub mod experiment;
pub mod model;
pub mod output;
pub mod plot;
pub mod sim;
pub mod summary;
pub mod sweep;
