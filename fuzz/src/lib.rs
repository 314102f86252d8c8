//! The bodies of dinoseg's fuzz targets. [`harness`] is also compiled into the main crate's `tests/mutation.rs`
//! (a `#[path]` include), so the libFuzzer targets and the seeded mutation tests call the same entry points.

pub mod harness;
