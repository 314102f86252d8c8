//! dinoseg: DINOv3 backbones and segmentation heads on libtorch (tch), for ROS 2 robots and offline runs.
//!
//! The core has no ROS dependency: the catalog of DINOv3 variants ([`catalog`]), checkpoint loading from every
//! source ([`checkpoint`]), the models ([`model`]) and camera-frame decoding and preprocessing ([`pipeline`]).
//! The ROS 2 node (`dinoseg_node`, cargo feature `ros`) is a thin adapter over this crate.

pub mod bag;
pub mod catalog;
pub mod checkpoint;
pub mod device;
pub mod error;
pub mod eval;
pub mod files;
pub mod messages;
pub mod model;
pub mod node;
pub mod params;
pub mod pipeline;
pub mod plan;
pub mod postprocess;
pub mod publish;
pub mod render;
pub mod runner;
pub mod segmenter;
pub mod topics;
pub mod train;

pub use error::{Error, Result};
