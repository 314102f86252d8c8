//! The offline runner (`dinoseg run`): image files, folders, globs or ROS 2 bags in; label images, colour
//! images, overlays and instances out, as files or as a bag holding the topics the node publishes.

pub mod eval_files;
pub mod folder;
mod guard;
pub mod inputs;
pub mod run;
pub mod signals;
pub mod stats;

pub use run::{run, run_with_model, RunModel, RunOptions};
pub use stats::RunStats;
