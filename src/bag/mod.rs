//! ROS 2 bags (MCAP): reading camera topics and writing the published topics for the offline mode.
//!
//! References: the MCAP format specification (mcap.dev/spec) and its ROS 2 profile (mcap.dev/spec/registry:
//! profile `ros2`, schema encoding `ros2msg`, message encoding `cdr`), rosbag2's MCAP storage plugin
//! (`rosbag2_storage_mcap`, the default storage since Iron and an option in Humble). The `mcap` crate parses
//! single records and writes files; the file structure is walked here ([`records`], [`reader`]) so that every
//! length is bounded and every CRC the writer stored is checked.
//!
//! * [`BagReader::open`] takes a `.mcap` file or a rosbag2 directory (`metadata.yaml` next to `<name>_0.mcap`,
//!   `<name>_1.mcap`, ...: the files are read one after the other, in split order). It lists the topics with their
//!   type names (`sensor_msgs/msg/Image`, ...) and [`BagReader::messages`] streams the messages of chosen topics:
//!   in log-time order through the summary's chunk indexes (only overlapping chunks in memory at a time), or, for
//!   a file without a summary (a recording that was cut off), linearly in file order, which is the order rosbag2
//!   records in. Nothing holds the whole file in memory.
//! * Integrity: a chunk whose uncompressed CRC does not match, that does not decompress to its declared size or
//!   whose records do not parse is a [`BagError::CorruptChunk`] naming the file, its byte offset and the messages
//!   it held per topic (from the message indexes), and reading goes on with the next chunk; a data section CRC
//!   mismatch is a [`BagError::DataCrc`] at the end; a file cut off ends with [`BagError::Truncated`] ("truncated
//!   at offset N") after every message before the cut. [`BagError::is_damage`] tells these from other errors.
//! * [`BagWriter`] writes one `.mcap` file with the `ros2` profile under a temporary name, renamed by
//!   [`BagWriter::finish`].
//! * [`read_all_from_bytes`]: the whole reader on bytes in memory, bounded (fuzzing).

mod reader;
mod records;
mod writer;

pub use writer::{BagCompression, BagWriter};

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use mcap::McapError;

use records::{Source, SummaryInfo};

/// MCAP profile of ROS 2 bags.
pub const PROFILE: &str = "ros2";
/// MCAP message encoding of ROS 2 messages.
pub const MESSAGE_ENCODING: &str = "cdr";
/// Largest record (or decompressed chunk) we accept: a corrupt length field must not allocate more than this.
pub const RECORD_LIMIT: u64 = 1 << 30;
/// The limit of [`read_all_from_bytes`], per chunk and for all message data together.
pub const BYTES_LIMIT: u64 = 64 << 20;
/// What [`read_all_from_bytes`] decompresses at most, all chunks of its two passes together: a few bytes of
/// input must not cost minutes.
const BYTES_BUDGET: u64 = 4 * BYTES_LIMIT;

/// Errors of reading and writing bags; each names the file, and where it applies the byte offset.
#[derive(Debug, thiserror::Error)]
pub enum BagError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not an MCAP file (no MCAP magic bytes at the start)")]
    NotMcap { path: PathBuf },
    #[error("{path}: a bag must be a regular file, this is {kind}")]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{path}: MCAP: {source}")]
    Mcap { path: PathBuf, source: McapError },
    #[error("{path}: truncated at offset {offset}: {what}")]
    Truncated { path: PathBuf, offset: u64, what: String },
    #[error("{path}: corrupt MCAP record at offset {offset}: {what}")]
    Corrupt { path: PathBuf, offset: u64, what: String },
    #[error("{path}: corrupt chunk at offset {offset} ({reason}); its messages are skipped{}", skipped_text(skipped))]
    CorruptChunk { path: PathBuf, offset: u64, reason: String, skipped: Vec<(String, u64)> },
    #[error(
        "{path}: data section CRC mismatch (DataEnd record at offset {offset}: stored {stored:08x}, computed \
         {computed:08x}): the bag was damaged after it was written"
    )]
    DataCrc { path: PathBuf, offset: u64, stored: u32, computed: u32 },
    #[error("{path}: no .mcap file in this directory")]
    NoMcapFiles { path: PathBuf },
    #[error("{path}: no topic `{topic}` in the bag (topics: {available})")]
    UnknownTopic { path: PathBuf, topic: String, available: String },
    #[error("{path}: no ros2msg definition for message type `{type_name}`")]
    UnknownType { path: PathBuf, type_name: String },
}

/// How a damaged summary is reported.
const SUMMARY_UNUSABLE: &str = "unusable";

