//! ROS 2 bags (MCAP): reading camera topics and writing the published topics for the offline mode.
//!
//! References: the MCAP format specification (mcap.dev/spec) and its ROS 2 profile (mcap.dev/spec/registry:
//! profile `ros2`, schema encoding `ros2msg`, message encoding `cdr`), rosbag2's MCAP storage plugin
//! (`rosbag2_storage_mcap`, the default storage since Iron and an option in Humble), and the `mcap` crate, which
//! does the record-level work.
//!
//! * [`BagReader::open`] takes a `.mcap` file or a rosbag2 directory (`metadata.yaml` next to `<name>_0.mcap`,
//!   `<name>_1.mcap`, ...: the files are read one after the other, in split order). It lists the topics with their
//!   type names (`sensor_msgs/msg/Image`, ...) and [`BagReader::messages`] streams the messages of chosen topics:
//!   in log-time order through the summary's chunk indexes (one chunk in memory at a time, chunks read with
//!   seeks, zstd/lz4 decompressed), or, for a file without a summary (a recording that was cut off), linearly in
//!   file order, which is the order rosbag2 records in. Nothing holds the whole file in memory.
//! * [`BagWriter`] writes one `.mcap` file with the `ros2` profile: one schema per type, its text from
//!   [`crate::messages::schema_text`], CDR messages as the core encoded them ([`crate::messages::RosMessage`]).
//!   rosbag2 plays a bare `.mcap` file (`ros2 bag play out.mcap`); `metadata.yaml` is only needed for directories.
//!
//! Errors name the file: an I/O failure, a file that is not MCAP, corrupt or truncated records (reported when the
//! reader reaches them, after the messages before them), an unknown topic or type.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use mcap::records::MessageHeader;
use mcap::sans_io::indexed_reader::{IndexedReadEvent, IndexedReader, IndexedReaderOptions, ReadOrder};
use mcap::sans_io::summary_reader::{SummaryReadEvent, SummaryReader, SummaryReaderOptions};
use mcap::sans_io::LinearReaderOptions;
use mcap::{McapError, Summary};

use crate::messages::{schema_text, SCHEMA_ENCODING};

/// MCAP profile of ROS 2 bags.
pub const PROFILE: &str = "ros2";
/// MCAP message encoding of ROS 2 messages.
pub const MESSAGE_ENCODING: &str = "cdr";
/// Largest record (or decompressed chunk) we accept: a corrupt length field must not allocate more than this.
const RECORD_LIMIT: usize = 1 << 30;

/// Errors of reading and writing bags; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum BagError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not an MCAP file (no MCAP magic bytes at the start)")]
    NotMcap { path: PathBuf },
    #[error("{path}: corrupt or truncated MCAP: {source}")]
    Mcap { path: PathBuf, source: McapError },
    #[error("{path}: no .mcap file in this directory")]
    NoMcapFiles { path: PathBuf },
    #[error("{path}: no topic `{topic}` in the bag (topics: {available})")]
    UnknownTopic { path: PathBuf, topic: String, available: String },
    #[error("{path}: no ros2msg definition for message type `{type_name}`")]
    UnknownType { path: PathBuf, type_name: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BagError + '_ {
    move |source| BagError::Io { path: path.to_path_buf(), source }
}

fn mcap_err(path: &Path) -> impl FnOnce(McapError) -> BagError + '_ {
    move |source| match source {
        McapError::Io(source) => BagError::Io { path: path.to_path_buf(), source },
        source => BagError::Mcap { path: path.to_path_buf(), source },
    }
}

/// A topic of a bag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub topic: String,
    /// The schema name: the ROS 2 type, e.g. `sensor_msgs/msg/Image`.
    pub type_name: String,
    /// `cdr` for ROS 2 bags.
    pub message_encoding: String,
    /// Messages on this topic, over all files.
    pub message_count: u64,
}

/// One message of a bag: its topic, type and CDR bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BagMessage {
    pub topic: String,
    pub type_name: String,
    /// Nanoseconds since the epoch (when rosbag2 received it).
    pub log_time: u64,
    /// Nanoseconds since the epoch (when it was published, or the log time).
    pub publish_time: u64,
    pub sequence: u32,
    /// The serialized message: CDR with its encapsulation header.
    pub data: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Channel {
    topic: String,
    type_name: String,
    encoding: String,
    count: u64,
}

