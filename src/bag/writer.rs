//! Writing `.mcap` files with the ROS 2 profile: one schema per type, its text from
//! [`crate::messages::schema_text`], CDR messages as the core encoded them ([`crate::messages::RosMessage`]).
//! rosbag2 plays a bare `.mcap` file (`ros2 bag play out.mcap`); `metadata.yaml` is only needed for directories.
//! The file is written under a temporary name beside the target ([`crate::files::AtomicFile`]) and renamed onto
//! it by [`BagWriter::finish`], which also writes the summary: a reader never sees a half-written bag, and a
//! writer dropped without `finish` leaves no file.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use mcap::records::MessageHeader;

use super::{mcap_err, BagError, MESSAGE_ENCODING, PROFILE};
use crate::files::AtomicFile;
use crate::messages::{schema_text, SCHEMA_ENCODING};

/// Chunk compression of written bags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BagCompression {
    None,
    /// zstd (rosbag2's `zstd_fast` preset does the same): label images and masks shrink several-fold.
    #[default]
    Zstd,
    Lz4,
}

/// Writes a `.mcap` file with the ROS 2 profile.
pub struct BagWriter {
    path: PathBuf,
    writer: mcap::Writer<BufWriter<File>>,
    /// Declared after `writer`: dropped after it, so an unfinished file is removed once the writer let go.
    atomic: AtomicFile,
    schemas: HashMap<String, u16>,
    sequences: HashMap<u16, u32>,
}

impl BagWriter {
    /// Starts `path` (written under a temporary name until [`BagWriter::finish`]), zstd-compressed chunks.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, BagError> {
        Self::create_with(path, BagCompression::default())
    }

    pub fn create_with(path: impl AsRef<Path>, compression: BagCompression) -> Result<Self, BagError> {
        let path = path.as_ref().to_path_buf();
        let mut atomic = AtomicFile::create(&path).map_err(|e| other(&path, e))?;
        let file = atomic.take_file().ok_or_else(|| other(&path, "temporary file already taken"))?;
        let compression = match compression {
            BagCompression::None => None,
            BagCompression::Zstd => Some(mcap::Compression::Zstd),
            BagCompression::Lz4 => Some(mcap::Compression::Lz4),
        };
        let writer = mcap::WriteOptions::new()
            .profile(PROFILE)
            .library(concat!("dinoseg/", env!("CARGO_PKG_VERSION"), " (mcap-rust)"))
            .compression(compression)
            .create(BufWriter::new(file))
            .map_err(mcap_err(&path))?;
        Ok(Self { path, writer, atomic, schemas: HashMap::new(), sequences: HashMap::new() })
    }

    /// Adds a topic of a ROS 2 type (`sensor_msgs/msg/Image`, ...) and returns its channel id. The type's schema
    /// (from [`crate::messages::schema_text`]) is written once per type.
    pub fn add_topic(&mut self, topic: &str, type_name: &str) -> Result<u16, BagError> {
        let schema_id = match self.schemas.get(type_name) {
            Some(&id) => id,
            None => {
                let text = schema_text(type_name).ok_or_else(|| BagError::UnknownType {
                    path: self.path.clone(),
                    type_name: type_name.to_string(),
                })?;
                let id = self
                    .writer
                    .add_schema(type_name, SCHEMA_ENCODING, text.as_bytes())
                    .map_err(mcap_err(&self.path))?;
                self.schemas.insert(type_name.to_string(), id);
                id
            }
        };
        // The ros2 profile requires this key; empty = no recorded QoS (rosbag2 and rosbags then use defaults).
        let metadata = BTreeMap::from([("offered_qos_profiles".to_string(), String::new())]);
        self.writer.add_channel(schema_id, topic, MESSAGE_ENCODING, &metadata).map_err(mcap_err(&self.path))
    }

    /// Writes one CDR message on a channel from [`BagWriter::add_topic`]; times in nanoseconds since the epoch.
    pub fn write(&mut self, channel: u16, log_time: u64, publish_time: u64, data: &[u8]) -> Result<(), BagError> {
        let sequence = self.sequences.entry(channel).or_insert(0);
        *sequence += 1;
        let header = MessageHeader { channel_id: channel, sequence: *sequence, log_time, publish_time };
        self.writer.write_to_known_channel(&header, data).map_err(mcap_err(&self.path))
    }

    /// The path the bag gets when finished.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the summary, flushes and syncs the file and renames it onto its path. Without it no file is left.
    pub fn finish(self) -> Result<(), BagError> {
        let Self { path, mut writer, atomic, .. } = self;
        let temp = atomic.temp_path().to_path_buf();
        writer.finish().map_err(mcap_err(&temp))?;
        let file = writer
            .into_inner()
            .into_inner()
            .map_err(|e| BagError::Io { path: temp.clone(), source: e.into_error() })?;
        file.sync_all().map_err(|source| BagError::Io { path: temp.clone(), source })?;
        drop(file);
        atomic.commit().map_err(|e| other(&path, e))?;
        Ok(())
    }
}

fn other(path: &Path, e: impl std::fmt::Display) -> BagError {
    BagError::Io { path: path.to_path_buf(), source: std::io::Error::other(e.to_string()) }
}
