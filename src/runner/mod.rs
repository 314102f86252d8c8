//! The offline runner (`dinoseg run`): image files, folders, globs or ROS 2 bags in; label images, colour
//! images, overlays and instances out, as files or as a bag holding the topics the node publishes.

pub mod folder;
pub mod inputs;
pub mod run;
pub mod stats;

pub use run::{run, RunOptions};
pub use stats::RunStats;