#[derive(Debug)]
struct BagFile {
    path: PathBuf,
    /// Present when the file has a summary with chunk indexes: read in log-time order through them.
    summary: Option<Summary>,
    channels: BTreeMap<u16, Channel>,
}

/// Reads a `.mcap` file or a rosbag2 directory of them.
#[derive(Debug)]
pub struct BagReader {
    path: PathBuf,
    files: Vec<BagFile>,
    topics: Vec<TopicInfo>,
}

impl BagReader {
    /// Opens a bag: checks each file's magic, reads its summary (or scans a file that has none) for the topics.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, BagError> {
        let path = path.as_ref();
        let paths = if path.is_dir() { mcap_files_in(path)? } else { vec![path.to_path_buf()] };
        let files = paths.into_iter().map(|p| open_file(&p)).collect::<Result<Vec<_>, _>>()?;
        let mut topics: Vec<TopicInfo> = Vec::new();
        for channel in files.iter().flat_map(|f| f.channels.values()) {
            match topics.iter_mut().find(|t| t.topic == channel.topic && t.type_name == channel.type_name) {
                Some(t) => t.message_count += channel.count,
                None => topics.push(TopicInfo {
                    topic: channel.topic.clone(),
                    type_name: channel.type_name.clone(),
                    message_encoding: channel.encoding.clone(),
                    message_count: channel.count,
                }),
            }
        }
        topics.sort_by(|a, b| a.topic.cmp(&b.topic));
        Ok(Self { path: path.to_path_buf(), files, topics })
    }

    /// The path given to [`BagReader::open`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `.mcap` files read, in order.
    pub fn files(&self) -> Vec<&Path> {
        self.files.iter().map(|f| f.path.as_path()).collect()
    }

    /// Every topic, sorted by name.
    pub fn topics(&self) -> &[TopicInfo] {
        &self.topics
    }

    pub fn topic(&self, topic: &str) -> Option<&TopicInfo> {
        self.topics.iter().find(|t| t.topic == topic)
    }

    /// Streams the messages of `topics` (all topics when empty), in log-time order within each file. A topic that
    /// is not in the bag is an error listing the ones that are.
    pub fn messages(&self, topics: &[&str]) -> Result<Messages<'_>, BagError> {
        for topic in topics {
            if self.topic(topic).is_none() {
                let available = self.topics.iter().map(|t| t.topic.as_str()).collect::<Vec<_>>().join(", ");
                return Err(BagError::UnknownTopic { path: self.path.clone(), topic: topic.to_string(), available });
            }
        }
        let wanted = (!topics.is_empty()).then(|| topics.iter().map(|t| t.to_string()).collect());
        Ok(Messages { files: &self.files, next_file: 0, current: None, wanted, failed: false })
    }
}

/// The `.mcap` files of a rosbag2 directory, in split order (`name_0.mcap`, `name_1.mcap`, ..., `name_10.mcap`).
fn mcap_files_in(dir: &Path) -> Result<Vec<PathBuf>, BagError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let p = entry.map_err(io_err(dir))?.path();
        if p.is_file() && p.extension().is_some_and(|e| e == "mcap") {
            files.push(p);
        }
    }
    if files.is_empty() {
        return Err(BagError::NoMcapFiles { path: dir.to_path_buf() });
    }
    let split_index = |p: &PathBuf| {
        let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        stem.rsplit_once('_').and_then(|(_, n)| n.parse::<u64>().ok()).unwrap_or(0)
    };
    files.sort_by(|a, b| split_index(a).cmp(&split_index(b)).then_with(|| a.cmp(b)));
    Ok(files)
}

fn read_summary(file: &mut File, len: u64) -> Result<Option<Summary>, McapError> {
    let options = SummaryReaderOptions::default().with_file_size(len).with_record_length_limit(RECORD_LIMIT);
    let mut reader = SummaryReader::new_with_options(options);
    while let Some(event) = reader.next_event() {
        match event? {
            SummaryReadEvent::ReadRequest(n) => {
                let read = file.read(reader.insert(n))?;
                reader.notify_read(read);
            }
            SummaryReadEvent::SeekRequest(to) => reader.notify_seeked(file.seek(to)?),
        }
    }
    Ok(reader.finish())
}