fn skipped_text(skipped: &[(String, u64)]) -> String {
    if skipped.is_empty() {
        return String::new();
    }
    let list: Vec<String> = skipped.iter().map(|(t, n)| format!("{n} on {t}")).collect();
    format!(" ({})", list.join(", "))
}

impl BagError {
    /// True for damage in the file (corrupt chunks and records, CRC mismatches, truncation), as opposed to a bag
    /// that cannot be read at all or a wrong request.
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            BagError::Truncated { .. }
                | BagError::Corrupt { .. }
                | BagError::CorruptChunk { .. }
                | BagError::DataCrc { .. }
        )
    }

    pub(crate) fn io_at(path: &Path, offset: u64, e: std::io::Error) -> Self {
        BagError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(e.kind(), format!("at offset {offset}: {e}")),
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BagError + '_ {
    move |source| BagError::Io { path: path.to_path_buf(), source }
}

pub(crate) fn mcap_err(path: &Path) -> impl FnOnce(McapError) -> BagError + '_ {
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
pub(crate) struct Channel {
    topic: String,
    type_name: String,
    encoding: String,
    count: u64,
}

#[derive(Debug)]
pub(crate) struct BagFile {
    path: PathBuf,
    len: u64,
    /// Present when the file has a summary with chunk indexes: read in log-time order through them.
    summary: Option<SummaryInfo>,
    channels: BTreeMap<u16, Channel>,
    /// Damage found while opening (a summary that does not check, a file cut off), reported by [`BagReader::damage`].
    damage: Vec<String>,
}

/// Reads a `.mcap` file or a rosbag2 directory of them.
#[derive(Debug)]
pub struct BagReader {
    path: PathBuf,
    files: Vec<BagFile>,
    topics: Vec<TopicInfo>,
}

fn open_source(path: &Path) -> Result<(Source<'static>, u64), BagError> {
    let meta = std::fs::metadata(path).map_err(io_err(path))?;
    if !meta.is_file() {
        return Err(BagError::NotRegular { path: path.to_path_buf(), kind: crate::files::kind_of(&meta) });
    }
    let file = File::open(path).map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    Ok((Source::File(file), len))
}

impl BagReader {
    /// Opens a bag: checks each file's magic, reads its summary (or scans a file that has none) for the topics.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, BagError> {
        let path = path.as_ref();
        let paths = if path.is_dir() { mcap_files_in(path)? } else { vec![path.to_path_buf()] };
        let mut files = Vec::new();
        for p in paths {
            let (src, len) = open_source(&p)?;
            files.push(open_file(&p, &src, len, RECORD_LIMIT, u64::MAX)?);
        }
        Ok(Self::from_files(path, files))
    }

    fn from_files(path: &Path, files: Vec<BagFile>) -> Self {
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
        Self { path: path.to_path_buf(), files, topics }
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

    /// Summaries that could not be used (a CRC mismatch, a record that does not parse): the files were read
    /// linearly instead. Reading does not report these again.
    pub fn summary_damage(&self) -> Vec<&str> {
        self.files
            .iter()
            .flat_map(|f| f.damage.iter().filter(|d| d.contains(SUMMARY_UNUSABLE)).map(String::as_str))
            .collect()
    }

    /// Damage seen while opening (each naming the file and offset): a summary that fails its CRC, a file cut
    /// off before its end. The messages report the same damage again when they reach it.
    pub fn damage(&self) -> Vec<&str> {
        self.files.iter().flat_map(|f| f.damage.iter().map(String::as_str)).collect()
    }

    /// Streams the messages of `topics` (all topics when empty), in log-time order within each file. A topic that
    /// is not in the bag is an error listing the ones that are. Damage is reported as an error item: after a
    /// corrupt chunk or a data CRC mismatch the stream goes on; after a truncation or I/O error it ends.
    pub fn messages(&self, topics: &[&str]) -> Result<Messages<'_>, BagError> {
        for topic in topics {
            if self.topic(topic).is_none() {
                let available = self.topics.iter().map(|t| t.topic.as_str()).collect::<Vec<_>>().join(", ");
                return Err(BagError::UnknownTopic { path: self.path.clone(), topic: topic.to_string(), available });
            }
        }
        let wanted = (!topics.is_empty()).then(|| topics.iter().map(|t| t.to_string()).collect());
        Ok(Messages { files: &self.files, next_file: 0, wanted, current: None, failed: false })
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

fn open_file(path: &Path, src: &Source<'_>, len: u64, limit: u64, budget: u64) -> Result<BagFile, BagError> {
    let mut magic = [0u8; 8];
    if src.read_at(0, &mut magic).is_err() || magic != *mcap::MAGIC {
        return Err(BagError::NotMcap { path: path.to_path_buf() });
    }
    let mut damage = Vec::new();
    let summary = match records::read_summary(src, len, limit) {
        Ok(s) => s,
        Err((offset, what)) => {
            damage.push(format!(
                "{}: summary at offset {offset} {SUMMARY_UNUSABLE} ({what}); read linearly",
                path.display()
            ));
            None
        }
    };
    if let Some(summary) = summary.filter(|s| !s.chunks.is_empty() || s.message_count == Some(0)) {
        let counts = summary.counts.clone().unwrap_or_default();
        let channels = summary
            .declarations
            .channels
            .iter()
            .map(|c| {
                let type_name = summary.declarations.schemas.get(&c.schema_id).cloned().unwrap_or_default();
                let count = counts.get(&c.id).copied().unwrap_or(0);
                (c.id, Channel { topic: c.topic.clone(), type_name, encoding: c.encoding.clone(), count })
            })
            .collect();
        return Ok(BagFile { path: path.to_path_buf(), len, summary: Some(summary), channels, damage });
    }
    // No usable index: scan the messages once for the topics (damage is reported again when reading).
    let mut file =
        BagFile { path: path.to_path_buf(), len, summary: None, channels: BTreeMap::new(), damage: Vec::new() };
    file.damage = damage;
    let mut damage = Vec::new();
    let found;
    {
        let src = src.duplicate().map_err(io_err(path))?;
        let mut reader = reader::FileReader::new(&file, src, None, limit, budget);
        for item in reader.by_ref() {
            match item {
                Ok(_) => {}
                Err(e) if e.is_damage() => damage.push(e.to_string()),
                Err(e) => return Err(e),
            }
        }
        found = reader.into_channels();
    }
    file.channels = found;
    file.damage.extend(damage);
    Ok(file)
}

/// Iterator over the messages of a bag ([`BagReader::messages`]).
pub struct Messages<'a> {
    files: &'a [BagFile],
    next_file: usize,
    wanted: Option<HashSet<String>>,
    current: Option<reader::FileReader<'a>>,
    failed: bool,
}

