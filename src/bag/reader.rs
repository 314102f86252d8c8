//! Reading the messages of one `.mcap` file: through the summary's chunk indexes in log-time order (chunks
//! loaded in start-time order and merged, so only overlapping chunks are in memory at once), or linearly in file
//! order for a file without a usable summary. Each chunk is checked (see [`super::records`]); a corrupt one is
//! reported with its offset and the messages it held per topic, and reading goes on with the next. A record
//! that runs past the end of the file ends the file: "truncated at offset N". The data section CRC (DataEnd) is
//! checked when the writer stored one: as the linear reader passes, or after the last chunk of an indexed read.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, HashSet, VecDeque};

use mcap::records::{op, ChunkIndex};

use super::records::{self, count_indexed, decode_chunk, record_header, Declarations, Source, RECORD_HEADER};
use super::{BagError, BagFile, BagMessage, Channel};

/// A message waiting in the log-time merge: ordered by (log time, chunk offset, position in the chunk).
struct Pending {
    key: (u64, u64, usize),
    message: BagMessage,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

enum Mode {
    Indexed {
        chunks: Vec<ChunkIndex>,
        next: usize,
        heap: BinaryHeap<Reverse<Pending>>,
        /// Message bytes in the heap: past the record limit, messages are given out before more chunks load.
        heap_bytes: u64,
        crc_checked: bool,
    },
    Linear {
        pos: u64,
        hasher: Option<crc32fast::Hasher>,
        queue: VecDeque<BagMessage>,
        done: bool,
    },
}

/// The messages of one file, as an iterator of results. Corrupt chunks and a data CRC mismatch are errors the
/// iterator goes on after; a truncation or a broken record frame ends it.
pub(crate) struct FileReader<'a> {
    path: &'a std::path::Path,
    src: Source<'a>,
    len: u64,
    limit: u64,
    /// Bytes that may still be decompressed (all chunks together).
    budget: u64,
    data_end: Option<(u64, u32)>,
    channels: BTreeMap<u16, Channel>,
    schemas: BTreeMap<u16, String>,
    /// Topics wanted (None: all).
    wanted: Option<HashSet<String>>,
    /// Messages read per channel.
    counts: BTreeMap<u16, u64>,
    mode: Mode,
}

impl<'a> FileReader<'a> {
    /// `limit` caps each record and chunk, `budget` all decompressed chunks together.
    pub(crate) fn new(
        bag: &'a BagFile,
        src: Source<'a>,
        wanted: Option<HashSet<String>>,
        limit: u64,
        budget: u64,
    ) -> Self {
        let mode = match &bag.summary {
            Some(s) => {
                let ids: HashSet<u16> = bag
                    .channels
                    .iter()
                    .filter(|(_, c)| wanted.as_ref().is_none_or(|w| w.contains(&c.topic)))
                    .map(|(&id, _)| id)
                    .collect();
                let mut chunks: Vec<ChunkIndex> = s
                    .chunks
                    .iter()
                    .filter(|c| {
                        c.message_index_offsets.is_empty() || c.message_index_offsets.keys().any(|k| ids.contains(k))
                    })
                    .cloned()
                    .collect();
                // An index listing one chunk many times must not make it load many times.
                chunks.sort_by_key(|c| c.chunk_start_offset);
                chunks.dedup_by_key(|c| c.chunk_start_offset);
                chunks.sort_by_key(|c| (c.message_start_time, c.chunk_start_offset));
                Mode::Indexed { chunks, next: 0, heap: BinaryHeap::new(), heap_bytes: 0, crc_checked: false }
            }
            None => {
                let mut hasher = crc32fast::Hasher::new();
                hasher.update(mcap::MAGIC);
                Mode::Linear {
                    pos: mcap::MAGIC.len() as u64,
                    hasher: Some(hasher),
                    queue: VecDeque::new(),
                    done: false,
                }
            }
        };
        FileReader {
            path: &bag.path,
            src,
            len: bag.len,
            limit,
            budget,
            data_end: bag.summary.as_ref().and_then(|s| s.data_end),
            channels: bag.channels.clone(),
            schemas: BTreeMap::new(),
            wanted,
            counts: BTreeMap::new(),
            mode,
        }
    }

    fn declare(&mut self, d: Declarations) {
        self.schemas.extend(d.schemas);
        for c in d.channels {
            let type_name = self.schemas.get(&c.schema_id).cloned().unwrap_or_default();
            self.channels.entry(c.id).or_insert(Channel { topic: c.topic, type_name, encoding: c.encoding, count: 0 });
        }
    }

    fn wants(&self, channel: u16) -> bool {
        self.channels.get(&channel).is_some_and(|c| self.wanted.as_ref().is_none_or(|w| w.contains(&c.topic)))
    }