fn linear_reader(path: &Path) -> Result<mcap::io::MessageReader<BufReader<File>>, BagError> {
    let file = File::open(path).map_err(io_err(path))?;
    let options = LinearReaderOptions::default().with_record_length_limit(RECORD_LIMIT);
    Ok(mcap::io::MessageReader::new_with_options(BufReader::new(file), options))
}

fn open_file(path: &Path) -> Result<BagFile, BagError> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    let mut magic = [0u8; 8];
    if file.read_exact(&mut magic).is_err() || magic != mcap::MAGIC {
        return Err(BagError::NotMcap { path: path.to_path_buf() });
    }
    // A summary we cannot read (a cut-off recording has none) means a linear scan instead.
    let summary = read_summary(&mut file, len).ok().flatten();
    if let Some(summary) = summary {
        let counts = summary.stats.as_ref().map(|s| s.channel_message_counts.clone()).unwrap_or_default();
        let total = summary.stats.as_ref().map(|s| s.message_count);
        if !summary.chunk_indexes.is_empty() || total == Some(0) {
            let channels = summary
                .channels
                .iter()
                .map(|(&id, c)| {
                    let type_name = c.schema.as_ref().map(|s| s.name.clone()).unwrap_or_default();
                    let count = counts.get(&id).copied().unwrap_or(0);
                    (id, Channel { topic: c.topic.clone(), type_name, encoding: c.message_encoding.clone(), count })
                })
                .collect();
            return Ok(BagFile { path: path.to_path_buf(), summary: Some(summary), channels });
        }
    }
    // No usable index: scan the messages once for the topics (errors are reported again when reading).
    let mut channels: BTreeMap<u16, Channel> = BTreeMap::new();
    for message in linear_reader(path)?.map_while(Result::ok) {
        let c = &message.channel;
        channels
            .entry(c.id)
            .or_insert_with(|| Channel {
                topic: c.topic.clone(),
                type_name: c.schema.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
                encoding: c.message_encoding.clone(),
                count: 0,
            })
            .count += 1;
    }
    Ok(BagFile { path: path.to_path_buf(), summary: None, channels })
}

/// Iterator over the messages of a bag ([`BagReader::messages`]). After an error it ends.
pub struct Messages<'a> {
    files: &'a [BagFile],
    next_file: usize,
    current: Option<FileMessages<'a>>,
    wanted: Option<HashSet<String>>,
    failed: bool,
}