impl Iterator for Messages<'_> {
    type Item = Result<BagMessage, BagError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.failed {
            if self.current.is_none() {
                let bag = self.files.get(self.next_file)?;
                self.next_file += 1;
                let src = match open_source(&bag.path) {
                    Ok((src, _)) => src,
                    Err(e) => {
                        self.failed = true;
                        return Some(Err(e));
                    }
                };
                self.current = Some(reader::FileReader::new(bag, src, self.wanted.clone(), RECORD_LIMIT, u64::MAX));
                continue;
            }
            let current = self.current.as_mut()?;
            match current.next() {
                Some(Ok(m)) => return Some(Ok(m)),
                Some(Err(e)) => return Some(Err(e)),
                None => self.current = None,
            }
        }
        None
    }
}

/// Everything a bag in memory holds: its topics, every message (in the reader's order) and the damage found.
#[derive(Debug, Default)]
pub struct BagContents {
    pub topics: Vec<TopicInfo>,
    pub messages: Vec<BagMessage>,
    pub damage: Vec<BagError>,
}

/// Reads a whole `.mcap` file held in memory, bounded: each chunk and all message data together are capped at
/// [`BYTES_LIMIT`]. Err only when the bytes are not MCAP at all; damage is listed in [`BagContents::damage`].
/// The entry point for fuzzing the MCAP reader.
pub fn read_all_from_bytes(bytes: &[u8]) -> Result<BagContents, BagError> {
    let path = Path::new("<memory>");
    let src = Source::Bytes(bytes);
    let file = open_file(path, &src, bytes.len() as u64, BYTES_LIMIT, BYTES_BUDGET / 2)?;
    let bag = BagReader::from_files(path, vec![file]);
    let mut contents = BagContents { topics: bag.topics.clone(), ..BagContents::default() };
    let Some(file) = bag.files.first() else { return Ok(contents) };
    let mut total = 0u64;
    for item in reader::FileReader::new(file, src, None, BYTES_LIMIT, BYTES_BUDGET / 2) {
        match item {
            Ok(m) => {
                total += m.data.len() as u64;
                if total > BYTES_LIMIT {
                    let what = format!("more than {BYTES_LIMIT} bytes of messages");
                    contents.damage.push(BagError::Corrupt { path: path.to_path_buf(), offset: 0, what });
                    break;
                }
                contents.messages.push(m);
            }
            Err(e) => contents.damage.push(e),
        }
    }
    Ok(contents)
}