    /// The channels seen, with the messages read on each (a linear scan's topic list).
    pub(crate) fn into_channels(self) -> BTreeMap<u16, Channel> {
        let mut channels = self.channels;
        for (id, n) in self.counts {
            if let Some(c) = channels.get_mut(&id) {
                c.count = n;
            }
        }
        channels
    }

    fn make_message(&mut self, h: &mcap::records::MessageHeader, data: Vec<u8>) -> Option<BagMessage> {
        let c = self.channels.get(&h.channel_id)?;
        *self.counts.entry(h.channel_id).or_insert(0) += 1;
        Some(BagMessage {
            topic: c.topic.clone(),
            type_name: c.type_name.clone(),
            log_time: h.log_time,
            publish_time: h.publish_time,
            sequence: h.sequence,
            data,
        })
    }

    /// The corrupt-chunk error: what the message indexes after it say it held, for the wanted topics.
    fn corrupt_chunk(&self, offset: u64, after: u64, reason: String) -> BagError {
        let mut skipped: BTreeMap<String, u64> = BTreeMap::new();
        for (channel, n) in count_indexed(&self.src, after, self.len) {
            if let Some(c) = self.channels.get(&channel).filter(|_| self.wants(channel)) {
                *skipped.entry(c.topic.clone()).or_insert(0) += n;
            }
        }
        BagError::CorruptChunk { path: self.path.to_path_buf(), offset, reason, skipped: skipped.into_iter().collect() }
    }

    /// Decodes the chunk record whose body is `body`; the wanted messages, or the corrupt-chunk error.
    fn chunk_messages(&mut self, offset: u64, body: &[u8]) -> Result<Vec<BagMessage>, BagError> {
        let after = offset + RECORD_HEADER + body.len() as u64;
        let limit = self.limit.min(self.budget);
        let chunk = decode_chunk(body, limit).map_err(|reason| self.corrupt_chunk(offset, after, reason))?;
        self.budget = self.budget.saturating_sub(chunk.data.len() as u64);
        self.declare(chunk.declarations);
        let mut out = Vec::new();
        for (h, r) in &chunk.messages {
            if !self.wants(h.channel_id) {
                continue;
            }
            let data = chunk.data.get(r.clone()).map(|d| d.to_vec()).unwrap_or_default();
            out.extend(self.make_message(h, data));
        }
        Ok(out)
    }

    fn next_indexed(&mut self) -> Option<Result<BagMessage, BagError>> {
        loop {
            let Mode::Indexed { chunks, next, heap, heap_bytes, crc_checked } = &mut self.mode else { return None };
            let room = *heap_bytes < self.limit;
            let load =
                chunks.get(*next).filter(|c| heap.peek().is_none_or(|p| room && c.message_start_time <= p.0.key.0));
            if let Some(c) = load.cloned() {
                *next += 1;
                match self.load_chunk(&c) {
                    Ok(()) => continue,
                    Err(e) => return Some(Err(e)),
                }
            }
            if let Some(Reverse(p)) = heap.pop() {
                *heap_bytes = heap_bytes.saturating_sub(p.message.data.len() as u64);
                return Some(Ok(p.message));
            }
            if *crc_checked {
                return None;
            }
            *crc_checked = true;
            return self.check_data_crc_indexed().map(Err);
        }
    }

    fn load_chunk(&mut self, c: &ChunkIndex) -> Result<(), BagError> {
        let offset = c.chunk_start_offset;
        let corrupt = |s: &Self, reason: String| s.corrupt_chunk(offset, offset.saturating_add(c.chunk_length), reason);
        let mut h = [0u8; RECORD_HEADER as usize];
        if offset.saturating_add(c.chunk_length) > self.len || c.chunk_length < RECORD_HEADER {
            return Err(corrupt(
                self,
                format!("the index places a {}-byte chunk past the end of the file", c.chunk_length),
            ));
        }
        self.src.read_at(offset, &mut h).map_err(|e| BagError::io_at(self.path, offset, e))?;
        let (opcode, len) = record_header(&h);
        if opcode != op::CHUNK || len != c.chunk_length - RECORD_HEADER {
            return Err(corrupt(self, format!("no chunk record here (opcode {opcode:#04x}, length {len})")));
        }
        if len > self.limit.saturating_add(1 << 20) {
            return Err(corrupt(self, format!("a chunk record of {len} bytes is over the limit")));
        }
        let body = self.src.read_vec(offset + RECORD_HEADER, len).map_err(|e| BagError::io_at(self.path, offset, e))?;
        let messages = self.chunk_messages(offset, &body)?;
        let Mode::Indexed { heap, heap_bytes, .. } = &mut self.mode else { return Ok(()) };
        for (i, message) in messages.into_iter().enumerate() {
            *heap_bytes += message.data.len() as u64;
            heap.push(Reverse(Pending { key: (message.log_time, offset, i), message }));
        }
        Ok(())
    }