enum FileMessages<'a> {
    Indexed { bag: &'a BagFile, file: File, reader: Box<IndexedReader>, buf: Vec<u8>, ids: HashSet<u16> },
    Linear { bag: &'a BagFile, reader: Box<mcap::io::MessageReader<BufReader<File>>> },
}

enum Step {
    End,
    Read(u64, usize),
    Message(MessageHeader, Vec<u8>),
    Skip,
}

impl<'a> FileMessages<'a> {
    fn open(bag: &'a BagFile, wanted: &Option<HashSet<String>>) -> Result<Option<Self>, BagError> {
        let ids: HashSet<u16> = bag
            .channels
            .iter()
            .filter(|(_, c)| wanted.as_ref().is_none_or(|w| w.contains(&c.topic)))
            .map(|(&id, _)| id)
            .collect();
        // A file without an index is always read: its errors (a cut-off recording) must surface.
        let Some(summary) = &bag.summary else {
            return Ok(Some(Self::Linear { bag, reader: Box::new(linear_reader(&bag.path)?) }));
        };
        if ids.is_empty() {
            return Ok(None);
        }
        let mut options =
            IndexedReaderOptions::new().with_order(ReadOrder::LogTime).with_record_length_limit(RECORD_LIMIT);
        if let Some(w) = wanted {
            options = options.include_topics(w.iter().cloned());
        }
        let reader = IndexedReader::new_with_options(summary, options).map_err(mcap_err(&bag.path))?;
        let file = File::open(&bag.path).map_err(io_err(&bag.path))?;
        Ok(Some(Self::Indexed { bag, file, reader: Box::new(reader), buf: Vec::new(), ids }))
    }

    fn next(&mut self, wanted: &Option<HashSet<String>>) -> Option<Result<BagMessage, BagError>> {
        match self {
            Self::Linear { bag, reader } => loop {
                let message = match reader.next()? {
                    Ok(m) => m,
                    Err(e) => return Some(Err(mcap_err(&bag.path)(e))),
                };
                if wanted.as_ref().is_some_and(|w| !w.contains(&message.channel.topic)) {
                    continue;
                }
                return Some(Ok(BagMessage {
                    topic: message.channel.topic.clone(),
                    type_name: message.channel.schema.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
                    log_time: message.log_time,
                    publish_time: message.publish_time,
                    sequence: message.sequence,
                    data: message.data.into_owned(),
                }));
            },
            Self::Indexed { bag, file, reader, buf, ids } => loop {
                let step = match reader.next_event() {
                    None => Step::End,
                    Some(Err(e)) => return Some(Err(mcap_err(&bag.path)(e))),
                    Some(Ok(IndexedReadEvent::ReadChunkRequest { offset, length })) => Step::Read(offset, length),
                    Some(Ok(IndexedReadEvent::Message { header, data })) if ids.contains(&header.channel_id) => {
                        Step::Message(header, data.to_vec())
                    }
                    Some(Ok(IndexedReadEvent::Message { .. })) => Step::Skip,
                };
                match step {
                    Step::End => return None,
                    Step::Skip => {}
                    Step::Read(offset, length) => {
                        buf.resize(length, 0);
                        let read = file.seek(SeekFrom::Start(offset)).and_then(|_| file.read_exact(buf));
                        if let Err(e) = read {
                            return Some(Err(BagError::Io { path: bag.path.clone(), source: e }));
                        }
                        if let Err(e) = reader.insert_chunk_record_data(offset, buf) {
                            return Some(Err(mcap_err(&bag.path)(e)));
                        }
                    }
                    Step::Message(header, data) => {
                        let Some(channel) = bag.channels.get(&header.channel_id) else { continue };
                        return Some(Ok(BagMessage {
                            topic: channel.topic.clone(),
                            type_name: channel.type_name.clone(),
                            log_time: header.log_time,
                            publish_time: header.publish_time,
                            sequence: header.sequence,
                            data,
                        }));
                    }
                }
            },
        }
    }
}

impl Iterator for Messages<'_> {
    type Item = Result<BagMessage, BagError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.failed {
            if self.current.is_none() {
                let bag = self.files.get(self.next_file)?;
                self.next_file += 1;
                match FileMessages::open(bag, &self.wanted) {
                    Ok(current) => self.current = current,
                    Err(e) => {
                        self.failed = true;
                        return Some(Err(e));
                    }
                }
                continue;
            }
            let current = self.current.as_mut()?;
            match current.next(&self.wanted) {
                Some(Ok(m)) => return Some(Ok(m)),
                Some(Err(e)) => {
                    self.failed = true;
                    return Some(Err(e));
                }
                None => self.current = None,
            }
        }
        None
    }
}

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
    schemas: HashMap<String, u16>,
    sequences: HashMap<u16, u32>,
}

impl BagWriter {
    /// Creates (or truncates) `path`, zstd-compressed chunks.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, BagError> {
        Self::create_with(path, BagCompression::default())
    }

    pub fn create_with(path: impl AsRef<Path>, compression: BagCompression) -> Result<Self, BagError> {
        let path = path.as_ref().to_path_buf();
        let file = File::create(&path).map_err(io_err(&path))?;
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
        Ok(Self { path, writer, schemas: HashMap::new(), sequences: HashMap::new() })
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

    /// Writes the summary and flushes the file. Without it the file has no index (still readable linearly).
    pub fn finish(mut self) -> Result<(), BagError> {
        self.writer.finish().map_err(mcap_err(&self.path))?;
        let mut out = self.writer.into_inner();
        out.flush().map_err(io_err(&self.path))
    }
}