    fn check_data_crc_indexed(&self) -> Option<BagError> {
        let (at, stored) = self.data_end.filter(|(_, crc)| *crc != 0)?;
        match records::crc_of_prefix(&self.src, at) {
            Ok(computed) if computed != stored => {
                Some(BagError::DataCrc { path: self.path.to_path_buf(), offset: at, stored, computed })
            }
            Ok(_) => None,
            Err(e) => Some(BagError::io_at(self.path, at, e)),
        }
    }

    fn next_linear(&mut self) -> Option<Result<BagMessage, BagError>> {
        loop {
            let Mode::Linear { pos, hasher, queue, done } = &mut self.mode else { return None };
            if let Some(m) = queue.pop_front() {
                return Some(Ok(m));
            }
            if *done {
                return None;
            }
            let at = *pos;
            let path = self.path.to_path_buf();
            let mut h = [0u8; RECORD_HEADER as usize];
            if at.saturating_add(RECORD_HEADER) > self.len {
                *done = true;
                let what = "the file ends before its footer".to_string();
                return Some(Err(BagError::Truncated { path, offset: at, what }));
            }
            if let Err(e) = self.src.read_at(at, &mut h) {
                *done = true;
                return Some(Err(BagError::io_at(self.path, at, e)));
            }
            let (opcode, len) = record_header(&h);
            if len > self.limit.saturating_add(1 << 20) {
                *done = true;
                let what = format!("record length {len} (opcode {opcode:#04x}) is over the limit");
                return Some(Err(BagError::Corrupt { path, offset: at, what }));
            }
            if at + RECORD_HEADER + len > self.len {
                *done = true;
                let what = format!("a record of {len} bytes (opcode {opcode:#04x}) runs past the end of the file");
                return Some(Err(BagError::Truncated { path, offset: at, what }));
            }
            let body = match self.src.read_vec(at + RECORD_HEADER, len) {
                Ok(b) => b,
                Err(e) => {
                    *done = true;
                    return Some(Err(BagError::io_at(self.path, at, e)));
                }
            };
            *pos = at + RECORD_HEADER + len;
            if opcode == op::DATA_END {
                let computed = hasher.take().map(|h| h.finalize());
                let stored = body.get(..4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes).unwrap_or(0);
                if let Some(computed) = computed.filter(|&c| stored != 0 && c != stored) {
                    return Some(Err(BagError::DataCrc { path, offset: at, stored, computed }));
                }
                continue;
            }
            // Past DataEnd (the hasher is gone) lies the summary: only the footer matters to a linear read.
            let in_summary = hasher.is_none();
            if let Some(hasher) = hasher.as_mut() {
                hasher.update(&h);
                hasher.update(&body);
            }
            if in_summary && opcode != op::FOOTER {
                continue;
            }
            match opcode {
                op::FOOTER => {
                    *done = true;
                    let mut magic = [0u8; 8];
                    let end = *pos;
                    if self.src.read_at(end, &mut magic).is_err() || magic != *mcap::MAGIC {
                        let what = "the closing magic bytes are missing".to_string();
                        return Some(Err(BagError::Truncated { path, offset: end, what }));
                    }
                }
                op::SCHEMA | op::CHANNEL => match records::declaration(opcode, &body) {
                    Ok(d) => self.declare(d),
                    Err(what) => return Some(Err(BagError::Corrupt { path, offset: at, what })),
                },
                op::MESSAGE => {
                    let parsed = records::message(&body);
                    let (header, range) = match parsed {
                        Ok(v) => v,
                        Err(what) => return Some(Err(BagError::Corrupt { path, offset: at, what })),
                    };
                    if self.wants(header.channel_id) {
                        let data = body.get(range).map(|d| d.to_vec()).unwrap_or_default();
                        if let Some(m) = self.make_message(&header, data) {
                            return Some(Ok(m));
                        }
                    }
                }
                op::CHUNK => match self.chunk_messages(at, &body) {
                    Ok(messages) => {
                        if let Mode::Linear { queue, .. } = &mut self.mode {
                            queue.extend(messages);
                        }
                    }
                    Err(e) => return Some(Err(e)),
                },
                _ => {}
            }
        }
    }
}

impl Iterator for FileReader<'_> {
    type Item = Result<BagMessage, BagError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.mode {
            Mode::Indexed { .. } => self.next_indexed(),
            Mode::Linear { .. } => self.next_linear(),
        }
    }
}
